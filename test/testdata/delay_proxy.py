#!/usr/bin/env python3
"""A TCP relay that adds one-way latency in each direction and counts the bytes it
relays towards the clients: the "distant registry" of the cold-start benchmark (this
kernel has no netem).

Usage: delay_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT ONE_WAY_MS STATS_FILE
Every chunk is delivered ONE_WAY_MS after it arrived, in order, so a request/response
exchange costs 2 x ONE_WAY_MS more; throughput is not limited here (shape it with tc).
STATS_FILE receives the total bytes sent to clients, rewritten every 0.2 s.
With DELAY_PROXY_LOG=FILE, every connection and request line is logged there with its
time (seconds, monotonic) and connection number: the round trips of a pull, in order.
"""
import asyncio
import os
import sys

LISTEN, UPSTREAM, DELAY, STATS = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) / 1000, sys.argv[4]
DOWN = [0]
LOG = open(os.environ["DELAY_PROXY_LOG"], "a", buffering=1) if os.environ.get("DELAY_PROXY_LOG") else None
CONNS = [0]


def log(conn, what):
    if LOG:
        LOG.write("%.3f %d %s\n" % (asyncio.get_running_loop().time(), conn, what))


async def pipe(reader, writer, count, conn=0):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            if count:
                DOWN[0] += len(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(1 << 16)
            if LOG and not count and data[:4] in (b"GET ", b"HEAD", b"PUT ", b"POST", b"PATC"):
                log(conn, data.split(b"\r\n", 1)[0].decode("latin-1"))
            queue.put_nowait((loop.time() + DELAY, data))
            if not data:
                break
    except (ConnectionError, OSError):
        queue.put_nowait((loop.time(), b""))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def handle(client_reader, client_writer):
    host, port = UPSTREAM.rsplit(":", 1)
    CONNS[0] += 1
    conn = CONNS[0]
    log(conn, "connect")
    await asyncio.sleep(DELAY * 2)  # the TCP handshake's round trip
    try:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, up_writer, False, conn),
                         pipe(up_reader, client_writer, True))
    for w in (up_writer, client_writer):
        w.close()


async def stats():
    while True:
        with open(STATS + ".tmp", "w") as f:
            f.write(str(DOWN[0]))
        os.replace(STATS + ".tmp", STATS)
        await asyncio.sleep(0.2)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    asyncio.create_task(stats())
    async with server:
        await server.serve_forever()


asyncio.run(main())

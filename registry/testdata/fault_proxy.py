#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a registry, for the registry client's tests.

Usage: fault_proxy.py UPSTREAM_URL   (prints "PORT <n>" once listening on 127.0.0.1)

Control (JSON over HTTP, on the proxy itself):
  POST /__fault  {"mode": M, "count": N, "match": "/blobs/"}  arm N faults for paths
        containing `match`. Modes: reset (close without answering), status500,
        status429 (Retry-After: 1), drip (send headers then stall), truncate (half the
        body, then close), ignore_range (drop the Range header: upstream answers 200),
        corrupt (flip one byte of the body), redirect (302 to the same URL at
        host "localhost", which must not receive the Authorization header).
  POST /__bearer {"enabled": true, "user": "u", "password": "p", "expires_in": 60}
        require Bearer tokens issued by GET /token (Basic auth checked when a user
        is set; anonymous otherwise); "accept": "T" also accepts the token T, issued
        elsewhere (a registry token a client already holds).
  POST /__revoke  invalidate every issued token (the client must refresh on 401).
  POST /__referrers {"path": "/v2/<repo>/referrers/<digest>", "body": <OCI index>}
        answer GET of that path (query ignored) with 200 and the body: a registry with
        the OCI 1.1 referrers API (docker-registry 2.8 has none).
  POST /__clear   clear armed faults (the registry "recovers").
  POST /__reset   clear armed faults and counters.
  GET  /__stats   counters: requests, faults, tokens, auth headers seen on redirects,
                  blob_bytes (body bytes of blob GETs served) and blob_bytes:<hex> per blob.
"""
import base64
import http.client
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
LOCK = threading.Lock()
FAULTS = []  # [mode, remaining, match]
BEARER = {"enabled": False}
TOKENS = set()
STATS = {"requests": 0, "faults": 0, "tokens": 0, "redirect_auth": 0, "redirected": 0}
REFERRERS = {}  # path -> canned OCI index body


def take_fault(path):
    with LOCK:
        for f in FAULTS:
            if f[1] > 0 and f[2] in path:
                f[1] -= 1
                STATS["faults"] += 1
                return f[0]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, body=b"", headers=(), length=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def control(self):
        data = json.loads(self.body() or b"{}")
        with LOCK:
            if self.path == "/__fault":
                FAULTS.append([data["mode"], int(data.get("count", 1)), data.get("match", "")])
            elif self.path == "/__bearer":
                BEARER.clear()
                BEARER.update(data)
                if data.get("accept"):
                    TOKENS.add(data["accept"])
            elif self.path == "/__revoke":
                TOKENS.clear()
            elif self.path == "/__referrers":
                REFERRERS[data["path"]] = json.dumps(data["body"]).encode()
            elif self.path == "/__clear":
                FAULTS.clear()
            elif self.path == "/__reset":
                FAULTS.clear()
                for k in list(STATS):
                    if k.startswith("blob_bytes"):
                        del STATS[k]
                    else:
                        STATS[k] = 0
        self.reply(200, b"{}")

    def token(self):
        if BEARER.get("user"):
            want = "Basic " + base64.b64encode(
                ("%s:%s" % (BEARER["user"], BEARER["password"])).encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, b'{"details":"bad credentials"}')
        tok = secrets.token_hex(16)
        with LOCK:
            TOKENS.add(tok)
            STATS["tokens"] += 1
        body = json.dumps({"token": tok, "expires_in": BEARER.get("expires_in", 60)}).encode()
        self.reply(200, body, [("Content-Type", "application/json")])

    def handle_any(self):
        if self.path.startswith("/__"):
            if self.command == "GET":
                with LOCK:
                    return self.reply(200, json.dumps(STATS).encode())
            return self.control()
        if self.path.startswith("/token"):
            return self.token()
        host = self.headers.get("Host", "")
        if host.startswith("localhost"):
            with LOCK:
                STATS["redirected"] += 1
                if self.headers.get("Authorization"):
                    STATS["redirect_auth"] += 1
        else:
            with LOCK:
                STATS["requests"] += 1
            if BEARER.get("enabled") and self.path.startswith("/v2/"):
                auth = self.headers.get("Authorization", "")
                with LOCK:
                    ok = auth.startswith("Bearer ") and auth[7:] in TOKENS
                if not ok:
                    port = self.server.server_address[1]
                    challenge = ('Bearer realm="http://127.0.0.1:%d/token",service="test",'
                                 'scope="repository:%s:pull"' % (port, "x"))
                    return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                      [("WWW-Authenticate", challenge)])
        with LOCK:
            canned = REFERRERS.get(self.path.split("?")[0]) if self.command == "GET" else None
        if canned is not None:
            return self.reply(200, canned, [("Content-Type", "application/vnd.oci.image.index.v1+json")])
        req_body = self.body()
        fault = take_fault(self.path)
        if fault == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault == "status500":
            return self.reply(500, b'{"errors":[{"code":"UNKNOWN"}]}')
        if fault == "status429":
            return self.reply(429, b"", [("Retry-After", "1")])
        if fault == "redirect":
            port = self.server.server_address[1]
            return self.reply(302, b"", [("Location", "http://localhost:%d%s" % (port, self.path))])
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "authorization", "connection")}
        if fault == "ignore_range":
            headers.pop("Range", None)
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        conn.request(self.command, self.path, body=req_body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        out_headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        if fault == "corrupt" and data:
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        if fault == "drip":
            self.send_response(resp.status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:1])
            self.wfile.flush()
            time.sleep(30)  # The client's stall timeout must fire first.
            self.close_connection = True
            return
        if fault == "truncate" and self.command != "HEAD":
            self.send_response(resp.status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if self.command == "GET" and "/blobs/sha256:" in self.path and resp.status in (200, 206):
            blob = self.path.rsplit("sha256:", 1)[1].split("?")[0]
            with LOCK:
                STATS["blob_bytes"] = STATS.get("blob_bytes", 0) + len(data)
                key = "blob_bytes:" + blob
                STATS[key] = STATS.get(key, 0) + len(data)
        # A HEAD answer carries the size of the body it does not send.
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.reply(resp.status, data, out_headers, length)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

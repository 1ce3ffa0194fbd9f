#!/usr/bin/env python3
"""A stand-in for systemd's service manager, as far as clip uses it: the notify socket
(READY=1, FDSTORE=1 / FDSTOREREMOVE=1 with FDNAME=) and the fd store handed back to the
next start as LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID (fds 3, 4, ...), with Restart=
semantics: the service is started again whenever it dies of a signal; a clean exit ends
this manager.

Usage: fake_systemd.py WORKDIR -- COMMAND [ARGS...]
Writes WORKDIR/service.pid (the running service), appends to WORKDIR/manager.log.
"""
import array
import os
import signal
import socket
import sys
import threading


def main():
    work = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    path = os.path.join(work, "notify.sock")
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    store = {}  # name -> [fds]
    lock = threading.Lock()
    log = open(os.path.join(work, "manager.log"), "a", buffering=1)

    def listen():
        while True:
            msg, fds, _, _ = socket.recv_fds(sock, 65536, 16)
            fields = dict(l.split("=", 1) for l in msg.decode().splitlines() if "=" in l)
            with lock:
                if fields.get("FDSTORE") == "1":
                    store.setdefault(fields.get("FDNAME", "stored"), []).extend(fds)
                    fds = []
                elif fields.get("FDSTOREREMOVE") == "1":
                    for fd in store.pop(fields.get("FDNAME", ""), []):
                        os.close(fd)
                if "READY" in fields:
                    log.write("READY\n")
            for fd in fds:
                os.close(fd)

    threading.Thread(target=listen, daemon=True).start()
    while True:
        with lock:
            passed = [(name, fd) for name, fds in store.items() for fd in fds]
        pid = os.fork()
        if pid == 0:
            for i, (_, fd) in enumerate(passed):
                os.dup2(fd, 100 + i)
            for i in range(len(passed)):
                os.dup2(100 + i, 3 + i)
                os.set_inheritable(3 + i, True)
            env = dict(os.environ, NOTIFY_SOCKET=path)
            if passed:
                env.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(passed)),
                           LISTEN_FDNAMES=":".join(n for n, _ in passed))
            os.closerange(3 + len(passed), 4096)
            os.execve(cmd[0], cmd, env)
        open(os.path.join(work, "service.pid"), "w").write("%d\n" % pid)
        log.write("started %d with %d stored fds\n" % (pid, len(passed)))
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            log.write("died of signal %d: restarting\n" % os.WTERMSIG(status))
            continue
        if os.WEXITSTATUS(status) == 0 and os.path.exists(os.path.join(work, "restart")):
            os.unlink(os.path.join(work, "restart"))
            log.write("exited 0: restarting as asked\n")
            continue
        log.write("exited %d: stopping\n" % os.WEXITSTATUS(status))
        with lock:
            for fds in store.values():
                for fd in fds:
                    os.close(fd)
        return


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The example's service: serves ./www on 127.0.0.1:PORT, where deploy.sh writes
the release it "installs" to www/version. Started and stopped by ../service.sh.

It never outlives its example: it exits when service.pid no longer names it
(`./service.sh stop`, or the directory removed with everything in it), and after
IDLE seconds without a request, so an aborted run leaves nothing listening.
"""

import errno
import functools
import http.server
import os
import sys
import threading
import time

IDLE = float(os.environ.get("VERIFIED_IDLE", "600"))


def main() -> int:
    port, root = int(sys.argv[1]), os.path.abspath(sys.argv[2])
    pidfile = os.path.join(os.path.dirname(root), "service.pid")
    last = [time.monotonic()]

    class Handler(http.server.SimpleHTTPRequestHandler):
        def handle_one_request(self):
            last[0] = time.monotonic()
            super().handle_one_request()

        def end_headers(self):
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def log_message(self, fmt, *args):
            pass

    handler = functools.partial(Handler, directory=root)
    # A server of an aborted run whose directory was just removed exits
    # within half a second: wait a little for its port.
    deadline = time.monotonic() + 5
    while True:
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                print(f"service: cannot listen on 127.0.0.1:{port}: {e.strerror}", file=sys.stderr)
                return 1
            time.sleep(0.2)

    def ours() -> bool:
        try:
            with open(pidfile) as f:
                return f.read().strip() == str(os.getpid())
        except OSError:
            return False

    def watchdog():
        while ours() and time.monotonic() - last[0] < IDLE:
            time.sleep(0.5)
        server.shutdown()

    with open(pidfile + ".new", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(pidfile + ".new", pidfile)
    threading.Thread(target=watchdog, daemon=True).start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

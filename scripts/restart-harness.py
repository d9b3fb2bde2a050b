#!/usr/bin/env python3
"""Test harness: runs a server command and restarts it on request, so a browser test can
restart the server under a live page. Test-only: production builds know nothing of it.

    scripts/restart-harness.py --control 127.0.0.1:PORT --health URL -- rtm-server serve ...

GET /restart?down_ms=N on the control address stops the server with SIGTERM (its graceful
shutdown: clients are told to reconnect), answers once it has exited, and starts it again N ms
later (default 1500). GET /status answers "up" or "down". Responses allow any origin.
SIGTERM or SIGINT to the harness stops the server and the harness.
"""
import argparse
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
proc = None


def start(cmd, health):
    global proc
    with lock:
        proc = subprocess.Popen(cmd)
    for _ in range(100):
        try:
            urllib.request.urlopen(health, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    print(f"restart-harness: {health} did not come up", file=sys.stderr)


def stop():
    global proc
    with lock:
        p, proc = proc, None
    if p is not None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--control", required=True, help="host:port of the control endpoint")
    ap.add_argument("--health", required=True, help="URL that answers once the server is up")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, body):
            data = body.encode()
            self.send_response(code)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/restart":
                down_ms = int(parse_qs(url.query).get("down_ms", ["1500"])[0])
                stop()
                threading.Timer(down_ms / 1000, start, (cmd, args.health)).start()
                self.reply(200, "down")
            elif url.path == "/status":
                with lock:
                    up = proc is not None and proc.poll() is None
                self.reply(200, "up" if up else "down")
            else:
                self.reply(404, "not found")

        def log_message(self, *a):
            pass

    host, port = args.control.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)

    def bye(*_):
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    start(cmd, args.health)
    server.serve_forever()


if __name__ == "__main__":
    main()

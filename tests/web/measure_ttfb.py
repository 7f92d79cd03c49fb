"""Time to first byte of the logon page on a real Postel (not a test; run it by hand):

    .venv/bin/python -m tests.web.measure_ttfb

It starts a server on free loopback ports and prints three measurements: sequential
requests on one kept-alive TLS connection, curl on a new TCP+TLS connection each time,
and wrk (Debian's wrk, when installed) with 1 and 10 connections.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import PostelServer
from tests.web.helpers import start


def _read_response(sock: ssl.SSLSocket, first: bytes) -> None:
    buffer = first
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, body = buffer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)


def keep_alive(port: int, count: int = 500, warmup: int = 20) -> list[float]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = f"GET /logon HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    samples = []
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port))) as sock:
        for i in range(count + warmup):
            t0 = time.perf_counter()
            sock.sendall(request)
            first = sock.recv(1)
            t1 = time.perf_counter()
            _read_response(sock, first)
            if i >= warmup:
                samples.append((t1 - t0) * 1000)
    return sorted(samples)


def main() -> None:
    server = PostelServer(Path(tempfile.mkdtemp()))
    server.add_user("alice@example.test")
    start(server)
    port = server.port("https")
    url = f"https://127.0.0.1:{port}/logon"
    try:
        s = keep_alive(port)
        print(f"one keep-alive TLS connection, {len(s)} sequential GET /logon: TTFB median "
              f"{statistics.median(s):.2f} ms, p90 {s[int(len(s) * .9)]:.2f} ms, "
              f"p99 {s[int(len(s) * .99)]:.2f} ms")
        if shutil.which("curl"):
            runs = []
            for _ in range(50):
                out = subprocess.run(
                    ["curl", "-sk", "-o", "/dev/null", "-w", "%{time_starttransfer}", url],
                    capture_output=True, text=True, check=True).stdout
                runs.append(float(out) * 1000)
            runs.sort()
            print(f"curl, new TCP+TLS connection each (50 runs): time_starttransfer median "
                  f"{statistics.median(runs):.2f} ms, p90 {runs[44]:.2f} ms")
        if shutil.which("wrk"):
            for threads, connections in ((1, 1), (2, 10)):
                command = ["wrk", f"-t{threads}", f"-c{connections}", "-d10s", "--latency", url]
                print("$", " ".join(command))
                print(subprocess.run(command, capture_output=True, text=True).stdout)
    finally:
        server.close()


if __name__ == "__main__":
    main()

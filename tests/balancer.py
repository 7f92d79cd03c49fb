"""Debian's HAProxy in TCP mode in front of several Postel hosts, for the multi-host tests.

Installed by scripts/install-debian-packages (scripts/debian-packages.txt); started in the
foreground with its own configuration on free loopback ports and stopped by the test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.harness import PostelServer, free_ports

# The services a client reaches through the balancer (TCP mode, one frontend each).
BALANCED = ("smtp", "submission", "imaps", "imap", "pop3", "http")


class Balancer:
    def __init__(self, root: Path, hosts: list[PostelServer], *,
                 source: str = "127.0.0.2", proxy_protocol: bool = False) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise RuntimeError("haproxy is not installed: run scripts/install-debian-packages")
        self.binary = binary
        self.root = root
        self.hosts = hosts
        self.ports = dict(zip(BALANCED, free_ports(len(BALANCED)), strict=True))
        self.config_path = root / "haproxy.cfg"
        self.log_path = root / "haproxy.log"
        # Connections to the hosts come from `source`, so a host that sees 127.0.0.1 (the
        # test's clients) learnt it from the PROXY header, not from the TCP peer.
        # HTTP stays plain TCP: uvicorn learns the client from X-Forwarded-For instead.
        mail_proxy = " send-proxy-v2 check-send-proxy" if proxy_protocol else ""
        sections = [
            "global\n  maxconn 4000\n",
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n"
            "  timeout server 1h\n  timeout check 2s\n  retries 2\n"
            "  option redispatch\n",
        ]
        for service, port in self.ports.items():
            send_proxy = mail_proxy if service != "http" else ""
            servers = "".join(
                f"  server {chr(97 + i)} 127.0.0.1:{host.port(service)} source {source}"
                f" check inter 300ms fall 2 rise 2{send_proxy}\n"
                for i, host in enumerate(hosts))
            check = "  option httpchk GET /healthz\n" if service == "http" else ""
            sections.append(f"frontend {service}_in\n  bind 127.0.0.1:{port}\n"
                            f"  default_backend {service}\n")
            sections.append(f"backend {service}\n  balance roundrobin\n{check}{servers}")
        self.config_path.write_text("\n".join(sections))
        self.process: subprocess.Popen[bytes] | None = None

    def port(self, service: str) -> int:
        return self.ports[service]

    def start(self, timeout: float = 20.0) -> None:
        check = subprocess.run([self.binary, "-c", "-f", str(self.config_path)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}"
                               f"{check.stderr}")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([self.binary, "-db", "-f", str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        for port in self.ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"haproxy did not start:\n{self.log_path.read_text()}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

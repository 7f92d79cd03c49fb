"""Helpers for the outbound and mailauth tests (no tests here): a DNS server on loopback
(dnslib) serving a zone the test edits, and a scriptable SMTP receiver that binds
127.0.0.N on the port Postel's [outbound] mx_port points at."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import AAAA, MX, QTYPE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from tests.harness import free_ports


class Zone(BaseResolver):  # type: ignore[misc]
    """Records by (name, type); answers NXDOMAIN for names it has nothing for. Names in
    `validated` are answered with the AD bit, as a validating resolver answers for a
    DNSSEC-signed zone (RFC 4035 3.2.3)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.failing: set[str] = set()  # names answered with SERVFAIL
        self.validated: set[str] = set()
        self.lock = threading.Lock()

    def add(self, name: str, rdtype: str, value: str) -> None:
        with self.lock:
            self.records.setdefault((name.lower().rstrip("."), rdtype), []).append(value)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        rdtype = QTYPE[request.q.qtype]
        with self.lock:
            if name in self.failing:
                reply.header.rcode = 2  # SERVFAIL
                return reply
            values = list(self.records.get((name, rdtype), []))
            exists = any(key[0] == name for key in self.records)
        for value in values:
            if rdtype == "A":
                rdata: Any = A(value)
            elif rdtype == "AAAA":
                rdata = AAAA(value)
            elif rdtype == "MX":
                preference, host = value.split()
                rdata = MX(host, int(preference))
            elif rdtype == "TXT":
                rdata = TXT([value[i : i + 255].encode() for i in range(0, len(value), 255)])
            else:  # pragma: no cover
                continue
            reply.add_answer(RR(request.q.qname, QTYPE.reverse[rdtype], rdata=rdata, ttl=1))
        if not values and not exists:
            reply.header.rcode = 3  # NXDOMAIN
        # request.reply() copies the query's flags, AD (RFC 6840 5.7) among them.
        reply.header.ad = int(bool(values) and name in self.validated)
        return reply


@dataclass
class DnsFixture:
    zone: Zone
    port: int

    @property
    def config(self) -> str:
        return f'[dns]\nnameservers = ["127.0.0.1:{self.port}"]\ntimeout = 3\n'


@pytest.fixture
def dns_server() -> Iterator[DnsFixture]:
    zone = Zone()
    for _ in range(5):
        port = free_ports(1)[0]
        try:
            quiet = DNSLogger("-recv,-send,-request,-reply,-truncated,-error,-data")
            udp = DNSServer(zone, address="127.0.0.1", port=port, logger=quiet)
            tcp = DNSServer(zone, address="127.0.0.1", port=port, tcp=True, logger=quiet)
        except OSError:
            continue
        break
    else:  # pragma: no cover
        raise RuntimeError("no free port for the DNS server")
    udp.start_thread()
    tcp.start_thread()
    yield DnsFixture(zone, port)
    udp.stop()
    tcp.stop()


# -- a scriptable receiving SMTP server ------------------------------------------------


@dataclass
class Received:
    mail_from: str
    recipients: list[str]
    data: bytes
    mail_params: str = ""  # MAIL's parameters as sent ("BODY=BINARYMIME SIZE=10")


@dataclass
class Receiver:
    """An SMTP server on 127.0.0.N:port. `rcpt_reply(address)` and `data_replies` (used
    in order, then "250") script it; it records connections and accepted messages."""

    host: str
    port: int
    rcpt_reply: Callable[[str], str] = lambda address: "250 2.1.5 OK"
    data_replies: list[str] = field(default_factory=list)
    extensions: tuple[str, ...] = ("8BITMIME", "SMTPUTF8", "SIZE 100000000", "PIPELINING")
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # every command line, as received
    data_delay: float = 0.0  # seconds before answering the final dot (a slow peer)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: socketserver.ThreadingTCPServer | None = None

    def message_ids(self) -> list[str]:
        ids = []
        for message in self.messages:
            found = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", message.data)
            ids.append(found.group(1).decode() if found else "")
        return ids

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; {len(self.messages)} messages received")
            time.sleep(0.02)


def _make_handler(receiver: Receiver) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, text: str) -> None:
            self.wfile.write(text.encode() + b"\r\n")

        def handle(self) -> None:
            with receiver.lock:
                receiver.connections += 1
            self.reply("220 fake.test ESMTP")
            mail_from, rcpts, params, chunks = "", [], "", []
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                command = line.decode("utf-8", "replace").strip()
                with receiver.lock:
                    receiver.commands.append(command)
                verb = command[:4].upper()
                if verb == "EHLO":
                    lines = ["fake.test", *receiver.extensions]
                    # One write for the whole reply, as real servers do (separate small
                    # writes meet Nagle and delayed ACKs: 40 ms per EHLO).
                    self.reply("\r\n".join(
                        f"250{' ' if index == len(lines) - 1 else '-'}{text}"
                        for index, text in enumerate(lines)
                    ))
                elif verb == "MAIL":
                    mail_from, *words = command.partition(":")[2].split()
                    mail_from, params = mail_from.strip("<>"), " ".join(words)
                    rcpts, chunks = [], []
                    self.reply("250 2.1.0 OK")
                elif verb == "RCPT":
                    address = command.partition(":")[2].split()[0].strip("<>")
                    answer = receiver.rcpt_reply(address)
                    if answer.startswith("25"):
                        rcpts.append(address)
                    self.reply(answer)
                elif verb == "DATA":
                    self.reply("354 go ahead")
                    chunks = []
                    while True:
                        data_line = self.rfile.readline()
                        if not data_line:
                            return  # the client went away mid-DATA: nothing accepted
                        if data_line == b".\r\n":
                            break
                        chunks.append(data_line[1:] if data_line.startswith(b"..") else data_line)
                    if receiver.data_delay:
                        time.sleep(receiver.data_delay)
                    with receiver.lock:
                        answer = receiver.data_replies.pop(0) if receiver.data_replies else "250"
                        if answer.startswith("250"):
                            receiver.messages.append(
                                Received(mail_from, rcpts, b"".join(chunks), params))
                    self.reply(answer if answer != "250" else "250 2.0.0 accepted")
                elif verb == "BDAT":  # RFC 3030: exactly the octets counted, kept raw
                    size, *last = command.split()[1:]
                    chunks.append(self.rfile.read(int(size)))
                    if not last:
                        self.reply("250 2.0.0 chunk OK")
                        continue
                    with receiver.lock:
                        receiver.messages.append(
                            Received(mail_from, rcpts, b"".join(chunks), params))
                    self.reply("250 2.0.0 accepted")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 OK")

    return Handler


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(host: str, port: int, **kwargs: Any) -> Receiver:
        receiver = Receiver(host, port, **kwargs)
        server = _Server((host, port), _make_handler(receiver))
        receiver.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        assert receiver.server is not None
        receiver.server.shutdown()
        receiver.server.server_close()


def unused_port() -> int:
    """A port free on 127.0.0.1 (the receivers bind other 127.0.0.N with the same port)."""
    return free_ports(1)[0]


def connect_refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return False
    except OSError:
        return True


def log_entries(server: Any, msg: str) -> list[dict[str, Any]]:
    """JSON log lines of a PostelServer with this message."""
    import json

    entries = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == msg:
                entries.append(entry)
    return entries


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)

"""STARTTLS command injection through a second TCP segment (issue 15, item 1).

A man in the middle appends a plaintext command in its own segment right behind the
client's STARTTLS. Whatever arrives before the handshake must be discarded (or fail the
handshake); it must never be answered inside the TLS session (RFC 3207 4.2, RFC 2595 3.1,
RFC 9051 6.2.1). The race is narrow, so each protocol is probed many times.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from postel.starttls import upgrade_to_tls
from tests.harness import PostelServer
from tests.integration.hardening_helpers import read_until_closed

TRIES = 30
# Gaps (seconds) between the STARTTLS segment and the attacker's, cycled over the tries
# so that the second segment lands at different points of the server's short window
# between reading STARTTLS and starting the handshake. They shape the attack; nothing
# waits on them.
GAPS = (0.0, 0.0001, 0.0002, 0.0004, 0.0007, 0.001)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("starttls"))
    server.start()
    yield server
    server.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    # Each send() is its own segment, as the attacker's would be.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _line(sock: socket.socket) -> bytes:
    """One line, read byte by byte so nothing after it is consumed before the handshake."""
    data = b""
    while not data.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed after {data!r}")
        data += byte
    return data


def _probe(
    server: PostelServer, port: int, before: list[bytes], starttls: bytes, injected: bytes,
    after: bytes, gap: float,
) -> bytes | None:
    """Everything the server says inside TLS after `after`; None when the injected bytes
    broke the handshake (which is as good as discarding them)."""
    sock = _connect(port)
    try:
        _line(sock)  # greeting
        for command in before:
            sock.send(command)
            while True:  # multi-line SMTP replies: "250-" lines, then "250 "
                line = _line(sock)
                if line[3:4] != b"-":
                    break
        sock.send(starttls)
        if gap:
            time.sleep(gap)
        sock.send(injected)
        _line(sock)  # the go-ahead for TLS
        try:
            tls = server.client_tls().wrap_socket(sock)
        except (ConnectionError, ssl.SSLError):
            return None
        tls.sendall(after)
        return read_until_closed(tls)
    finally:
        sock.close()


def test_smtp_starttls_discards_a_second_segment(server: PostelServer) -> None:
    for port in (server.port("smtp"), server.port("submission")):
        for i in range(TRIES):
            answer = _probe(
                server, port, [b"EHLO client.test\r\n"], b"STARTTLS\r\n", b"HELP\r\n",
                b"QUIT\r\n", GAPS[i % len(GAPS)],
            )
            # Only QUIT's 221 may come back; a 214 would be the injected HELP.
            assert answer is None or answer.startswith(b"221 "), answer


def test_imap_starttls_discards_a_second_segment(server: PostelServer) -> None:
    for i in range(TRIES):
        answer = _probe(
            server, server.port("imap"), [], b"a STARTTLS\r\n", b"x NOOP\r\n",
            b"b LOGOUT\r\n", GAPS[i % len(GAPS)],
        )
        assert answer is None or b"x OK" not in answer, answer
        assert answer is None or b"b OK" in answer, answer


def test_pop3_stls_discards_a_second_segment(server: PostelServer) -> None:
    for i in range(TRIES):
        answer = _probe(
            server, server.port("pop3"), [], b"STLS\r\n", b"CAPA\r\n", b"QUIT\r\n",
            GAPS[i % len(GAPS)],
        )
        # Only QUIT's one line may come back; a CAPA list would be the injected command.
        assert answer is None or answer.count(b"\r\n") == 1, answer


def test_bytes_buffered_before_the_handshake_never_reach_the_tls_session(
    server: PostelServer,
) -> None:
    """The race made certain: the injected segment is already in asyncio's StreamReader
    buffer when the upgrade starts (the case the probes above hit only sometimes)."""
    result: dict[str, bytes] = {}
    buffered = threading.Event()

    async def serve() -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(server.cert_path, server.data_dir / "tls" / "selfsigned.key")
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()  # STARTTLS
            writer.write(b"220 go ahead\r\n")
            await writer.drain()
            # Wait (without a fixed sleep) until the plaintext sits in the buffer.
            while len(reader._buffer) < len(b"INJECTED\r\n"):  # type: ignore[attr-defined]
                await asyncio.sleep(0.001)
            buffered.set()  # the client may start its handshake; reading pauses first
            await upgrade_to_tls(reader, writer, context, 10.0)
            result["first"] = await reader.readline()
            writer.close()
            done.set()

        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        result["port"] = str(port).encode()
        ready.set()
        await asyncio.wait_for(done.wait(), 30)
        listener.close()

    ready = threading.Event()
    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert ready.wait(30)
    sock = _connect(int(result["port"]))
    sock.send(b"STARTTLS\r\n")
    assert _line(sock).startswith(b"220")
    sock.send(b"INJECTED\r\n")
    assert buffered.wait(30)
    tls = server.client_tls().wrap_socket(sock)
    tls.sendall(b"AFTER\r\n")
    thread.join(30)
    tls.close()
    assert result["first"] == b"AFTER\r\n"

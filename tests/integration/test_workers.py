"""Several worker processes (server.workers = 2): one server for the module.

Which worker serves a connection is the kernel's choice; each test opens connections
until it has one on each worker, told apart by IMAP ID's `x-worker` and POP3 CAPA's
IMPLEMENTATION (only shown because this config sets server.expose_worker_id). The
SIGTERM test comes last: it stops the module's server.
"""

from __future__ import annotations

import asyncio
import json
import os
import poplib
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from imapclient import IMAPClient

from postel.app import open_store
from postel.config import SERVICES, load_config
from postel.tls import generate_self_signed
from tests.harness import PASSWORD, PostelServer, free_ports
from tests.integration.smtp_helpers import RawSmtp
from tests.integration.test_smtp_load import MANY, make_message, send_one

USER = "alice@example.test"
TRIES = 60  # connections opened at most to find one on a given worker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    root = tmp_path_factory.mktemp("workers")
    cert, key = root / "cert.pem", root / "key.pem"
    generate_self_signed("first.example.test", cert, key)
    postel = PostelServer(root, extra_config=(
        f'{MANY}[tls]\ncert = "{cert}"\nkey = "{key}"\n'
        "[server]\nworkers = 2\nexpose_worker_id = true\nworker_restart_delay = 0.2\n"
    ))
    postel.start()  # on an empty store: the supervisor creates the first admin, once
    postel.add_user(USER)
    yield postel
    postel.close()


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def worker_of(client: IMAPClient) -> int:
    """The x-worker of the server's ID answer (a parenthesised name/value list)."""
    items = client.id_()[0]
    answer = dict(zip(items[::2], items[1::2], strict=False))
    return int(answer[b"x-worker"])


def imap_on(server: PostelServer, worker: int, user: str = USER) -> IMAPClient:
    """A logged-in IMAP session served by worker `worker`."""
    for _ in range(TRIES):
        client = IMAPClient("127.0.0.1", port=server.port("imaps"), ssl=True,
                            ssl_context=client_tls(), timeout=30)
        if worker_of(client) == worker:
            client.login(user, PASSWORD)
            return client
        client.logout()
    raise AssertionError(f"no connection reached worker {worker}")


def pop3_on(server: PostelServer, worker: int) -> poplib.POP3_SSL:
    for _ in range(TRIES):
        client = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=client_tls(),
                                 timeout=30)
        if client.capa().get("IMPLEMENTATION") == ["Postel", f"x-worker={worker}"]:
            return client
        client.quit()
    raise AssertionError(f"no connection reached worker {worker}")


def log_entries(server: PostelServer) -> list[dict[str, object]]:
    entries = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def worker_pids(server: PostelServer) -> dict[int, int]:
    """index -> pid of the live workers, from the supervisor's log."""
    pids: dict[int, int] = {}
    for entry in log_entries(server):
        if entry.get("logger") == "postel.supervisor" and entry["msg"] == "worker started":
            pids[int(str(entry["index"]))] = int(str(entry["pid"]))
    return pids


def test_the_banner_and_the_first_admin_are_printed_once(server: PostelServer) -> None:
    output = server.log_path.read_text()
    assert output.count(" is serving ") == 1
    assert output.count("First admin: admin@mail.example.test") == 1
    assert f"imaps        127.0.0.1:{server.port('imaps')}" in output
    assert "outbound " in output
    assert sorted(worker_pids(server)) == [0, 1]


def test_an_append_on_one_worker_wakes_idle_on_the_other(server: PostelServer) -> None:
    watcher, actor = imap_on(server, 0), imap_on(server, 1)
    try:
        exists = watcher.select_folder("INBOX")[b"EXISTS"]
        watcher.idle()
        actor.append("INBOX", b"Subject: across workers\r\n\r\nhello\r\n")
        # The hint crosses the hub; the timeout only bounds a broken server.
        responses = watcher.idle_check(timeout=30)
        watcher.idle_done()
        assert (exists + 1, b"EXISTS") in responses
    finally:
        watcher.logout()
        actor.logout()


def test_pop3_in_use_holds_across_workers(server: PostelServer) -> None:
    first, second = pop3_on(server, 0), pop3_on(server, 1)
    try:
        first.user(USER)
        assert first.pass_(PASSWORD).startswith(b"+OK")
        second.user(USER)
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_(PASSWORD)
        first.quit()  # the lock goes with the session, on the other worker too
        second.user(USER)
        assert second.pass_(PASSWORD).startswith(b"+OK")
    finally:
        second.quit()


def _served(server: PostelServer) -> dict[int, str]:
    """worker -> the certificate subject its IMAPS handshakes present now."""
    found: dict[int, str] = {}
    for _ in range(TRIES):
        with IMAPClient("127.0.0.1", port=server.port("imaps"), ssl=True,
                        ssl_context=client_tls(), timeout=30) as client:
            sock = client._imap.sock
            assert isinstance(sock, ssl.SSLSocket)
            der = sock.getpeercert(binary_form=True)
            assert der is not None
            worker = worker_of(client)
            found[worker] = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        if len(found) == 2:
            break
    return found


def test_metrics_are_the_same_whichever_worker_answers(server: PostelServer) -> None:
    # The gauges are read from the shared store at scrape time; several scrapes reach
    # both workers (new connection each time) and must agree.
    answers = set()
    for _ in range(6):
        with urllib.request.urlopen(f"https://127.0.0.1:{server.port('https')}/metrics",
                                    context=client_tls(), timeout=30) as response:
            text = response.read().decode()
        answers.add(next(line for line in text.splitlines()
                         if line.startswith("postel_accounts ")))
    assert answers == {"postel_accounts 2"}  # the first admin and alice


def test_sighup_reloads_the_certificate_in_every_worker(server: PostelServer) -> None:
    assert set(_served(server).values()) == {"CN=first.example.test"}
    cert = server.config.tls.cert
    key = server.config.tls.key
    assert cert is not None and key is not None
    generate_self_signed("second.example.test", cert, key)
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while _served(server) != {0: "CN=second.example.test", 1: "CN=second.example.test"}:
        assert time.monotonic() < deadline, "a worker kept the old certificate"
        time.sleep(0.1)


def test_a_killed_worker_is_restarted_and_nothing_acknowledged_is_lost(
    server: PostelServer,
) -> None:
    victim = worker_pids(server)[1]
    acknowledged: set[int] = set()

    async def client(number: int, stop: asyncio.Event) -> None:
        port = server.port("smtp")
        while not stop.is_set():
            # A refusal (the killed worker's connections) is fine: it was not acknowledged.
            if await send_one(port, number, make_message(number, 20_000)):
                acknowledged.add(number)
            number += 1

    async def run() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(100_000 + w * 1000, stop)) for w in range(20)]
        while len(acknowledged) < 60:
            await asyncio.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        before = len(acknowledged)
        # The surviving worker goes on accepting meanwhile.
        while len(acknowledged) < before + 60:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    deadline = time.monotonic() + 60
    while worker_pids(server).get(1) == victim:
        assert time.monotonic() < deadline, "the killed worker was not restarted"
        time.sleep(0.1)
    died = [e for e in log_entries(server) if e["msg"] == "worker died; restarting it"]
    assert died and died[-1]["pid"] == victim
    imap_on(server, 1).logout()  # the new worker 1 serves
    stored = {data[data.index(b"Message-ID: <load-") + 18:].split(b"@", 1)[0]
              for data in server.inbox(USER) if b"Message-ID: <load-" in data}
    assert {str(n).encode() for n in acknowledged} <= stored
    for meta_blob in server.inbox(USER):
        assert meta_blob  # every row's body is present


def test_a_password_changed_on_the_command_line_signs_out_every_worker(
    server: PostelServer,
) -> None:
    bob = "bob@example.test"
    server.add_user(bob)
    sessions = []
    for worker in (0, 1):
        client = imap_on(server, worker, user=bob)
        client.select_folder("INBOX")
        client.idle()
        sessions.append(client)
    changed = server.cli("user", "passwd", bob, "--password-stdin",
                         input="a different horse battery\n")
    assert changed.returncode == 0, changed.stderr
    for client in sessions:
        # CredentialsChanged reached both workers through the hub: each IDLE ends in BYE.
        responses = client.idle_check(timeout=30)
        assert any(b"BYE" in (item if isinstance(item, bytes) else b" ".join(
            part for part in item if isinstance(part, bytes))) for item in responses), responses


def test_a_port_in_use_is_one_clear_error_before_any_worker_starts(
    make_postel: Callable[..., PostelServer],
) -> None:
    other = make_postel(services=("smtp",), workers=2)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", other.port("smtp")))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "postel", "serve", "--config", str(other.config_path)],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 2
    assert result.stderr.count(f"listen.smtp: cannot bind 127.0.0.1:{other.port('smtp')}") == 1
    assert "worker started" not in result.stderr and "Traceback" not in result.stderr


def test_a_worker_that_cannot_start_fails_the_start_and_creates_no_admin(
    tmp_path: Path,
) -> None:
    # Each worker's web service refuses test hooks on a non-loopback address.
    [port] = free_ports(1)
    listen = "\n".join(f'{name} = ""' for name in SERVICES if name != "smtp")
    config = tmp_path / "postel.toml"
    config.write_text(
        f'hostname = "mail.example.test"\ndata_dir = "{tmp_path / "data"}"\n'
        "[server]\nworkers = 2\n[web]\ntest_hooks = true\n"
        f'[listen]\nsmtp = "0.0.0.0:{port}"\n{listen}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "postel", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "web.test_hooks: test hooks are refused" in result.stderr
    assert "Traceback" not in result.stderr and "First admin" not in result.stdout
    store = open_store(load_config(config))
    try:
        assert not store.directory.list_accounts()
    finally:
        store.close()


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(server: PostelServer) -> None:
    pids = list(worker_pids(server).values())
    idle = RawSmtp(server.port("smtp"))
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert idle.reply()[0] == 421
    assert server.process.wait(60) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port("smtp")), timeout=5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True

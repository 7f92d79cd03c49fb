"""A real POP3 client from Debian (fetchmail, listed in scripts/debian-packages.txt)
downloads mail over 110 + STLS and over 995, verifying the server's certificate; with
"keep" (leave a copy on the server) it never downloads a message twice."""

from __future__ import annotations

import mailbox
import os
import shutil
import smtplib
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import PASSWORD, PostelServer

pytestmark = pytest.mark.skipif(
    shutil.which("fetchmail") is None,
    reason="fetchmail is not installed; run scripts/install-debian-packages",
)

USER = "fetch@example.test"

# fetchmail exit codes (fetchmail(1) EXIT CODES)
RETRIEVED = 0
NO_MAIL = 1


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise


class Fetchmail:
    def __init__(self, server: PostelServer, home: Path) -> None:
        self.server = server
        self.home = home
        home.mkdir()
        self.ids = home / "fetchids"
        # fetchmail hands an MDA one bare message; this one appends it to an mbox file.
        self.mda = home / "mda"
        self.mda.write_text(
            '#!/bin/sh\n{ echo "From fetchmail@localhost Thu Jan  1 00:00:00 1970"; cat; echo; }'
            ' >> "$1"\n'
        )
        self.mda.chmod(0o755)

    def run(
        self, *, implicit_tls: bool, keep: bool, mbox: Path
    ) -> subprocess.CompletedProcess[str]:
        port = self.server.port("pop3s" if implicit_tls else "pop3")
        # "ssl" is implicit TLS (995); "sslproto" without "ssl" makes fetchmail require
        # STLS on 110. sslcertck + sslcertfile: the server's certificate must verify.
        tls = "ssl" if implicit_tls else "sslproto TLS1.2+"
        rc = self.home / "fetchmailrc"
        rc.write_text(
            "set no syslog\nset no bouncemail\n"
            f"poll localhost with proto POP3 port {port} uidl\n"
            f'  user "{USER}" there with password "{PASSWORD}" is "nobody" here\n'
            f'  {tls} sslcertck sslcertfile "{self.server.cert_path}"\n'
            f'  {"keep" if keep else "nokeep fetchall"} mda "{self.mda} {mbox}"\n'
        )
        rc.chmod(0o600)  # fetchmail refuses a readable rc file that holds a password
        env = dict(os.environ, HOME=str(self.home), FETCHMAILHOME=str(self.home))
        return subprocess.run(
            ["fetchmail", "--verbose", "--nodetach", "--fetchmailrc", str(rc),
             "--idfile", str(self.ids)],
            capture_output=True, text=True, timeout=60, env=env,
        )


def subjects(mbox: Path) -> list[str]:
    if not mbox.exists():
        return []
    return [str(message["Subject"]) for message in mailbox.mbox(str(mbox))]


def send(server: PostelServer, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
        client.sendmail(
            "x@remote.test", [USER], f"Subject: {subject}\r\n\r\n.dot line\r\nbody\r\n".encode()
        )


def test_fetchmail_over_stls_and_995(
    make_postel: Callable[..., PostelServer], tmp_path: Path
) -> None:
    server = make_postel()
    server.add_user(USER)
    server.start()
    wait_for_port(server.port("pop3"))
    wait_for_port(server.port("pop3s"))
    fetchmail = Fetchmail(server, tmp_path / "home")
    kept = tmp_path / "kept.mbox"
    send(server, "one")
    send(server, "two")

    # Leave a copy on the server, over 110 + STLS.
    result = fetchmail.run(implicit_tls=False, keep=True, mbox=kept)
    assert result.returncode == RETRIEVED, result.stdout + result.stderr
    assert "POP3> STLS" in result.stdout and "upgrade to TLS succeeded" in result.stdout
    assert subjects(kept) == ["one", "two"]
    text = kept.read_text()
    assert "\n.dot line\n" in text and "..dot line" not in text  # un-stuffed to one dot

    # Same again over 995: UIDL tells fetchmail it has both already.
    result = fetchmail.run(implicit_tls=True, keep=True, mbox=kept)
    assert result.returncode == NO_MAIL, result.stdout + result.stderr
    assert "SSL/TLS: using protocol" in result.stdout
    send(server, "three")
    result = fetchmail.run(implicit_tls=True, keep=True, mbox=kept)
    assert result.returncode == RETRIEVED, result.stdout + result.stderr
    assert subjects(kept) == ["one", "two", "three"]  # never a message twice
    assert len(server.inbox(USER)) == 3

    # Without "keep", over STLS: everything is downloaded and deleted at QUIT.
    taken = tmp_path / "taken.mbox"
    result = fetchmail.run(implicit_tls=False, keep=False, mbox=taken)
    assert result.returncode == RETRIEVED, result.stdout + result.stderr
    assert sorted(subjects(taken)) == ["one", "three", "two"]
    assert server.inbox(USER) == []

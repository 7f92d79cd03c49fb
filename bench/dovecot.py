"""Debian's Dovecot, installed when missing, run as a private instance on loopback ports.

Its own config, base_dir, state and Maildirs live under a temporary directory
(`dovecot -c FILE`, `dovecot -c FILE stop`); it listens on 127.0.0.1 only, on free high
ports for POP3 and IMAP, without TLS. Users and their messages are written straight into
a passwd-file and Maildirs. A system Dovecot, if one runs, is left alone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench.debian import ensure_installed
from bench.framework import BenchError

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
instance_name = postel-bench-{instance}
base_dir = {root}/run
state_dir = {root}/state
protocols = pop3 imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {root}/dovecot.log
first_valid_uid = 1
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
{auth_listener}service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


AUTH_LISTENER = """\
service auth {{
  inet_listener sasl {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def ensure_dovecot() -> str:
    """Install Debian's Dovecot (core, POP3, IMAP) if missing; return its version."""
    ensure_installed(DOVECOT, ["dovecot-core", "dovecot-pop3d", "dovecot-imapd"])
    for binary in ("/usr/lib/dovecot/pop3", "/usr/lib/dovecot/imap"):
        if not Path(binary).exists():
            ensure_installed(binary, ["dovecot-pop3d", "dovecot-imapd"])
    done = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.split()[0] if done.stdout.strip() else "unknown"


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class PrivateDovecot:
    """One Dovecot instance living entirely under `root`."""

    def __init__(
        self, root: Path, *, password_scheme: str = "PLAIN", auth_port: int = 0,
    ) -> None:
        """`password_scheme` as `doveadm pw -s` names it: PLAIN for the retrieval runs
        (logins untimed), BLF-CRYPT (bcrypt, Dovecot's default strong scheme, cost 5)
        where logins are what is measured."""
        self.root = root
        self.password_scheme = password_scheme
        # Non-zero: the auth service also listens on this loopback port, for Postfix's
        # SASL (smtpd_sasl_type = dovecot, smtpd_sasl_path = inet:127.0.0.1:PORT).
        self.auth_port = auth_port
        self.config_path = root / "dovecot.conf"
        self.log_path = root / "dovecot.log"
        self.pop3_port, self.imap_port = _free_ports(2)
        self.owner = pwd.getpwnam("nobody")
        self.started = False
        self._users: list[tuple[str, str]] = []

    def port(self, protocol: str) -> int:
        return {"pop3": self.pop3_port, "imap": self.imap_port}[protocol]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log written)"

    def _maildir(self, user: str) -> Path:
        return self.root / "mail" / user / "Maildir"

    def add_user(self, user: str, password: str, messages: Sequence[bytes] = ()) -> None:
        """A user with these messages already in INBOX (Maildir cur/, unread)."""
        self._users.append((user, password))
        maildir = self._maildir(user)
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        for number, message in enumerate(messages):
            path = maildir / "cur" / f"{stamp}.M{number}P{os.getpid()}.bench,S={len(message)}:2,"
            path.write_bytes(message)
        uid, gid = self.owner.pw_uid, self.owner.pw_gid
        for directory, _, files in os.walk(self.root / "mail" / user):
            os.chown(directory, uid, gid)
            for name in files:
                os.chown(os.path.join(directory, name), uid, gid)

    def _hash(self, password: str) -> str:
        """The passwd-file field: {SCHEME}hash, made by doveadm itself."""
        if self.password_scheme == "PLAIN":
            return f"{{PLAIN}}{password}"
        done = subprocess.run(
            ["doveadm", "pw", "-s", self.password_scheme, "-p", password],
            capture_output=True, text=True, check=False, timeout=60,
        )
        if done.returncode != 0 or not done.stdout.startswith("{"):
            raise BenchError(f"doveadm pw -s {self.password_scheme} failed: {done.stderr}")
        return done.stdout.strip()

    def start(self, timeout: float = 30.0) -> None:
        if os.geteuid() != 0:
            raise BenchError("a private Dovecot instance needs root")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        (self.root / "mail").mkdir(exist_ok=True)
        (self.root / "mail").chmod(0o755)
        hashed: dict[str, str] = {}
        for _, password in self._users:
            if password not in hashed:
                hashed[password] = self._hash(password)
        (self.root / "passwd").write_text(
            "".join(f"{user}:{hashed[password]}\n" for user, password in self._users)
        )
        self.config_path.write_text(
            CONFIG.format(
                instance=os.getpid(), root=self.root, uid=self.owner.pw_uid,
                gid=self.owner.pw_gid, pop3=self.pop3_port, imap=self.imap_port,
                auth_listener=AUTH_LISTENER.format(port=self.auth_port) if self.auth_port
                else "",
            )
        )
        # Output to a file, not a pipe: the daemon keeps its inherited descriptors open.
        output = self.root / "dovecot.out"
        with output.open("wb") as sink:
            done = subprocess.run(
                [DOVECOT, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                check=False, timeout=60,
            )
        if done.returncode != 0:
            raise BenchError(
                f"dovecot -c {self.config_path} failed ({done.returncode}):\n"
                f"{output.read_text(errors='replace')}\n--- log ---\n{self.log()}"
            )
        self.started = True
        deadline = time.monotonic() + timeout
        for port in (self.pop3_port, self.imap_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise BenchError(
                            f"dovecot did not listen on 127.0.0.1:{port}:\n{self.log()}"
                        ) from None
                    time.sleep(0.05)
        while self.master_pid() is None:  # written a moment after the listeners open
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"dovecot wrote no master.pid:\n{self.log()}")
            time.sleep(0.05)

    def master_pid(self) -> int | None:
        try:
            return int((self.root / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if not self.started:
            return
        pid = self.master_pid()
        subprocess.run(
            [DOVECOT, "-c", str(self.config_path), "stop"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            check=False, timeout=60,
        )
        deadline = time.monotonic() + 20
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.started = False

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

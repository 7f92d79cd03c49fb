"""Debian's Postfix, installed when missing, run as a private instance on a loopback port.

The instance has its own config, queue and data directories under a temporary directory
(`postfix -c DIR start|stop`), listens on 127.0.0.1 only, on a high port, and delivers the
one virtual domain example.test into a Maildir. It never touches port 25 nor the system's
/etc/postfix, and leaves a system Postfix (if one runs) alone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.debian import ensure_installed
from bench.framework import BenchError

POSTFIX = "/usr/sbin/postfix"
DOMAIN = "example.test"
MAILDIR_USER = "alice"


def ensure_postfix() -> str:
    """Install Debian's postfix package if missing; return its version."""
    ensure_installed(
        POSTFIX,
        ["postfix"],
        # No system configuration: nothing of the package's own listens on port 25.
        debconf="postfix postfix/main_mailer_type select No configuration\n",
    )
    version = subprocess.run(
        ["/usr/sbin/postconf", "-d", "-h", "mail_version"],
        capture_output=True, text=True, check=False,
    )
    return version.stdout.strip() or "unknown"


MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
"""


@dataclass(frozen=True)
class Submission:
    """What a submission instance needs: a certificate and Dovecot's auth on a port."""

    cert: Path
    key: Path
    sasl_port: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivatePostfix:
    """One Postfix instance living entirely under `root`, on 127.0.0.1:`port`."""

    def __init__(
        self, root: Path, port: int | None = None, *, clients: int = 20,
        submission: Submission | None = None,
    ) -> None:
        self.root = root
        self.submission = submission
        self.port = port or free_port()
        if self.port == 25:
            raise BenchError("the private Postfix never uses port 25")
        self.clients = clients
        self.config_dir = root / "etc"
        self.queue_dir = root / "spool"
        self.data_dir = root / "lib"
        self.mail_base = root / "mail"
        self.log_path = root / "maillog"
        self.started = False

    @property
    def maildir(self) -> Path:
        return self.mail_base / MAILDIR_USER

    def _main_cf(self, owner: pwd.struct_passwd) -> str:
        limit = max(100, 4 * self.clients)
        smtpd_tls = self._smtpd_tls()
        return f"""\
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.data_dir}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.log_path}
maillog_file_prefixes = {self.root}/
myhostname = postfix-bench.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
relay_domains =
relayhost =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
{smtpd_tls}
smtp_tls_security_level = none
default_process_limit = {limit}
smtpd_client_connection_count_limit = 0
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {self.mail_base}
virtual_mailbox_maps = static:{MAILDIR_USER}/
virtual_uid_maps = static:{owner.pw_uid}
virtual_gid_maps = static:{owner.pw_gid}
"""

    def _smtpd_tls(self) -> str:
        """Plain SMTP, or submission: STARTTLS required, then SASL through Dovecot's auth
        service (the usual Debian pairing), only authenticated clients may send."""
        sub = self.submission
        if sub is None:
            return "smtpd_tls_security_level = none"
        return f"""\
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = {sub.cert}
smtpd_tls_key_file = {sub.key}
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{sub.sasl_port}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject"""

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Postfix commands print their errors only to a terminal (else to syslog, which a
        # container may not have): give stderr a pseudo-terminal to read them back.
        primary, secondary = os.openpty()
        try:
            done = subprocess.run(
                [POSTFIX, "-c", str(self.config_dir), *args],
                stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=120, check=False,
            )
            os.close(secondary)
            secondary = -1
            chunks = []
            while True:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the terminal has no writer left
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            done.stderr = b"".join(chunks).decode(errors="replace")
            return done
        finally:
            os.close(primary)
            if secondary >= 0:
                os.close(secondary)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no maillog written)"

    def start(self, timeout: float = 30.0) -> None:
        if os.geteuid() != 0:
            raise BenchError("a private Postfix instance needs root (it switches to 'postfix')")
        owner = pwd.getpwnam("nobody")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the postfix and nobody users must traverse it
        for directory in (self.config_dir, self.queue_dir, self.data_dir):
            directory.mkdir(exist_ok=True)
        self.mail_base.mkdir(exist_ok=True)
        os.chown(self.mail_base, owner.pw_uid, owner.pw_gid)
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        (self.config_dir / "main.cf").write_text(self._main_cf(owner))
        (self.config_dir / "master.cf").write_text(
            MASTER_CF.format(listen=f"127.0.0.1:{self.port}")
        )
        self.log_path.touch()
        done = self._postfix("start")
        if done.returncode != 0:
            raise BenchError(
                f"postfix -c {self.config_dir} start failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n--- maillog ---\n{self.log()}"
            )
        self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"postfix did not listen on 127.0.0.1:{self.port}:\n{self.log()}")

    def master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def queue_size(self) -> int:
        """Messages still in Postfix's queues (incoming, active, deferred)."""
        count = 0
        for name in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(self.queue_dir / name):
                count += len(files)
        return count

    def stop(self) -> None:
        if not self.started:
            return
        pid = self.master_pid()
        self._postfix("stop")
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

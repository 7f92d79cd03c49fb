"""The postel command line: domains, users, aliases, and its errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postel.auth.passwords import verify_password
from tests.harness import PostelServer


@pytest.fixture
def cli_server(make_postel: Callable[..., PostelServer]) -> PostelServer:
    return make_postel()


def test_domain_user_alias_round_trip(cli_server: PostelServer) -> None:
    run = cli_server.cli
    assert run("domain", "add", "Example.COM").stdout == "domain example.com added\n"
    assert run("domain", "list").stdout == "example.com\n"
    added = run(
        "user",
        "add",
        "Alice@Example.com",
        "--password-stdin",
        "--backup-email",
        "alice@elsewhere.org",
        "--role",
        "domain-admin",
        input="a long enough secret\n",
    )
    assert added.returncode == 0, added.stderr
    listing = run("user", "list").stdout
    assert "alice@example.com\tdomain-admin backup=alice@elsewhere.org" in listing
    account = cli_server.store.directory.get_account("alice@example.com")
    assert account is not None
    assert verify_password(account.password_hash, "a long enough secret")
    mailboxes = [m.name for m in cli_server.store.mail.list_mailboxes(account.id)]
    assert mailboxes == ["INBOX", "Drafts", "Sent", "Junk", "Trash", "Archive"]

    assert run("alias", "add", "info@example.com", "alice@example.com").returncode == 0
    assert run("alias", "add", "@example.com", "alice@example.com").returncode == 0
    assert "info@example.com\talice@example.com" in run("alias", "list").stdout
    assert run("alias", "remove", "info@example.com", "alice@example.com").returncode == 0

    changed = run(
        "user", "passwd", "ALICE@example.com", "--password-stdin", input="another long secret\n"
    )
    assert changed.returncode == 0, changed.stderr
    account = cli_server.store.directory.get_account("alice@example.com")
    assert account is not None and verify_password(account.password_hash, "another long secret")

    removed = run("domain", "remove", "example.com")
    assert removed.returncode == 1 and "still has 1 user" in removed.stderr
    assert run("user", "remove", "alice@example.com").returncode == 0
    assert run("domain", "remove", "example.com").returncode == 0


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("user", "add", "bob@nowhere.test", "--password", "long enough pw"),
            None,
            "domain nowhere.test is not hosted here",
        ),
        (
            ("user", "add", "not an address", "--password", "long enough pw"),
            None,
            "is not a valid email address",
        ),
        (("user", "add", "bob@example.test", "--password-stdin"), "short\n", "password refused"),
        (
            ("user", "passwd", "ghost@example.test", "--password-stdin"),
            "long enough pw\n",
            "user ghost@example.test does not exist",
        ),
        (("domain", "add", "bad domain"), None, "is not a valid domain name"),
        (
            ("alias", "add", "x@unhosted.test", "bob@example.test"),
            None,
            "domain unhosted.test is not hosted here",
        ),
    ],
)
def test_clear_errors(
    cli_server: PostelServer, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    cli_server.add_domain("example.test")
    result = cli_server.cli(*args, input=stdin)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_user_is_refused(cli_server: PostelServer) -> None:
    cli_server.add_user("bob@example.test")
    result = cli_server.cli("user", "add", "BOB@example.test", "--password", "long enough pw")
    assert result.returncode == 1 and "user bob@example.test already exists" in result.stderr


def test_help_lists_every_command(cli_server: PostelServer) -> None:
    result = cli_server.cli("--help")
    for command in ("serve", "domain", "user", "alias"):
        assert command in result.stdout

"""METADATA and METADATA-SERVER (RFC 5464), LIST-METADATA (RFC 9590) over real sockets.

Every test runs on 993 (implicit TLS) and 143 (STARTTLS). imapclient speaks none of these
extensions, so the commands go as raw lines (`Raw`); imapclient checks what it does know:
CAPABILITY, and that its own DELETE and RENAME take and keep the entries.
"""

from __future__ import annotations

import pytest

from postel.store.model import Role
from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, both_ports, imapclient, new_user

pytestmark = pytest.mark.usefixtures(both_ports.__name__)


def logged_in(postel: PostelServer, user: str | None = None) -> Raw:
    raw = Raw(postel)
    raw.login(user or new_user(postel))
    return raw


def test_advertised_after_login_only(postel: PostelServer) -> None:
    raw = Raw(postel)
    assert b"METADATA" not in raw.cmd(b"c", b"CAPABILITY")[0]
    raw.close()
    client = imapclient(postel, new_user(postel))
    caps = client.capabilities()
    assert {b"METADATA", b"METADATA-SERVER", b"LIST-METADATA"} <= set(caps)
    client.logout()


def test_mailbox_entries_set_get_remove(postel: PostelServer) -> None:
    raw = logged_in(postel)
    lines = raw.cmd(b"a", b'SETMETADATA INBOX (/private/comment "My comment" '
                          b"/Shared/Comment {6+}\r\nshared)")
    assert lines == [b"a OK SETMETADATA completed"]
    # RFC 5464 3.2: entry names are case-insensitive; a missing entry reads as NIL.
    lines = raw.cmd(b"b", b"GETMETADATA inbox (/PRIVATE/comment /shared/comment /shared/x)")
    assert lines == [b'* METADATA INBOX (/private/comment "My comment" /shared/comment '
                     b'"shared" /shared/x NIL)', b"b OK GETMETADATA completed"]
    assert raw.cmd(b"c", b"SETMETADATA INBOX (/private/comment NIL)")[-1].startswith(b"c OK")
    assert raw.cmd(b"d", b"GETMETADATA INBOX /private/comment")[0] == (
        b"* METADATA INBOX (/private/comment NIL)")
    # Other mailboxes and the server have their own entries.
    assert raw.cmd(b"e", b'GETMETADATA "" /shared/comment')[0] == (
        b'* METADATA "" (/shared/comment NIL)')
    raw.close()


def test_binary_value_round_trips_as_literal8(postel: PostelServer) -> None:
    raw = logged_in(postel)
    value = b"a\x00b\xff"
    lines = raw.cmd(b"a", b"SETMETADATA INBOX (/private/blob ~{%d+}\r\n" % len(value)
                    + value + b")")
    assert lines[-1].startswith(b"a OK")
    lines = raw.cmd(b"b", b"GETMETADATA INBOX /private/blob")
    assert lines[0] == b"* METADATA INBOX (/private/blob ~{4}\r\n" + value + b")"
    raw.close()


def test_depth_and_maxsize(postel: PostelServer) -> None:
    raw = logged_in(postel)
    raw.cmd(b"a", b'SETMETADATA INBOX (/private/f "1" /private/f/a "22" /private/f/a/b "333" '
                  b'/private/fx "4")')
    lines = raw.cmd(b"b", b"GETMETADATA (DEPTH 1) INBOX /private/f")
    assert lines[0] == b'* METADATA INBOX (/private/f "1" /private/f/a "22")'
    lines = raw.cmd(b"c", b"GETMETADATA (DEPTH infinity MAXSIZE 2) INBOX (/private)")
    # RFC 5464 4.2.1: what MAXSIZE left out is reported by its biggest size.
    assert lines == [b'* METADATA INBOX (/private/f "1" /private/f/a "22" /private/fx "4")',
                     b"c OK [METADATA LONGENTRIES 3] GETMETADATA completed"]
    raw.close()


def test_server_entries_private_per_user_shared_by_admin(postel: PostelServer) -> None:
    admin = new_user(postel, role=Role.ADMIN)
    user, other = new_user(postel), new_user(postel)
    raw = logged_in(postel, user)
    assert raw.cmd(b"a", b'SETMETADATA "" (/private/vendor/x "mine")')[-1].startswith(b"a OK")
    lines = raw.cmd(b"b", b'SETMETADATA "" (/shared/admin "mailto:me@example.test")')
    assert lines[-1].startswith(b"b NO [NOPERM]")
    raw.close()
    raw = logged_in(postel, admin)
    lines = raw.cmd(b"c", b'SETMETADATA "" (/shared/motd "Maintenance tonight")')
    assert lines[-1].startswith(b"c OK")
    raw.close()
    raw = logged_in(postel, other)
    lines = raw.cmd(b"d", b'GETMETADATA (DEPTH infinity) "" (/private /shared/motd)')
    assert lines[0] == b'* METADATA "" (/shared/motd "Maintenance tonight")'
    raw.close()
    raw = logged_in(postel, user)
    lines = raw.cmd(b"e", b'GETMETADATA "" (/private/vendor/x /shared/motd)')
    assert lines[0] == (b'* METADATA "" (/private/vendor/x "mine" /shared/motd '
                        b'"Maintenance tonight")')
    raw.close()


def test_errors_are_bad_or_no_never_a_traceback(postel: PostelServer) -> None:
    raw = logged_in(postel)
    for line in (b"GETMETADATA INBOX /comment", b"GETMETADATA INBOX /private/*",
                 b"GETMETADATA (DEPTH 5) INBOX /private/a", b"SETMETADATA INBOX ()",
                 b'SETMETADATA INBOX (/private "x")', b"SETMETADATA INBOX (/private/a",
                 b"GETMETADATA"):
        assert raw.cmd(b"x", line)[-1].startswith(b"x BAD"), line
    assert raw.cmd(b"y", b"GETMETADATA Nope /private/a")[-1].startswith(b"y NO [NONEXISTENT]")
    lines = raw.cmd(b"z", b'SETMETADATA Nope (/private/a "1")')
    assert lines[-1].startswith(b"z NO [NONEXISTENT]")
    assert raw.cmd(b"n", b"NOOP")[-1].startswith(b"n OK")
    raw.close()
    raw = Raw(postel)
    assert raw.cmd(b"p", b"GETMETADATA INBOX /private/a")[-1].startswith(b"p BAD")
    raw.close()


def test_entries_follow_rename_and_go_with_delete(postel: PostelServer) -> None:
    user = new_user(postel)
    client = imapclient(postel, user)
    client.create_folder("Work")
    client.logout()
    raw = logged_in(postel, user)
    raw.cmd(b"a", b'SETMETADATA Work (/private/comment "w")')
    raw.close()
    client = imapclient(postel, user)
    client.rename_folder("Work", "Job")
    client.logout()
    raw = logged_in(postel, user)
    assert raw.cmd(b"b", b"GETMETADATA Job /private/comment")[0] == (
        b'* METADATA Job (/private/comment "w")')
    raw.close()
    client = imapclient(postel, user)
    client.delete_folder("Job")
    client.create_folder("Job")
    client.logout()
    raw = logged_in(postel, user)
    assert raw.cmd(b"c", b"GETMETADATA Job /private/comment")[0] == (
        b"* METADATA Job (/private/comment NIL)")
    raw.close()


def test_list_return_metadata(postel: PostelServer) -> None:
    raw = logged_in(postel)
    raw.cmd(b"a", b'SETMETADATA INBOX (/shared/color "red" /private/big "123456")')
    raw.cmd(b"b", b'SETMETADATA Sent (/shared/color "blue")')
    lines = raw.cmd(b"c", b'LIST "" "*" RETURN (METADATA (/shared/color /private/big))')
    # RFC 9590 3: each mailbox's METADATA response follows its LIST response; a
    # mailbox without the entries reads NIL for them.
    after = {line: lines[i + 1] for i, line in enumerate(lines[:-1])}
    assert after[b'* LIST (\\HasNoChildren) "/" INBOX'] == (
        b'* METADATA INBOX (/shared/color "red" /private/big "123456")')
    assert after[b'* LIST (\\HasNoChildren) "/" Sent'] == (
        b'* METADATA Sent (/shared/color "blue" /private/big NIL)')
    assert after[b'* LIST (\\HasNoChildren) "/" Trash'] == (
        b"* METADATA Trash (/shared/color NIL /private/big NIL)")
    assert lines[-1] == b"c OK LIST completed"
    lines = raw.cmd(b"d", b'LIST "" INBOX RETURN (METADATA (MAXSIZE 3) (/shared/color '
                          b"/private/big) STATUS (MESSAGES))")
    assert lines == [b'* LIST (\\HasNoChildren) "/" INBOX', b"* STATUS INBOX (MESSAGES 0)",
                     b'* METADATA INBOX (/shared/color "red")',
                     b"d OK [METADATA LONGENTRIES 6] LIST completed"]
    assert raw.cmd(b"e", b'LIST "" "*" RETURN (METADATA ())')[-1].startswith(b"e BAD")
    raw.close()


def test_configured_limits(make_postel: object) -> None:
    server = make_postel(extra_config=(  # type: ignore[operator]
        "[imap]\nmetadata_max_value_size = 8\nmetadata_max_entries = 2\n"
        "metadata_private = false\n"))
    server.add_user("limits@example.test")
    server.start()
    raw = Raw(server)
    raw.login("limits@example.test")
    lines = raw.cmd(b"a", b'SETMETADATA INBOX (/shared/a "123456789")')
    assert lines[-1].startswith(b"a NO [METADATA MAXSIZE 8]")
    lines = raw.cmd(b"b", b'SETMETADATA INBOX (/private/a "1")')
    assert lines[-1].startswith(b"b NO [METADATA NOPRIVATE]")
    assert raw.cmd(b"c", b'SETMETADATA INBOX (/shared/a "1" /shared/b "2")')[-1].startswith(
        b"c OK")
    lines = raw.cmd(b"d", b'SETMETADATA INBOX (/shared/c "3" /shared/a "x")')
    assert lines[-1].startswith(b"d NO [METADATA TOOMANY]")
    # RFC 5464 4.3: a refused SETMETADATA sets none of its entries.
    assert raw.cmd(b"e", b"GETMETADATA INBOX /shared/a")[0] == (
        b'* METADATA INBOX (/shared/a "1")')
    raw.close()

"""NOTIFY (RFC 5465) over real sockets: a session learns of SMTP deliveries to other
mailboxes (STATUS), of mailboxes another session creates, renames, deletes or subscribes
(LIST), and of flags and expunges in the selected mailbox, between commands and in IDLE.

Raw lines exercise the wire form (no client library speaks NOTIFY); imapclient exercises
IDLE with a NOTIFY in force (its idle_check parses the unsolicited STATUS). The reads
below wait for a line the server must push; none of them measures a delay.
"""

from __future__ import annotations

import imaplib
import re
import uuid

import pytest

from postel.store.model import Role
from tests.harness import PostelServer
from tests.integration.test_imap_support import (
    Raw,
    both_ports,
    deliver,
    imapclient,
    message,
    new_user,
)
from tests.integration.test_mailauth_e2e import BOB, forged, receiving
from tests.integration.test_outbound_support import DnsFixture, dns_server

__all__ = ["dns_server", "receiving"]  # fixtures: Postel B with DMARC checks, its DNS

# Every test here runs over 993 (implicit TLS) and 143 (STARTTLS).
pytestmark = pytest.mark.usefixtures(both_ports.__name__)

PERSONAL = b"(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"


def session(postel: PostelServer, user: str) -> Raw:
    raw = Raw(postel)
    raw.login(user)
    return raw


def pushed(raw: Raw) -> bytes:
    """The next unsolicited line, without IMAP4rev1's \\Recent (which session claimed a
    message first is not what these tests are about)."""
    return raw.line().replace(b" \\Recent", b"").replace(b"(\\Recent)", b"()")


def test_notify_is_advertised_only_after_login(postel: PostelServer) -> None:
    raw = Raw(postel)
    assert b"NOTIFY" not in raw.cmd(b"c", b"CAPABILITY")[0]
    assert raw.cmd(b"n", b"NOTIFY NONE")[-1].startswith(b"n BAD")  # not authenticated
    raw.login(new_user(postel))
    assert b" NOTIFY" in raw.cmd(b"c", b"CAPABILITY")[0]
    raw.close()


def test_smtp_delivery_to_a_mailbox_not_selected_sends_status(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = session(postel, user)
    raw.cmd(b"s", b"SELECT Archive")
    lines = raw.cmd(b"n", b"NOTIFY SET STATUS (inboxes (MessageNew MessageExpunge))")
    # RFC 5465 3.1: the STATUS indicator reports each watched mailbox before the OK.
    assert re.fullmatch(rb"\* STATUS INBOX \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+\)", lines[0])
    assert lines[-1] == b"n OK NOTIFY completed"
    deliver(postel, user, message("for the inbox"))
    # Pushed while no command is in progress (RFC 5465 5.2).
    assert raw.line() == b"* STATUS INBOX (UIDNEXT 2 MESSAGES 1)"
    deliver(postel, user, message("another"))
    assert raw.line() == b"* STATUS INBOX (UIDNEXT 3 MESSAGES 2)"
    raw.close()


def test_session_on_inbox_learns_of_smtp_delivery_to_junk(
    dns_server: DnsFixture, receiving: PostelServer
) -> None:
    # Port 25 files a message that fails DMARC under p=quarantine into Junk: an SMTP
    # delivery to a mailbox other than the selected INBOX.
    dns_server.zone.add("evil.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.zone.add("_dmarc.q.test", "TXT", "v=DMARC1; p=quarantine")
    raw = session(receiving, BOB)
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"n", b"NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) "
                    b"(inboxes (MessageNew MessageExpunge))")
    assert re.fullmatch(rb"\* STATUS Junk \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+\)", lines[0])
    forged(receiving, "x@evil.test", "boss@q.test", "invoice")
    assert raw.line() == b"* STATUS Junk (UIDNEXT 2 MESSAGES 1)"  # RFC 5465 5.2
    raw.close()


def test_status_for_other_mailboxes_while_inbox_is_selected(postel: PostelServer) -> None:
    user = new_user(postel)
    watcher, actor = session(postel, user), session(postel, user)
    watcher.cmd(b"e", b"ENABLE CONDSTORE")
    watcher.cmd(b"s", b"SELECT INBOX")
    assert watcher.cmd(b"n", b"NOTIFY SET " + PERSONAL)[-1] == b"n OK NOTIFY completed"
    body = message("filed")
    actor.cmd(b"a", b"APPEND Archive {%d+}\r\n" % len(body) + body)
    line = watcher.line()
    assert re.fullmatch(rb"\* STATUS Archive \(UIDNEXT 2 MESSAGES 1 HIGHESTMODSEQ \d+\)", line)
    # With CONDSTORE a flag change elsewhere shows as UIDVALIDITY and HIGHESTMODSEQ (5.1).
    actor.cmd(b"s", b"SELECT Archive")
    actor.cmd(b"f", b"STORE 1 +FLAGS.SILENT (\\Seen)")
    assert re.fullmatch(rb"\* STATUS Archive \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)",
                        watcher.line())
    actor.cmd(b"d", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    watcher.line()  # that flag change
    actor.cmd(b"x", b"EXPUNGE")
    assert re.fullmatch(rb"\* STATUS Archive \(UIDNEXT 2 MESSAGES 0 HIGHESTMODSEQ \d+\)",
                        watcher.line())  # RFC 5465 5.3
    watcher.close()
    actor.close()


def test_mailboxes_created_renamed_deleted_and_subscribed_elsewhere(
    postel: PostelServer,
) -> None:
    user = new_user(postel)
    watcher, actor = session(postel, user), session(postel, user)
    watcher.cmd(b"s", b"SELECT INBOX")
    watcher.cmd(b"n", b"NOTIFY SET " + PERSONAL)
    actor.cmd(b"c", b"CREATE Projects")
    assert watcher.line() == b'* LIST (\\HasNoChildren) "/" Projects'  # RFC 5465 5.4
    actor.cmd(b"u", b"SUBSCRIBE Projects")
    # RFC 5465 5.5: \\Subscribed iff subscribed after the event.
    assert watcher.line() == b'* LIST (\\HasNoChildren \\Subscribed) "/" Projects'
    actor.cmd(b"r", b"RENAME Projects Work")  # the subscription moves with the name
    assert watcher.line() == (b'* LIST (\\HasNoChildren \\Subscribed) "/" Work '
                              b'("OLDNAME" (Projects))')
    actor.cmd(b"v", b"UNSUBSCRIBE Work")
    assert watcher.line() == b'* LIST (\\HasNoChildren) "/" Work'
    actor.cmd(b"d", b"DELETE Work")
    assert watcher.line() == b'* LIST (\\NonExistent) "/" Work'
    # The watcher's own changes are not echoed back (RFC 5465 5): the NOOP answers first.
    watcher.cmd(b"c", b"CREATE Mine")
    assert watcher.cmd(b"o", b"NOOP") == [b"o OK NOOP completed"]
    watcher.close()
    actor.close()


def test_flags_and_new_mail_in_the_selected_mailbox(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("first"))
    watcher, actor = session(postel, user), session(postel, user)
    watcher.cmd(b"s", b"SELECT INBOX")
    lines = watcher.cmd(
        b"n", b"NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        b" MessageExpunge FlagChange)) " + PERSONAL)
    assert lines[-1] == b"n OK NOTIFY completed"
    actor.cmd(b"s", b"SELECT INBOX")
    actor.cmd(b"f", b"STORE 1 +FLAGS.SILENT (\\Flagged)")
    # RFC 5465 5.1: an unsolicited FETCH with UID and FLAGS.
    assert pushed(watcher) == b"* 1 FETCH (FLAGS (\\Flagged) UID 1)"
    deliver(postel, user, message("second"))
    # RFC 5465 5.2: EXISTS, then a FETCH of what MessageNew asked for.
    assert watcher.line() == b"* 2 EXISTS"
    line = watcher.line()
    while not line.startswith(b"* 2 FETCH"):
        line = watcher.line()  # RECENT (IMAP4rev1)
    assert line.startswith(b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {")
    assert b"Subject: second" in line
    watcher.close()
    actor.close()


@pytest.mark.parametrize(("filter_", "first"), [
    (b"selected", b"* 1 EXPUNGE"),
    (b"selected-delayed", b"* 2 FETCH (FLAGS (\\Flagged) UID 2)"),
])
def test_selected_sends_expunge_at_once_and_selected_delayed_waits(
    postel: PostelServer, filter_: bytes, first: bytes
) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    deliver(postel, user, message("two"))
    watcher, actor = session(postel, user), session(postel, user)
    watcher.cmd(b"s", b"SELECT INBOX")
    watcher.cmd(b"n", b"NOTIFY SET (" + filter_ + b" (MessageNew MessageExpunge FlagChange))")
    actor.cmd(b"s", b"SELECT INBOX")
    actor.cmd(b"d", b"STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert pushed(watcher) == b"* 1 FETCH (FLAGS (\\Deleted) UID 1)"
    actor.cmd(b"x", b"EXPUNGE")
    actor.cmd(b"f", b"UID STORE 2 +FLAGS.SILENT (\\Flagged)")
    # SELECTED (6.1.1) sends the EXPUNGE at once; SELECTED-DELAYED (6.1.2) keeps it for a
    # command that allows it, so message 2 keeps its number meanwhile.
    assert pushed(watcher) == first
    if filter_ == b"selected":
        assert pushed(watcher) == b"* 1 FETCH (FLAGS (\\Flagged) UID 2)"
    else:
        assert watcher.cmd(b"o", b"NOOP")[0] == b"* 1 EXPUNGE"
    watcher.close()
    actor.close()


def test_notify_none_stops_the_notifications(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = session(postel, user)
    raw.cmd(b"n", b"NOTIFY SET (inboxes (MessageNew MessageExpunge))")
    assert raw.cmd(b"x", b"NOTIFY NONE") == [b"x OK NOTIFY completed"]
    deliver(postel, user, message("unannounced"))
    assert raw.cmd(b"o", b"NOOP") == [b"o OK NOOP completed"]
    raw.close()


def test_idle_with_notify_reports_other_mailboxes(postel: PostelServer) -> None:
    # imapclient has no NOTIFY method: the command goes through its imaplib connection,
    # and imapclient's own IDLE then parses the STATUS that NOTIFY makes the server push.
    user = new_user(postel)
    with imapclient(postel, user) as c:
        c.select_folder("Archive")
        imaplib.Commands.setdefault("NOTIFY", ("AUTH", "SELECTED"))
        typ, _ = c._imap._simple_command("NOTIFY", "SET", "(inboxes (MessageNew MessageExpunge))")
        assert typ == "OK"
        c.idle()
        deliver(postel, user, message("during idle"))
        responses = c.idle_check(timeout=30)
        c.idle_done()
        statuses = [r for r in responses if r[0] == b"STATUS"]
        assert statuses and statuses[0][1] == b"INBOX"
        assert list(statuses[0][2]) == [b"UIDNEXT", 2, b"MESSAGES", 1]


@pytest.mark.parametrize(("command", "answer"), [
    (b"NOTIFY SET (personal (AnnotationChange MessageNew MessageExpunge))",
     b"NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "
     b"MailboxMetadataChange ServerMetadataChange)]"),
    (b"NOTIFY SET (personal (QuotaChange))", b"NO [BADEVENT"),
    (b"NOTIFY SET (selected (MailboxMetadataChange))", b"BAD"),  # RFC 5465 6.1
    (b"NOTIFY SET (personal (MessageNew))", b"BAD"),  # RFC 5465 5: with MessageExpunge
    (b"NOTIFY SET (personal (FlagChange))", b"BAD"),
    (b"NOTIFY SET (selected (MailboxName))", b"BAD"),  # RFC 5465 6.1
    (b"NOTIFY SET (selected (MessageNew MessageExpunge)) "
     b"(selected-delayed (MessageNew MessageExpunge))", b"BAD"),
    (b"NOTIFY SET (nowhere (MessageNew MessageExpunge))", b"BAD"),
    (b"NOTIFY SET", b"BAD"),
    (b"NOTIFY SET ()", b"BAD"),
    (b"NOTIFY SET (personal ())", b"BAD"),
    (b"NOTIFY SET (subtree (MessageNew MessageExpunge))", b"BAD"),
    (b"NOTIFY SET (personal (MessageNew (NOSUCH) MessageExpunge))", b"BAD"),
    (b"NOTIFY SOMETIMES", b"BAD"),
    (b"NOTIFY", b"BAD"),
])
def test_bad_notify_commands_get_bad_or_no(
    postel: PostelServer, command: bytes, answer: bytes
) -> None:
    raw = session(postel, new_user(postel))
    raw.cmd(b"s", b"SELECT INBOX")
    lines = raw.cmd(b"t", command)
    assert lines[-1].startswith(b"t " + answer), lines
    # The session goes on, and a refused NOTIFY SET left no NOTIFY in force.
    assert raw.cmd(b"o", b"NOOP") == [b"o OK NOOP completed"]
    raw.close()


def test_subtree_and_mailboxes_filters(postel: PostelServer) -> None:
    user = new_user(postel)
    watcher, actor = session(postel, user), session(postel, user)
    for name in (b"Lists", b"Lists/IETF", b"Other"):
        actor.cmd(b"c", b"CREATE " + name)
    watcher.cmd(b"n", b"NOTIFY SET (subtree Lists (MessageNew MessageExpunge)) "
                b"(mailboxes (Other) (MailboxName))")
    body = message("list mail")
    actor.cmd(b"a", b"APPEND Other {%d+}\r\n" % len(body) + body)  # not watched for mail
    actor.cmd(b"b", b"APPEND Lists/IETF {%d+}\r\n" % len(body) + body)
    assert watcher.line() == b'* STATUS Lists/IETF (UIDNEXT 2 MESSAGES 1)'
    actor.cmd(b"r", b"RENAME Other Elsewhere")
    assert watcher.line() == b'* LIST (\\HasNoChildren) "/" Elsewhere ("OLDNAME" (Other))'
    watcher.close()
    actor.close()


def told(actor: Raw, watcher: Raw, setmetadata: bytes, pushed_line: bytes) -> None:
    """The actor's SETMETADATA succeeds and the watcher is pushed exactly this line."""
    assert actor.cmd(b"m", setmetadata)[-1].startswith(b"m OK")
    assert watcher.line() == pushed_line


def test_metadata_changes_elsewhere_send_unsolicited_metadata(postel: PostelServer) -> None:
    """RFC 5465 5.6 MailboxMetadataChange and 5.7 ServerMetadataChange: a SETMETADATA in
    another session names the changed entries in an unsolicited METADATA (RFC 5464 4.4.2:
    entry names only, no values), for mailboxes and for the server ("")."""
    user = new_user(postel)
    watcher, actor = session(postel, user), session(postel, user)
    actor.cmd(b"c", b"CREATE Notes")
    watcher.cmd(b"n", b"NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))")
    told(actor, watcher, b'SETMETADATA INBOX (/private/comment "inbox note")',
         b"* METADATA INBOX /private/comment")
    told(actor, watcher, b'SETMETADATA Notes (/shared/comment "a" /private/todo "b")',
         b"* METADATA Notes /private/todo /shared/comment")
    told(actor, watcher, b"SETMETADATA Notes (/shared/comment NIL)",
         b"* METADATA Notes /shared/comment")  # removed: a change too
    told(actor, watcher, b'SETMETADATA "" (/private/vendor/x "1")',
         b'* METADATA "" /private/vendor/x')
    # The server's shared entries are every account's: an admin elsewhere changes one.
    admin = session(postel, new_user(postel, role=Role.ADMIN))
    motd = f'"{uuid.uuid4().hex}"'.encode()  # the module's server is shared: always new
    told(admin, watcher, b'SETMETADATA "" (/shared/motd ' + motd + b")",
         b'* METADATA "" /shared/motd')
    # The watcher's own SETMETADATA is not echoed back (RFC 5465 5).
    assert watcher.cmd(b"w", b'SETMETADATA INBOX (/private/comment "mine")')[-1].startswith(
        b"w OK")
    assert watcher.cmd(b"o", b"NOOP") == [b"o OK NOOP completed"]
    for raw in (watcher, actor, admin):
        raw.close()


def test_metadata_notifications_follow_the_filter(postel: PostelServer) -> None:
    user = new_user(postel)
    watcher, actor = session(postel, user), session(postel, user)
    actor.cmd(b"c", b"CREATE Watched")
    watcher.cmd(b"n", b"NOTIFY SET (mailboxes (Watched) (MailboxMetadataChange)) "
                b"(personal (MailboxName))")
    # Not watched for metadata: INBOX's entry and the server's say nothing; the CREATE
    # that follows is the next thing the watcher hears.
    actor.cmd(b"m", b'SETMETADATA INBOX (/private/comment "x")')
    actor.cmd(b"m", b'SETMETADATA "" (/private/comment "x")')
    actor.cmd(b"c", b"CREATE Later")
    assert watcher.line() == b'* LIST (\\HasNoChildren) "/" Later'
    told(actor, watcher, b'SETMETADATA Watched (/private/comment "y")',
         b"* METADATA Watched /private/comment")
    watcher.close()
    actor.close()

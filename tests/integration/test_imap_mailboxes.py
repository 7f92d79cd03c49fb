"""Mailbox commands over real sockets: LIST (patterns, LIST-EXTENDED, LIST-STATUS,
SPECIAL-USE, CHILDREN), LSUB, STATUS, CREATE (+ CREATE-SPECIAL-USE), DELETE, RENAME (with
children, and INBOX), SUBSCRIBE, SELECT/EXAMINE, CLOSE, UNSELECT, QUOTA."""

from __future__ import annotations

from imapclient import IMAPClient

from tests.harness import PostelServer
from tests.integration.test_imap_support import Raw, deliver, imapclient, message, new_user


def names(c: IMAPClient, pattern: str = "*") -> list[str]:
    return [name for _, _, name in c.list_folders(pattern=pattern)]


def test_default_mailboxes_with_special_use(postel: PostelServer) -> None:
    user = new_user(postel)
    with imapclient(postel, user) as c:
        listing = {name: flags for flags, _, name in c.list_folders()}
        assert next(iter(listing)) == "INBOX"
        assert b"\\Sent" in listing["Sent"] and b"\\Trash" in listing["Trash"]
        assert b"\\HasNoChildren" in listing["Drafts"]
        special = c.find_special_folder(b"\\Junk")
        assert special == "Junk"


def test_create_hierarchy_and_patterns(postel: PostelServer) -> None:
    user = new_user(postel)
    with imapclient(postel, user) as c:
        c.create_folder("Work/Projects/2024")
        c.create_folder("Work/Notes/")
        assert {"Work", "Work/Projects", "Work/Projects/2024", "Work/Notes"} <= set(names(c))
        assert names(c, "Work/%") == ["Work/Notes", "Work/Projects"]
        assert names(c, "%") == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash", "Work"]
        flags = {n: f for f, _, n in c.list_folders(pattern="Work")}
        assert b"\\HasChildren" in flags["Work"]
        assert names(c, "inbox") == ["INBOX"]
        assert c.folder_exists("Work/Projects")
        c.rename_folder("Work", "Job")
        assert "Job/Projects/2024" in names(c) and "Work" not in names(c)
        c.delete_folder("Job/Notes")
        assert "Job/Notes" not in names(c)


def test_create_existing_and_bad_names(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"a", b"CREATE Drafts")[-1].startswith(b"a NO [ALREADYEXISTS]")
    assert raw.cmd(b"b", b"CREATE inbox")[-1].startswith(b"b NO [ALREADYEXISTS]")
    assert raw.cmd(b"c", b'CREATE "a*b"')[-1].startswith(b"c NO")
    assert raw.cmd(b"d", b"DELETE INBOX")[-1].startswith(b"d NO")
    long_name = b"x" * 1001
    assert raw.cmd(b"d2", b"CREATE " + long_name)[-1].startswith(b"d2 NO [LIMIT]")
    assert raw.cmd(b"e", b"DELETE Nope")[-1].startswith(b"e NO [NONEXISTENT]")
    assert raw.cmd(b"f", b"RENAME Nope Other")[-1].startswith(b"f NO [NONEXISTENT]")
    assert raw.cmd(b"g", b"RENAME Sent Trash")[-1].startswith(b"g NO [ALREADYEXISTS]")
    assert raw.cmd(b"h", b"SELECT Nope")[-1].startswith(b"h NO [NONEXISTENT]")
    raw.close()


def test_create_special_use(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"a", b"CREATE Old (USE (\\Archive))")[-1].startswith(b"a OK")
    assert raw.cmd(b"b", b"CREATE Bad (USE (\\Nonsense))")[-1].startswith(b"b NO [USEATTR]")
    lines = raw.cmd(b"c", b'LIST (SPECIAL-USE) "" "*"')
    assert b'* LIST (\\HasNoChildren \\Archive) "/" Old' in lines
    assert all(b"INBOX" not in line for line in lines)
    raw.close()


def test_utf8_and_modified_utf7_names(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"a", b"CREATE &ZeVnLIqe-")[-1].startswith(b"a OK")
    lines = raw.cmd(b"b", b'LIST "" "*"')
    assert b'* LIST (\\HasNoChildren) "/" &ZeVnLIqe-' in lines
    assert raw.cmd(b"c", b"ENABLE UTF8=ACCEPT")[0] == b"* ENABLED UTF8=ACCEPT"
    lines = raw.cmd(b"d", b'LIST "" "*"')
    assert '* LIST (\\HasNoChildren) "/" "日本語"'.encode() in lines
    assert raw.cmd(b"e", 'CREATE "Größe & Maß"'.encode())[-1].startswith(b"e OK")
    lines = raw.cmd(b"f", b"SELECT \"Gr\xc3\xb6\xc3\x9fe & Ma\xc3\x9f\"")
    assert lines[-1].startswith(b"f OK [READ-WRITE]")
    raw.close()
    with imapclient(postel, user) as c:
        assert "Größe & Maß" in names(c)  # imapclient decodes modified UTF-7
        assert "日本語" in names(c)


def test_subscribe_lsub_and_list_extended(postel: PostelServer) -> None:
    user = new_user(postel)
    with imapclient(postel, user) as c:
        c.create_folder("Lists/Python")
        # CREATE does not subscribe (only the client does: RFC 9051 6.3.9).
        assert "Lists/Python" not in [n for _, _, n in c.list_sub_folders()]
        c.subscribe_folder("Lists/Python")
        c.unsubscribe_folder("Trash")
        subscribed = [n for _, _, n in c.list_sub_folders()]
        assert "Trash" not in subscribed and "Lists/Python" in subscribed
        c.subscribe_folder("Trash")
        assert "Trash" in [n for _, _, n in c.list_sub_folders()]
    raw = Raw(postel)
    raw.login(user)
    raw.cmd(b"u", b"UNSUBSCRIBE Lists")
    lines = raw.cmd(b"a", b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))' in lines
    lines = raw.cmd(b"b", b'LIST "" ("INBOX" "Lists/*") RETURN (SUBSCRIBED CHILDREN)')
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX' in lines
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Lists/Python' in lines
    lines = raw.cmd(b"c", b'LSUB "" "%"')
    assert b'* LSUB (\\Noselect) "/" Lists' in lines
    lines = raw.cmd(b"d", b'LIST "" ""')
    assert lines[0] == b'* LIST (\\Noselect) "/" ""'
    raw.close()


def test_status_and_list_status(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    deliver(postel, user, message("two"))
    with imapclient(postel, user) as c:
        st = c.folder_status("INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY",
                                       "RECENT", "SIZE", "HIGHESTMODSEQ"])
        assert st[b"MESSAGES"] == 2 and st[b"UNSEEN"] == 2 and st[b"UIDNEXT"] == 3
        assert st[b"RECENT"] == 2 and st[b"SIZE"] > 100 and st[b"HIGHESTMODSEQ"] >= 2
    raw = Raw(postel)
    raw.login(user)
    lines = raw.cmd(b"a", b'LIST "" "INBOX" RETURN (STATUS (MESSAGES DELETED))')
    assert lines[1] == b"* STATUS INBOX (MESSAGES 2 DELETED 0)"
    assert raw.cmd(b"b", b"STATUS INBOX (BOGUS)")[-1].startswith(b"b BAD")
    raw.close()


def test_select_examine_recent_close_unselect(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("one"))
    with imapclient(postel, user) as c:
        info = c.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1 and info[b"RECENT"] == 1 and info[b"READ-ONLY"] == [b""]
        c.unselect_folder()
        info = c.select_folder("INBOX")
        assert info[b"RECENT"] == 1 and b"READ-WRITE" in info
        assert b"\\Seen" in info[b"PERMANENTFLAGS"]
        uidvalidity = info[b"UIDVALIDITY"]
        c.close_folder()
        info = c.select_folder("INBOX")
        assert info[b"RECENT"] == 0, "\\Recent belongs to the first session only"
        assert info[b"UIDVALIDITY"] == uidvalidity


def test_rename_inbox_moves_messages(postel: PostelServer) -> None:
    user = new_user(postel)
    deliver(postel, user, message("keep me"))
    with imapclient(postel, user) as c:
        c.rename_folder("INBOX", "Old Inbox")
        assert c.select_folder("INBOX")[b"EXISTS"] == 0
        info = c.select_folder("Old Inbox")
        assert info[b"EXISTS"] == 1 and info[b"UIDNEXT"] == 2
        deliver(postel, user, message("second"))
        c.rename_folder("INBOX", "INBOX/Archived")
        assert c.select_folder("INBOX/Archived")[b"EXISTS"] == 1
        assert c.select_folder("INBOX")[b"EXISTS"] == 0


def test_quota(make_postel: object) -> None:
    server = make_postel()  # type: ignore[operator]
    server.add_user("q@example.test", quota_bytes=10 * 1024)
    server.start()
    raw = Raw(server)
    raw.login("q@example.test")
    lines = raw.cmd(b"a", b"GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT INBOX ""'
    assert lines[1] == b'* QUOTA "" (STORAGE 0 10)'
    assert raw.cmd(b"b", b'GETQUOTA ""')[0] == b'* QUOTA "" (STORAGE 0 10)'
    raw.close()

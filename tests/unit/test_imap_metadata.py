"""METADATA (RFC 5464) and LIST-METADATA (RFC 9590) on the wire, without sockets: the
parser (also fed one byte at a time), the METADATA response, and DEPTH / MAXSIZE."""

from __future__ import annotations

import pytest

from postel.imap.commands.metadata import Selection
from postel.imap.proto.commands import CommandError, ListCmd, parse_command
from postel.imap.proto.metadata import (
    GetMetadata,
    MetadataOptions,
    SetMetadata,
    metadata_response,
)
from postel.imap.proto.receiver import CommandBytes, Receiver


def parse(data: bytes, *, split: bool = False) -> object:
    receiver = Receiver()
    chunks = [data[i : i + 1] for i in range(len(data))] if split else [data]
    found = []
    for chunk in chunks:
        receiver.feed(chunk)
        while (event := receiver.next_event()) is not None:
            if isinstance(event, CommandBytes):
                found.append(event)
    assert len(found) == 1
    return parse_command(found[0]).args


@pytest.mark.parametrize("split", [False, True])
def test_getmetadata_with_options_and_entries(split: bool) -> None:
    args = parse(b'a GETMETADATA (MAXSIZE 1024 DEPTH infinity) "INBOX" '
                 b'(/Private/Comment "/shared/comment")\r\n', split=split)
    assert args == GetMetadata("INBOX", ("/private/comment", "/shared/comment"),
                               MetadataOptions(maxsize=1024, depth=None))
    assert parse(b"a GETMETADATA \"\" /shared/admin\r\n", split=split) == GetMetadata(
        "", ("/shared/admin",))
    assert parse(b"a GETMETADATA (DEPTH 1) inbox /private\r\n", split=split) == GetMetadata(
        "INBOX", ("/private",), MetadataOptions(depth=1))


@pytest.mark.parametrize("split", [False, True])
def test_setmetadata_values_quoted_literal_literal8_and_nil(split: bool) -> None:
    args = parse(b'a SETMETADATA INBOX (/private/comment "hi" /shared/a {3}\r\nx\x00y '
                 b"/shared/b ~{2+}\r\n\x00\x01 /shared/c NIL)\r\n", split=split)
    assert args == SetMetadata("INBOX", (
        ("/private/comment", b"hi"), ("/shared/a", b"x\x00y"), ("/shared/b", b"\x00\x01"),
        ("/shared/c", None)))


@pytest.mark.parametrize("line", [
    b"a GETMETADATA INBOX /comment",  # RFC 5464 3.2: under /private or /shared
    b"a GETMETADATA INBOX /private/a*",  # no wildcards
    b"a GETMETADATA INBOX /private//a",  # no empty component
    b"a GETMETADATA INBOX /private/a/",  # no trailing slash
    b"a GETMETADATA (DEPTH 2) INBOX /private/a",
    b"a GETMETADATA (COLOR 1) INBOX /private/a",
    b"a GETMETADATA INBOX",
    b"a SETMETADATA INBOX (/private \"x\")",  # a prefix alone is no entry
    b"a SETMETADATA INBOX ()",
    b"a SETMETADATA INBOX (/private/a)",
    b"a SETMETADATA INBOX /private/a \"x\"",
    b"a GETMETADATA INBOX /private/" + b"x" * 1100,
])
def test_bad_syntax_is_a_command_error(line: bytes) -> None:
    with pytest.raises(CommandError):
        parse(line + b"\r\n")


def test_list_return_metadata_with_options_before_or_after() -> None:
    args = parse(b'a LIST "" "*" RETURN (CHILDREN METADATA (/shared/comment /private/x))\r\n')
    assert isinstance(args, ListCmd)
    assert args.returns == ("CHILDREN", "METADATA")
    assert args.metadata_entries == ("/shared/comment", "/private/x")
    assert args.metadata_options == MetadataOptions()
    args = parse(b'a LIST "" % RETURN (METADATA (MAXSIZE 10) (/shared/comment) STATUS '
                 b"(MESSAGES))\r\n")
    assert isinstance(args, ListCmd)
    assert args.metadata_options == MetadataOptions(maxsize=10)
    assert args.status_items == ("MESSAGES",)
    args = parse(b'a LIST "" % RETURN (METADATA /shared/comment (DEPTH 1))\r\n')
    assert isinstance(args, ListCmd)
    assert args.metadata_entries == ("/shared/comment",)
    assert args.metadata_options == MetadataOptions(depth=1)
    with pytest.raises(CommandError):
        parse(b'a LIST "" % RETURN (METADATA)\r\n')


def test_metadata_response_quotes_literals_and_literal8() -> None:
    line = metadata_response(b'""', [("/shared/comment", b"hi \"x\""), ("/private/n", None),
                                     ("/shared/bin", b"a\x00"), ("/shared/8", "é".encode())])
    assert line == (b'METADATA "" (/shared/comment "hi \\"x\\"" /private/n NIL '
                    b"/shared/bin ~{2}\r\na\x00 /shared/8 {2}\r\n\xc3\xa9)")


STORED = {"/private/a": b"1", "/private/a/b": b"22", "/private/a/b/c": b"333",
          "/private/ab": b"4"}


def test_depth_zero_one_infinity_and_nil_for_missing() -> None:
    pick = Selection(("/private/a", "/private/z"), MetadataOptions(depth=0), True).pick
    assert pick(STORED) == [("/private/a", b"1"), ("/private/z", None)]
    pick = Selection(("/private/a",), MetadataOptions(depth=1), True).pick
    assert pick(STORED) == [("/private/a", b"1"), ("/private/a/b", b"22")]
    pick = Selection(("/private/a",), MetadataOptions(depth=None), True).pick
    assert [n for n, _ in pick(STORED)] == ["/private/a", "/private/a/b", "/private/a/b/c"]


def test_maxsize_leaves_out_long_values_and_reports_the_longest() -> None:
    selection = Selection(("/private",), MetadataOptions(maxsize=2, depth=None), True)
    assert selection.pick(STORED) == [("/private/a", b"1"), ("/private/a/b", b"22"),
                                      ("/private/ab", b"4")]
    assert selection.ok_code() == "METADATA LONGENTRIES 3"
    assert Selection(("/private/a",), MetadataOptions(), True).ok_code() is None

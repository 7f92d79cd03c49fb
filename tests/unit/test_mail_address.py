"""Tests for postel.mail.address: SMTP envelope paths (RFC 5321 4.1.2, RFC 6531)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postel.mail.address import (
    Address,
    AddressError,
    Domain,
    parse_address_list,
    parse_email,
    parse_path,
    parse_path_and_params,
)


def test_simple_path() -> None:
    a = parse_path("<Alice@Example.COM>", allow_empty=False)
    assert a == Address("Alice", "example.com")
    assert str(a) == "Alice@example.com"
    assert a.key == "alice@example.com"
    assert not a.needs_smtputf8
    assert a.ascii_domain() == "example.com"


def test_whitespace_around_path_and_bare_address() -> None:
    assert parse_path("  <a@b.c>  ", allow_empty=False) == Address("a", "b.c")
    assert parse_path("a@b.c", allow_empty=False) == Address("a", "b.c")  # lenient
    assert parse_path("< a@b.c >", allow_empty=False) == Address("a", "b.c")


def test_null_path() -> None:
    assert parse_path("<>", allow_empty=True) is None
    with pytest.raises(AddressError, match="null path"):
        parse_path("<>", allow_empty=False)
    assert parse_path_and_params("<> SIZE=10", allow_empty=True) == (None, {"SIZE": "10"})
    with pytest.raises(AddressError):
        parse_path("", allow_empty=True)


def test_utf8_local_and_idn_domain() -> None:
    a = parse_path("<用户@例子.广告>", allow_empty=False)
    assert a is not None
    assert (a.local, a.domain) == ("用户", "例子.广告")
    assert a.needs_smtputf8
    assert a.ascii_domain() == "xn--fsqu00a.xn--4rr70v"
    assert str(a) == "用户@例子.广告"


def test_a_label_domain_is_stored_as_unicode() -> None:
    a = parse_path("<info@XN--FIQS8S.com>", allow_empty=False)
    assert a == Address("info", "中国.com")
    assert not a.needs_smtputf8  # an IDN domain alone can travel as A-labels
    assert a.ascii_domain() == "xn--fiqs8s.com"
    assert parse_email("info@中国.com").key == a.key


def test_idna2008_labels_round_trip() -> None:
    # IDNA2003 would map sharp s to "ss"; IDNA2008 keeps it (RFC 5891).
    a = parse_email("x@Straße.de")
    assert a.domain == "straße.de"
    assert a.ascii_domain() == "xn--strae-oqa.de"
    assert parse_email("x@xn--strae-oqa.de") == a


def test_ideographic_full_stop_separates_labels() -> None:
    assert parse_email("a@例子。广告").domain == "例子.广告"


def test_quoted_local_parts() -> None:
    a = parse_path('<"john smith"@example.com>', allow_empty=False)
    assert a == Address('"john smith"', "example.com")
    # A quoted string that is a valid dot-string is the same mailbox (RFC 5321 4.1.2).
    assert parse_path('<"john.smith"@example.com>', allow_empty=False) == Address(
        "john.smith", "example.com")
    b = parse_path('<"a\\"b@c"@example.com>', allow_empty=False)
    assert b == Address('"a\\"b@c"', "example.com")
    with pytest.raises(AddressError):
        parse_path('<"unterminated@example.com>', allow_empty=False)
    with pytest.raises(AddressError):
        parse_path('<"a\x01"@example.com>', allow_empty=False)
    with pytest.raises(AddressError):
        parse_path('<""@example.com>', allow_empty=False)


def test_source_route_is_stripped() -> None:
    a = parse_path("<@relay.one,@relay.two:user@dest.example>", allow_empty=False)
    assert a == Address("user", "dest.example")
    with pytest.raises(AddressError):
        parse_path("<@relay.one,bad:user@dest.example>", allow_empty=False)


def test_domain_literals() -> None:
    assert parse_path("<a@[192.0.2.1]>", allow_empty=False) == Address("a", "[192.0.2.1]")
    v6 = parse_path("<a@[ipv6:2001:DB8::1]>", allow_empty=False)
    assert v6 == Address("a", "[IPv6:2001:db8::1]")
    assert v6.ascii_domain() == "[IPv6:2001:db8::1]"
    for bad in ("<a@[192.0.2.256]>", "<a@[IPv6:zz::1]>", "<a@[]>"):
        with pytest.raises(AddressError):
            parse_path(bad, allow_empty=False)


@pytest.mark.parametrize("text", [
    "<a@b.c", "a@b.c>", "<@b.c>", "<a@>", "<a>", "<a b@c.d>", "<a@b..c>", "<a@-b.c>",
    "<a@b_c.d>", "<a(b)@c.d>", "<a@b c.d>", "<@b.c:>", "<.@b.c>",
])
def test_bad_syntax(text: str) -> None:
    with pytest.raises(AddressError):
        parse_path(text, allow_empty=True)


def test_length_limits() -> None:
    assert parse_path(f"<{'a' * 64}@b.c>", allow_empty=False) is not None
    with pytest.raises(AddressError, match="64"):
        parse_path(f"<{'a' * 65}@b.c>", allow_empty=False)
    with pytest.raises(AddressError, match="64"):
        parse_path(f"<{'é' * 33}@b.c>", allow_empty=False)  # 66 octets in UTF-8
    label = "d" * 63
    ok = ".".join([label] * 3) + "." + "e" * 63  # 255 octets
    assert len(ok) == 255
    assert parse_path(f"<a@{ok}>", allow_empty=False) is not None
    with pytest.raises(AddressError, match="255"):
        parse_path(f"<a@x.{ok}>", allow_empty=False)
    with pytest.raises(AddressError, match="63"):
        parse_path(f"<a@{'d' * 64}.com>", allow_empty=False)


def test_trailing_root_dot_is_dropped() -> None:
    assert parse_email("a@example.com.").domain == "example.com"


def test_lenient_dots_in_local_part() -> None:
    # Some carriers issued addresses like these; Postfix accepts them, so do we.
    assert parse_email("taro..yamada.@docomo.ne.jp").local == "taro..yamada."


def test_params() -> None:
    addr, params = parse_path_and_params(
        "<a@b.c> SIZE=100 BODY=8BITMIME smtputf8", allow_empty=False)
    assert addr == Address("a", "b.c")
    assert params == {"SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": None}
    addr, params = parse_path_and_params(
        "<x@y.z>  NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.z", allow_empty=False)
    assert params == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;x@y.z"}
    assert parse_path_and_params("a@b.c SIZE=1", allow_empty=False) == (
        Address("a", "b.c"), {"SIZE": "1"})
    # a quoted local part may contain '>' and spaces
    addr, params = parse_path_and_params('<"a> b"@c.d> RET=HDRS', allow_empty=False)
    assert addr == Address('"a> b"', "c.d") and params == {"RET": "HDRS"}


@pytest.mark.parametrize("arg", [
    "<a@b.c>SIZE=1", "<a@b.c> SIZE=1 SIZE=2", "<a@b.c> =1", "<a@b.c> SI_ZE=1",
    "<a@b.c> SIZE=", "<a@b.c", "<a@b.c> <d@e.f>",
])
def test_bad_params(arg: str) -> None:
    with pytest.raises(AddressError):
        parse_path_and_params(arg, allow_empty=False)


def test_parse_email() -> None:
    a = parse_email("  Alice@Example.COM ")
    assert a == Address("Alice", "example.com") and a.key == "alice@example.com"
    for bad in ("", "alice", "<alice@x.org>", "alice @x.org", "al ice@x.org", "@x.org",
                "alice@", "a@b@c.d"):
        with pytest.raises(AddressError):
            parse_email(bad)


def test_error_is_value_error() -> None:
    assert issubclass(AddressError, ValueError)


@given(st.text(max_size=80))
def test_parsers_only_raise_address_error(text: str) -> None:
    for call in (lambda: parse_path(text, allow_empty=True),
                 lambda: parse_path_and_params(text, allow_empty=True),
                 lambda: parse_email(text)):
        try:
            result = call()
        except AddressError:
            continue
        addr = result[0] if isinstance(result, tuple) else result
        if isinstance(addr, Address):
            # whatever we accept re-parses to itself
            assert parse_path(f"<{addr}>", allow_empty=False) == addr
            addr.ascii_domain()


# RFC 5322 header address lists (IMAP ENVELOPE form)


def test_address_list_forms() -> None:
    assert parse_address_list("joe@x.org (Joe Bloggs)") == [["Joe Bloggs", None, "joe", "x.org"]]
    assert parse_address_list("<@relay.net,@r2.net:joe@x.org>") == [
        [None, "@relay.net,@r2.net", "joe", "x.org"]]
    assert parse_address_list('"joe smith"@x.org') == [[None, None, "joe smith", "x.org"]]
    assert parse_address_list("John Q. Public <jqp@x.org>") == [
        ["John Q. Public", None, "jqp", "x.org"]]
    assert parse_address_list("localonly") == [[None, None, "localonly", ""]]
    assert parse_address_list(" , ,") == []
    assert parse_address_list("Unclosed: a@b") == [
        [None, None, "Unclosed", None], [None, None, "a", "b"], [None, None, None, None]]
    assert parse_address_list('"B, Bee" <b@x.org>, g: c@x.org (C);') == [
        ["B, Bee", None, "b", "x.org"], [None, None, "g", None], ["C", None, "c", "x.org"],
        [None, None, None, None]]
    assert parse_address_list("=?utf-8?q?J=C3=B6rg?= <j@x.de>") == [
        ["=?utf-8?q?J=C3=B6rg?=", None, "j", "x.de"]]  # raw, RFC 3501 wants it undecoded
    assert parse_address_list("a@b (outer (nested) comment)") == [
        ["outer (nested) comment", None, "a", "b"]]


@given(st.text(max_size=80))
def test_address_list_never_raises(text: str) -> None:
    for addr in parse_address_list(text):
        assert len(addr) == 4


# -- Domain: the one domain-name rule --------------------------------------------------


@pytest.mark.parametrize(("text", "unicode", "ascii_form"), [
    ("Example.COM", "example.com", "example.com"),
    ("example.com.", "example.com", "example.com"),  # the root dot names the same domain
    (" mail.example.org ", "mail.example.org", "mail.example.org"),
    ("Bücher.DE", "bücher.de", "xn--bcher-kva.de"),  # RFC 5891 4.4: U-label to A-label
    ("xn--bcher-kva.de", "bücher.de", "xn--bcher-kva.de"),  # A-label in, U-label kept
    ("例え。テスト", "例え.テスト", "xn--r8jz45g.xn--zckzah"),  # RFC 3490 3.1 dots
    ("localhost", "localhost", "localhost"),  # syntax only: one label is a name too
])
def test_domain_parse_forms(text: str, unicode: str, ascii_form: str) -> None:
    domain = Domain.parse(text)
    assert domain.unicode == unicode and str(domain) == unicode
    assert domain.ascii == ascii_form
    assert Domain.parse(domain.ascii) == domain


@pytest.mark.parametrize("text", [
    "", "  ", "bad domain", "a..example", "x-.example", "-x.example", "[192.0.2.1]",
    "user@example.com", "<example.com>", "a" * 64 + ".example", ("a" * 62 + ".") * 5 + "com",
])
def test_domain_parse_refuses(text: str) -> None:
    with pytest.raises(AddressError):
        Domain.parse(text)


def test_domain_qualified() -> None:
    assert Domain.parse("example.com").is_qualified
    assert not Domain.parse("localhost").is_qualified


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}",
                     fullmatch=True))
def test_domain_agrees_with_address_domains(name: str) -> None:
    assert Domain.parse(name).unicode == parse_email(f"someone@{name}").domain

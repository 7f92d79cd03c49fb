"""Tests for postel.config: every key validated, every error names its key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from postel import config as config_module
from postel.config import (
    DEV_LISTEN,
    SERVICES,
    STANDARD_LISTEN,
    Config,
    ConfigError,
    ListenAddress,
    SmtpConfig,
    TlsConfig,
    load_config,
    parse_config,
)

# The sub-tables of Config ([smtp], [tls], ...): found from the dataclass, so a section
# added later is covered without touching this file.
SECTIONS: dict[str, type[Any]] = {
    f.name: type(getattr(Config(hostname="x"), f.name))
    for f in dataclasses.fields(Config)
    if dataclasses.is_dataclass(getattr(Config(hostname="x"), f.name))
}


def as_toml(value: Any) -> Any:
    """A default value as TOML would give it back."""
    if isinstance(value, tuple):
        return [as_toml(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def raises(raw: dict[str, Any], key: str, **kwargs: Any) -> str:
    """parse_config(raw) must fail with a message that starts by naming `key`."""
    with pytest.raises(ConfigError) as info:
        parse_config(raw, **kwargs)
    message = str(info.value)
    assert message.startswith(key), message
    return message


# -- the whole file --------------------------------------------------------------------


def test_empty_document_gives_defaults() -> None:
    config = parse_config({})
    assert config.log_level == "info"
    assert config.data_dir == Path("data")
    assert config.smtp == SmtpConfig()
    assert config.tls == TlsConfig()
    assert config.hostname  # the machine's FQDN
    assert set(config.listen) == set(SERVICES)
    assert {name: str(addr) for name, addr in config.listen.items()} == STANDARD_LISTEN


def test_sections_are_discovered() -> None:
    assert {"tls", "storage", "smtp", "pop3", "imap", "auth"} <= set(SECTIONS)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_section_parses_its_own_defaults(name: str) -> None:
    cls = SECTIONS[name]
    raw = {
        f.name: as_toml(getattr(cls(), f.name))
        for f in dataclasses.fields(cls)
        if getattr(cls(), f.name) is not None
    }
    assert getattr(parse_config({name: raw}), name) == cls()


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_section_accepts_an_empty_table(name: str) -> None:
    assert getattr(parse_config({name: {}}), name) == SECTIONS[name]()


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_section_sets_each_number_and_boolean(name: str) -> None:
    cls = SECTIONS[name]
    raw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        default = getattr(cls(), f.name)
        if isinstance(default, bool):
            raw[f.name] = not default
        elif isinstance(default, int):
            raw[f.name] = default + 7
        elif isinstance(default, float):
            raw[f.name] = default + 0.5
    section = getattr(parse_config({name: raw}), name)
    for key, value in raw.items():
        assert getattr(section, key) == value
        assert type(getattr(section, key)) is type(getattr(cls(), key))


def test_full_document() -> None:
    config = parse_config(
        {
            "hostname": "Mail.Example.COM.",
            "data_dir": "/var/lib/postel",
            "log_level": "debug",
            "listen": {"smtp": "192.0.2.1:25", "imaps": "[2001:db8::1]:993", "pop3": ""},
            "tls": {"cert": "/etc/postel/cert.pem", "key": "/etc/postel/key.pem"},
            "storage": {"url": "postgresql://postel@db/postel"},
            "smtp": {"max_message_size": 1000, "idle_timeout": 60,
                     "allow_plaintext_auth_on_loopback": True},
            "pop3": {"max_line_length": 512},
            "imap": {"max_nesting": 8},
            "auth": {"failure_window": 60.5},
        }
    )
    assert config.hostname == "mail.example.com"
    assert config.data_dir == Path("/var/lib/postel")
    assert config.log_level == "debug"
    assert config.listen["smtp"] == ListenAddress("192.0.2.1", 25)
    assert config.listen["imaps"] == ListenAddress("2001:db8::1", 993)
    assert str(config.listen["imaps"]) == "[2001:db8::1]:993"
    assert config.listen["pop3"] is None
    assert config.listen["submission"] == ListenAddress("0.0.0.0", 587)
    assert config.tls == TlsConfig(Path("/etc/postel/cert.pem"), Path("/etc/postel/key.pem"))
    assert config.storage_url == "postgresql://postel@db/postel"
    assert config.smtp.max_message_size == 1000
    assert config.smtp.idle_timeout == 60.0
    assert isinstance(config.smtp.idle_timeout, float)
    assert config.smtp.allow_plaintext_auth_on_loopback is True
    assert config.pop3.max_line_length == 512
    assert config.imap.max_nesting == 8
    assert config.auth.failure_window == 60.5


def test_storage_url_default_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    config = parse_config({"data_dir": str(tmp_path)})
    assert config.storage_url == f"sqlite:///{tmp_path.resolve() / 'postel.db'}"
    assert config.blob_dir == tmp_path / "blobs"
    assert config.tmp_dir == tmp_path / "tmp"
    assert parse_config({"storage": {"url": "sqlite:///x.db"}}).storage_url == "sqlite:///x.db"


def test_base_dir_anchors_relative_paths(tmp_path: Path) -> None:
    config = parse_config(
        {"data_dir": "d", "tls": {"cert": "c.pem", "key": "/abs/k.pem"}}, base_dir=tmp_path
    )
    assert config.data_dir == tmp_path / "d"
    assert config.tls == TlsConfig(tmp_path / "c.pem", Path("/abs/k.pem"))


# -- unknown keys ----------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    message = raises({"hostnme": "mx.example"}, "hostnme")
    assert "unknown" in message


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_unknown_key_in_each_section(name: str) -> None:
    message = raises({name: {"no_such_setting": 1}}, f"{name}.no_such_setting")
    assert "unknown" in message


def test_unknown_listen_service() -> None:
    message = raises({"listen": {"smtps": "0.0.0.0:465"}}, "listen.smtps")
    assert "unknown" in message


@pytest.mark.parametrize("name", ["listen", *sorted(SECTIONS)])
def test_section_must_be_a_table(name: str) -> None:
    raises({name: "yes"}, name)


# -- wrong types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"hostname": 5}, "hostname"),
        ({"hostname": ""}, "hostname"),
        ({"hostname": "mail example"}, "hostname"),
        ({"hostname": "."}, "hostname"),
        ({"hostname": "mail\n.example"}, "hostname"),
        ({"hostname": "mail\t"}, "hostname"),
        ({"data_dir": 5}, "data_dir"),
        ({"data_dir": ""}, "data_dir"),
        ({"data_dir": ["a"]}, "data_dir"),
        ({"log_level": "verbose"}, "log_level"),
        ({"log_level": "DEBUG"}, "log_level"),
        ({"log_level": 10}, "log_level"),
        ({"smtp": {"max_line_length": "4096"}}, "smtp.max_line_length"),
        ({"smtp": {"max_line_length": [4096]}}, "smtp.max_line_length"),
        ({"smtp": {"max_line_length": {"a": 1}}}, "smtp.max_line_length"),
        ({"smtp": {"max_line_length": -1}}, "smtp.max_line_length"),
        ({"smtp": {"max_line_length": 4096.5}}, "smtp.max_line_length"),
        ({"smtp": {"max_recipients": float("inf")}}, "smtp.max_recipients"),
        ({"smtp": {"max_recipients": float("nan")}}, "smtp.max_recipients"),
        ({"smtp": {"idle_timeout": float("nan")}}, "smtp.idle_timeout"),
        ({"smtp": {"idle_timeout": float("-inf")}}, "smtp.idle_timeout"),
        ({"smtp": {"idle_timeout": -0.5}}, "smtp.idle_timeout"),
        ({"smtp": {"idle_timeout": "300"}}, "smtp.idle_timeout"),
        ({"smtp": {"idle_timeout": 10**400}}, "smtp.idle_timeout"),
        ({"smtp": {"max_message_size": True}}, "smtp.max_message_size"),
        ({"imap": {"max_literal_size": False}}, "imap.max_literal_size"),
        ({"tls": {"cert": 5, "key": "k.pem"}}, "tls.cert"),
        ({"tls": {"cert": "c.pem", "key": 0}}, "tls.key"),
        ({"tls": {"cert": "", "key": "k.pem"}}, "tls.cert"),
        ({"tls": {"cert": ["c.pem"], "key": "k.pem"}}, "tls.cert"),
        ({"storage": {"url": 5}}, "storage.url"),
    ],
)
def test_wrong_type_names_the_key(raw: dict[str, Any], key: str) -> None:
    raises(raw, key)


def test_whole_number_given_as_float_is_accepted() -> None:
    config = parse_config({"smtp": {"max_message_size": 5e7}})
    assert config.smtp.max_message_size == 50_000_000
    assert isinstance(config.smtp.max_message_size, int)


@pytest.mark.parametrize("value", [1, 0, "true", "yes", 1.0])
@pytest.mark.parametrize(
    "key",
    [
        ("smtp", "allow_plaintext_auth_on_loopback"),
        ("pop3", "allow_plaintext_auth_on_loopback"),
        ("imap", "allow_plaintext_auth_on_loopback"),
    ],
)
def test_booleans_given_as_numbers_or_strings(value: Any, key: tuple[str, str]) -> None:
    section, name = key
    message = raises({section: {name: value}}, f"{section}.{name}")
    assert "true or false" in message


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_boolean_refuses_numbers(name: str) -> None:
    cls = SECTIONS[name]
    for f in dataclasses.fields(cls):
        if isinstance(getattr(cls(), f.name), bool):
            raises({name: {f.name: 1}}, f"{name}.{f.name}")


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_number_refuses_booleans_and_strings(name: str) -> None:
    cls = SECTIONS[name]
    for f in dataclasses.fields(cls):
        default = getattr(cls(), f.name)
        if isinstance(default, int | float) and not isinstance(default, bool):
            raises({name: {f.name: True}}, f"{name}.{f.name}")
            raises({name: {f.name: "1"}}, f"{name}.{f.name}")
            raises({name: {f.name: -1}}, f"{name}.{f.name}")
            raises({name: {f.name: float("nan")}}, f"{name}.{f.name}")


# -- listen addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:25", ListenAddress("0.0.0.0", 25)),
        ("127.0.0.1:2525", ListenAddress("127.0.0.1", 2525)),
        ("[::]:25", ListenAddress("::", 25)),
        ("[::1]:587", ListenAddress("::1", 587)),
        ("localhost:25", ListenAddress("localhost", 25)),
        ("mail-1.example.com:25", ListenAddress("mail-1.example.com", 25)),
        ("0.0.0.0:65535", ListenAddress("0.0.0.0", 65535)),
    ],
)
def test_listen_address(text: str, address: ListenAddress) -> None:
    assert parse_config({"listen": {"smtp": text}}).listen["smtp"] == address


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0.0",
        "0.0.0.0:",
        ":25",
        "0.0.0.0:0",
        "0.0.0.0:65536",
        "0.0.0.0:-1",
        "0.0.0.0:+25",
        "0.0.0.0:2 5",
        "0.0.0.0:²",
        "0.0.0.0:٢٥",
        "0.0.0.0:\uff12\uff15",
        "[]:25",
        "bad host:25",
        "host_name:25",
        "a/b:25",
    ],
)
def test_bad_listen_address(text: str) -> None:
    raises({"listen": {"submission": text}}, "listen.submission")


@pytest.mark.parametrize("value", [25, True, None, ["0.0.0.0:25"], {"host": "x"}])
def test_listen_value_must_be_a_string(value: Any) -> None:
    raises({"listen": {"imap": value}}, "listen.imap")


def test_empty_string_disables_a_service() -> None:
    config = parse_config({"listen": {name: "" for name in SERVICES}})
    assert config.listen == dict.fromkeys(SERVICES)
    config = parse_config({"listen": {"pop3": "", "pop3s": ""}})
    assert config.listen["pop3"] is None
    assert config.listen["pop3s"] is None
    assert config.listen["imap"] == ListenAddress("0.0.0.0", 143)


def test_dev_gives_loopback_high_ports() -> None:
    config = parse_config({}, dev=True)
    assert {name: str(addr) for name, addr in config.listen.items()} == DEV_LISTEN
    for address in config.listen.values():
        assert address is not None
        assert address.host == "127.0.0.1"
        assert address.port >= 1024
    ports = [address.port for address in config.listen.values() if address is not None]
    assert len(set(ports)) == len(ports)


def test_dev_listen_can_still_be_overridden() -> None:
    config = parse_config({"listen": {"smtp": "127.0.0.1:10025", "http": ""}}, dev=True)
    assert config.listen["smtp"] == ListenAddress("127.0.0.1", 10025)
    assert config.listen["http"] is None
    assert config.listen["imap"] == ListenAddress("127.0.0.1", 1143)


def test_standard_ports() -> None:
    assert {name: int(text.rpartition(":")[2]) for name, text in STANDARD_LISTEN.items()} == {
        "smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993,
        "pop3": 110, "pop3s": 995, "http": 80, "https": 443,
    }


# -- cross-key rules -------------------------------------------------------------------


def test_tls_cert_without_key() -> None:
    message = raises({"tls": {"cert": "/etc/cert.pem"}}, "tls.key")
    assert "tls.cert" in message


def test_tls_key_without_cert() -> None:
    message = raises({"tls": {"key": "/etc/key.pem"}}, "tls.cert")
    assert "tls.key" in message


@pytest.mark.parametrize(
    "url", ["mysql://db/postel", "postgres://db/postel", "/var/lib/postel.db", "sqlite"]
)
def test_bad_storage_url(url: str) -> None:
    raises({"storage": {"url": url}}, "storage.url")


@pytest.mark.parametrize(
    "url",
    ["sqlite:///data/postel.db", "sqlite:////abs/postel.db", "postgresql://u@h/db",
     "postgresql+psycopg://u@h/db"],
)
def test_good_storage_url(url: str) -> None:
    assert parse_config({"storage": {"url": url}}).storage.url == url


def test_error_messages_name_only_real_keys() -> None:
    # The "known:" list in an unknown-key message is the section's actual field list.
    message = raises({"smtp": {"max_line_lenght": 1}}, "smtp.max_line_lenght")
    known = re.search(r"known: (.*)\)", message)
    assert known
    assert known[1].split(", ") == [f.name for f in dataclasses.fields(SmtpConfig)]


# -- load_config -----------------------------------------------------------------------


def test_load_config_reads_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTEL_CONFIG", raising=False)
    path = tmp_path / "postel.toml"
    path.write_text(
        'hostname = "mx.example"\nlog_level = "warning"\n'
        '[listen]\nsmtp = "127.0.0.1:2500"\nhttp = ""\n'
        "[smtp]\nmax_recipients = 5\nallow_plaintext_auth_on_loopback = true\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.hostname == "mx.example"
    assert config.log_level == "warning"
    assert config.listen["smtp"] == ListenAddress("127.0.0.1", 2500)
    assert config.listen["http"] is None
    assert config.smtp.max_recipients == 5
    assert config.smtp.allow_plaintext_auth_on_loopback is True
    assert load_config(str(path)) == config


def test_load_config_dev(tmp_path: Path) -> None:
    path = tmp_path / "postel.toml"
    path.write_text('hostname = "mx.example"\n', encoding="utf-8")
    assert load_config(path, dev=True).listen["smtp"] == ListenAddress("127.0.0.1", 2525)


def test_load_config_without_path_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTEL_CONFIG", raising=False)
    config = load_config(None)
    assert config.listen["smtp"] == ListenAddress("0.0.0.0", 25)
    monkeypatch.setenv("POSTEL_CONFIG", "")
    assert load_config(None).listen["smtp"] == ListenAddress("0.0.0.0", 25)


def test_load_config_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.toml"
    path.write_text('hostname = "env.example"\n', encoding="utf-8")
    monkeypatch.setenv("POSTEL_CONFIG", str(path))
    assert load_config(None).hostname == "env.example"
    # An explicit path wins over the environment.
    other = tmp_path / "explicit.toml"
    other.write_text('hostname = "explicit.example"\n', encoding="utf-8")
    assert load_config(other).hostname == "explicit.example"


def test_load_config_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(missing)
    monkeypatch.setenv("POSTEL_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(None)


@pytest.mark.parametrize(
    "text", ["hostname = ", "[smtp\n", "hostname = 'a'\nhostname = 'b'\n", "a = 1 2\n"]
)
def test_load_config_invalid_toml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('hostname = "m\u00e4il.example"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml"):
        load_config(path)


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load_config(tmp_path)


def test_load_config_bad_value_names_key(tmp_path: Path) -> None:
    path = tmp_path / "postel.toml"
    path.write_text("[smtp]\nmax_recipients = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^smtp\.max_recipients"):
        load_config(path)


def test_config_error_is_an_exception() -> None:
    assert issubclass(ConfigError, Exception)
    assert config_module.ConfigError is ConfigError


# -- lists ([dns], [outbound], [mailauth]) -----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"outbound": {"retry_schedule": [300, -1]}}, "outbound.retry_schedule"),
        ({"outbound": {"retry_schedule": [float("nan")]}}, "outbound.retry_schedule"),
        ({"outbound": {"retry_schedule": [300, "600"]}}, "outbound.retry_schedule"),
        ({"outbound": {"retry_schedule": [True]}}, "outbound.retry_schedule"),
        ({"outbound": {"retry_schedule": 300}}, "outbound.retry_schedule"),
        ({"outbound": {"retry_schedule": []}}, "outbound.retry_schedule"),
        ({"dns": {"nameservers": "192.0.2.53"}}, "dns.nameservers"),
        ({"dns": {"nameservers": [53]}}, "dns.nameservers"),
        ({"dns": {"nameservers": ["192.0.2.53:²"]}}, "dns.nameservers"),
        ({"dns": {"nameservers": ["ns.example"]}}, "dns.nameservers"),
        ({"mailauth": {"trusted_networks": ["10.0.0.0/33"]}}, "mailauth.trusted_networks"),
    ],
)
def test_bad_list_names_the_key(raw: dict[str, Any], key: str) -> None:
    raises(raw, key)


def test_lists() -> None:
    config = parse_config(
        {
            "outbound": {"retry_schedule": [60, 120.5]},
            "dns": {"nameservers": ["192.0.2.53", "[2001:db8::53]:5353"]},
        }
    )
    assert config.outbound.retry_schedule == (60.0, 120.5)
    assert config.dns.nameservers == ("192.0.2.53", "[2001:db8::53]:5353")


def test_requiretls_mx_auth_takes_dnssec_or_certificate() -> None:
    assert parse_config({}).outbound.requiretls_mx_auth == "dnssec"  # RFC 8689 4.2.1
    lenient = parse_config({"outbound": {"requiretls_mx_auth": "certificate"}})
    assert lenient.outbound.requiretls_mx_auth == "certificate"
    raises({"outbound": {"requiretls_mx_auth": "mta-sts"}}, "outbound.requiretls_mx_auth")


def test_trusted_proxies_and_proxy_protocol_are_checked() -> None:
    config = parse_config({"connections": {"trusted_proxies": ["10.0.0.0/8", "::1"],
                                           "proxy_protocol": ["imaps", "smtp"]}})
    assert config.connections.trusted_proxies == ("10.0.0.0/8", "::1")
    with pytest.raises(ConfigError, match=r"connections\.trusted_proxies"):
        parse_config({"connections": {"trusted_proxies": ["10.0.0.0/33"]}})
    with pytest.raises(ConfigError, match=r"connections\.proxy_protocol"):
        parse_config({"connections": {"proxy_protocol": ["imap4"]}})

"""SqlStore's parts have every method of the Protocols protocol code types against, with
the same parameters (mypy checks the same statically where app.py builds the Context)."""

from __future__ import annotations

import inspect

import pytest

from postel.store import api
from postel.store.sql.store import SqlStore
from postel.store.webmail_api import WebmailStore

PARTS = [
    ("mail", api.Mailboxes),
    ("directory", api.Directory),
    ("queue", api.Outbound),
    ("dkim", api.DkimKeys),
    ("web", api.WebState),
    ("webmail", WebmailStore),
    ("metadata", api.MetadataEntries),
    ("urlauth", api.UrlAuthKeys),
    ("auth_failures", api.AuthFailures),
    ("integrity", api.Integrity),
    ("backups", api.Backups),
]


def _methods(protocol: type) -> list[str]:
    return [
        name for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    ]


@pytest.mark.parametrize(("attribute", "protocol"), PARTS)
def test_part_satisfies_its_protocol(store: SqlStore, attribute: str, protocol: type) -> None:
    part = getattr(store, attribute)
    for name in _methods(protocol):
        expected = inspect.signature(getattr(protocol, name))
        actual = inspect.signature(getattr(type(part), name))
        assert actual == expected, f"{attribute}.{name}"


def test_store_has_every_part(store: SqlStore) -> None:
    members = [name for name in vars(api.Store) if not name.startswith("_")]
    assert set(members) == {
        "mail", "directory", "queue", "dkim", "web", "webmail", "blobs", "on_commit", "close",
        "metadata",
        "urlauth",
        "auth_failures",
        "integrity", "backups",
    }
    for name in members:
        assert hasattr(store, name), name


def test_every_public_method_of_a_part_is_in_its_protocol(store: SqlStore) -> None:
    # A method added to a part but not to the Protocol is invisible to protocol code.
    for attribute, protocol in PARTS:
        public = {n for n in vars(type(getattr(store, attribute))) if not n.startswith("_")}
        assert public == set(_methods(protocol)), attribute

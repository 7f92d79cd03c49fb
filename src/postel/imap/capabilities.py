"""What CAPABILITY advertises (RFC 9051 6.1.1, 7.2.2), in one place.

Before login only what a client needs to log in is listed; STARTTLS only on a plain
connection that can start TLS; AUTH=PLAIN or LOGINDISABLED by the plaintext rule. After
login every extension that works, with APPENDLIMIT from the config.
"""

from __future__ import annotations

from postel.config import ImapConfig
from postel.imap.state import State

REVISIONS = ("IMAP4rev1", "IMAP4rev2")
# What a client may use before it logs in.
# RFC 7888 5: before login only small non-synchronizing literals (LITERAL-); the
# receiver refuses bigger ones until the client has logged in.
PRE_AUTH = ("LITERAL-", "SASL-IR", "ID", "ENABLE")
# What works once logged in; CAPABILITY lists exactly these (plus the revisions).
EXTENSIONS: tuple[str, ...] = (
    "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE",
    "UNSELECT", "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED",
    "LIST-STATUS", "ESEARCH", "SEARCHRES", "CONDSTORE", "QRESYNC", "SORT", "SORT=DISPLAY",
    "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "QUOTA", "QUOTA=RES-STORAGE",
    "STATUS=SIZE", "MULTIAPPEND", "BINARY", "UTF8=ACCEPT", "COMPRESS=DEFLATE",
    "ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT",  # RFC 5267
    "NOTIFY",  # RFC 5465
    "WITHIN",  # RFC 5032: the OLDER and YOUNGER search keys
)
# Issue 11, message extensions, each added here once it works: RFC 8514 SAVEDATE,
# RFC 8474 OBJECTID, RFC 8970 PREVIEW, RFC 8508 REPLACE, RFC 9586 UIDONLY.
MESSAGE_EXTENSIONS = ("SAVEDATE", "OBJECTID", "PREVIEW", "REPLACE", "UIDONLY")
# RFC 5464 METADATA (mailbox and server entries) and METADATA-SERVER; RFC 9590 LIST-METADATA.
EXTENSIONS += ("METADATA", "METADATA-SERVER", "LIST-METADATA")
# RFC 4469 CATENATE, RFC 4467 URLAUTH: message assembly from URLs (postel/imapurl.py).
URL_EXTENSIONS = ("CATENATE", "URLAUTH")
# What ENABLE accepts (RFC 5161 3.1; QRESYNC implies CONDSTORE, RFC 7162 3.2.3).
ENABLEABLE = ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2", "UIDONLY")  # + RFC 9586


def capabilities(
    config: ImapConfig, *, state: State, tls: bool, tls_available: bool,
    plaintext_auth: bool, compressed: bool,
) -> list[str]:
    caps = list(REVISIONS)
    if state is State.NOT_AUTHENTICATED:
        if not tls and tls_available:
            caps.append("STARTTLS")
        if plaintext_auth:
            caps.append("AUTH=PLAIN")
        else:
            caps.append("LOGINDISABLED")  # RFC 9051 6.2.3
        caps += PRE_AUTH
        return caps
    caps += EXTENSIONS
    caps += MESSAGE_EXTENSIONS
    caps += URL_EXTENSIONS
    caps.append(f"APPENDLIMIT={config.max_literal_size}")  # RFC 7889
    if compressed:
        caps.remove("COMPRESS=DEFLATE")  # RFC 4978 4: only once per connection
    return caps

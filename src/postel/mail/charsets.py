"""Which charset names a message may use to have its text decoded.

Python's `codecs.lookup` knows far more than text charsets: `unicode_escape` turns
`\\ud800` into a lone surrogate that no store can encode (the message failed, and with it
its group commit), `punycode` decodes in quadratic time (1 MB cost 22 s of CPU), and
`base64`, `zlib` or `rot13` are not charsets at all (issue 15, item 4). Only the real text
encodings below (the IANA charsets mail uses, RFC 2045 5.1, RFC 2047 2, RFC 2231 4) are
honoured; any other name decodes as UTF-8 with replacement characters, never failing.
"""

from __future__ import annotations

import codecs

# Labels as mail writes them; they are resolved to Python's codec names once, so every
# alias (latin1, iso_8859-1, l1, ...) of an allowed encoding is allowed too.
_TEXT_CHARSETS = (
    "us-ascii", "utf-8", "utf-16", "utf-16le", "utf-16be", "utf-32", "utf-32le", "utf-32be",
    "iso-8859-1", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5", "iso-8859-6",
    "iso-8859-7", "iso-8859-8", "iso-8859-9", "iso-8859-10", "iso-8859-11", "iso-8859-13",
    "iso-8859-14", "iso-8859-15", "iso-8859-16",
    "windows-1250", "windows-1251", "windows-1252", "windows-1253", "windows-1254",
    "windows-1255", "windows-1256", "windows-1257", "windows-1258",
    "koi8-r", "koi8-u", "ibm437", "ibm850", "ibm852", "ibm866", "macintosh", "tis-620",
    "shift_jis", "windows-31j", "euc-jp", "iso-2022-jp", "iso-2022-jp-2", "iso-2022-kr",
    "euc-kr", "ks_c_5601-1987", "big5", "big5-hkscs", "gb2312", "gbk", "gb18030", "hz-gb-2312",
    "viscii", "cp874",
)


def _codec_names() -> frozenset[str]:
    names = set()
    for label in _TEXT_CHARSETS:
        try:
            names.add(codecs.lookup(label).name)
        except LookupError:  # not built into this Python
            continue
    return frozenset(names)


TEXT_CODECS = _codec_names()


def text_codec(charset: str) -> str | None:
    """Python's codec name for a text charset label; None when it is not one."""
    label = charset.strip().lower() or "us-ascii"
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    return name if name in TEXT_CODECS else None


def decode_text(data: bytes, charset: str) -> str:
    """`data` as text in `charset`. Bytes that lie about a known charset fall back to
    UTF-8, then Latin-1 (which keeps every octet); an unknown or non-text charset decodes
    as UTF-8 with replacement characters. Never raises."""
    codec = text_codec(charset)
    if codec is None:
        return data.decode("utf-8", "replace")
    try:
        return data.decode(codec)
    except (UnicodeError, ValueError):
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")

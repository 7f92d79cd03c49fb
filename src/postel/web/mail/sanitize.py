"""HTML mail made safe to show: nh3 (ammonia) removes scripts, event handlers, forms,
frames and javascript: URLs; remote images and fonts are dropped unless the user allowed
them; cid: images (RFC 2392) become data: URLs of the message's own parts.

The result is shown in a sandboxed iframe (no scripts, no same-origin) whose own CSP
(frame_csp) blocks any remote load that got past the filter: two independent walls.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import nh3

TAGS = {
    "a", "abbr", "address", "b", "bdi", "bdo", "blockquote", "br", "caption", "center",
    "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt",
    "em", "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
    "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
}
_COMMON = {"style", "title", "dir", "lang", "align", "class"}
ATTRIBUTES = {
    "*": _COMMON,
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "background"},
    "td": {"width", "height", "colspan", "rowspan", "valign", "bgcolor", "background", "nowrap"},
    "th": {"width", "height", "colspan", "rowspan", "valign", "bgcolor", "background", "nowrap"},
    "tr": {"valign", "bgcolor"},
    "col": {"width", "span"}, "colgroup": {"width", "span"},
    "ol": {"start", "type"}, "li": {"value"},
    "blockquote": {"cite"}, "q": {"cite"}, "time": {"datetime"},
}
# CSS properties kept in style attributes; none of them can load a URL.
STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "text-align", "text-decoration", "text-indent", "text-transform",
    "line-height", "letter-spacing", "white-space", "vertical-align", "margin",
    "margin-top", "margin-bottom", "margin-left", "margin-right", "padding", "padding-top",
    "padding-bottom", "padding-left", "padding-right", "border", "border-top",
    "border-bottom", "border-left", "border-right", "border-color", "border-style",
    "border-width", "border-collapse", "border-radius", "width", "max-width", "min-width",
    "height", "max-height", "display", "direction", "list-style-type",
}
URL_SCHEMES = {"http", "https", "mailto", "cid", "data"}
_URL_ATTRIBUTES = {"src", "background"}
MAX_INLINE_IMAGE = 5 * 1024 * 1024  # bytes of one cid: image inlined as a data: URL


@dataclass
class Sanitized:
    html: str
    remote_blocked: int  # distinct remote image (or background) URLs removed


def _is_remote(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(("http:", "https:", "//"))


def sanitize(markup: str, *, allow_remote: bool,
             inline_image: Callable[[str], tuple[str, bytes] | None]) -> Sanitized:
    """Clean `markup`; `inline_image(content_id)` returns (type, bytes) of a cid: part."""
    blocked: set[str] = set()

    def attribute(element: str, name: str, value: str) -> str | None:
        if name not in _URL_ATTRIBUTES:
            return value
        if name not in ATTRIBUTES.get(element, ()):
            return None  # on a tag that is removed anyway (an iframe's src)
        if value.strip().lower().startswith("cid:"):
            found = inline_image(value.strip()[4:].strip("<>"))
            if found is None or len(found[1]) > MAX_INLINE_IMAGE:
                return None
            kind, data = found
            return f"data:{kind};base64,{base64.b64encode(data).decode()}"
        if value.strip().lower().startswith("data:"):
            # Only images: a data: URL of another type is a way around the filter.
            return value if value.strip().lower().startswith("data:image/") else None
        if _is_remote(value):
            if allow_remote:
                return value
            blocked.add(value)
            return None
        return None  # relative URLs mean nothing in a mail

    cleaned = nh3.clean(
        markup,
        tags=TAGS,
        attributes=ATTRIBUTES,
        attribute_filter=attribute,
        url_schemes=URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer",
        filter_style_properties=STYLE_PROPERTIES,
    )
    return Sanitized(cleaned, len(blocked))


def frame_document(body: str) -> str:
    """The iframe's page: links open in a new tab (the sandbox allows only popups)."""
    return (
        '<!doctype html><html><head><meta charset="utf-8"><base target="_blank">'
        '<meta name="color-scheme" content="light">'
        "<style>body{margin:0;padding:12px;font:15px/1.45 system-ui,sans-serif;"
        "color:#1d2330;background:#fff;overflow-wrap:anywhere}img{max-width:100%;"
        "height:auto}blockquote{margin:0 0 0 .6em;padding-left:.6em;"
        "border-left:3px solid #c8cdd6}pre{white-space:pre-wrap}</style></head><body>"
        f"{body}</body></html>"
    )


def frame_csp(allow_remote: bool) -> str:
    """The iframe's own policy: no script at all, inline styles only, images from the
    message (data:) or, when the user allowed it, from anywhere."""
    remote = " https: http:" if allow_remote else ""
    fonts = remote or " 'none'"
    return (
        f"default-src 'none'; img-src data:{remote}; font-src{fonts}; "
        "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )

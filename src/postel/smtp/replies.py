"""SMTP replies: a code, an RFC 3463 enhanced status code and text, serialised to bytes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str  # "" where RFC 2034 does not use one (220 greeting, 221, EHLO, 334, 354)
    text: str | tuple[str, ...]

    def to_bytes(self) -> bytes:
        # An empty tuple still needs its final "code SP" line, or the client waits forever.
        lines = (self.text,) if isinstance(self.text, str) else self.text or ("",)
        out = []
        for index, line in enumerate(lines):
            separator = " " if index == len(lines) - 1 else "-"
            prefix = f"{self.enhanced} " if self.enhanced else ""
            # Never let text break the framing (a CR or LF from a client-supplied string).
            safe = line.replace("\r", " ").replace("\n", " ")
            out.append(f"{self.code}{separator}{prefix}{safe}\r\n")
        return "".join(out).encode("utf-8")

    @property
    def is_positive(self) -> bool:
        return self.code < 400


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "recipient OK")
START_DATA = Reply(354, "", "end data with <CR><LF>.<CR><LF>")
BAD_SEQUENCE = Reply(503, "5.5.1", "bad sequence of commands")
NEED_MAIL = Reply(503, "5.5.1", "MAIL first")
NEED_RCPT = Reply(554, "5.5.1", "no valid recipients")
NEED_HELO = Reply(503, "5.5.1", "EHLO or HELO first")
AUTH_REQUIRED = Reply(530, "5.7.0", "authentication required")
# RFC 4468 6: a BURL URL that cannot be fetched or whose URLAUTH does not verify.
BURL_REFUSED = Reply(554, "5.7.0", "BURL URL is not valid or not authorized")
TLS_REQUIRED = Reply(530, "5.7.0", "must issue a STARTTLS command first")
AUTH_FAILED = Reply(535, "5.7.8", "authentication credentials invalid")
AUTH_OK = Reply(235, "2.7.0", "authentication successful")
RELAY_DENIED = Reply(554, "5.7.1", "relay access denied")
UNKNOWN_USER = Reply(550, "5.1.1", "no such user here")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "too many recipients")
SIZE_EXCEEDED = Reply(552, "5.3.4", "message size exceeds fixed maximum message size")
TEMP_FAILURE = Reply(451, "4.3.0", "temporary failure, please try again later")
SHUTTING_DOWN = Reply(421, "4.3.2", "service shutting down, try again later")
IDLE_TIMEOUT = Reply(421, "4.4.2", "idle timeout, closing connection")
SMUGGLING = Reply(
    554, "5.6.0", "message refused: bare CR or LF next to a '.' line (SMTP smuggling)"
)

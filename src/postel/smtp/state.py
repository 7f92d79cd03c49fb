"""The SMTP command-order rules, sans-IO (RFC 5321 4.1.4, RFC 3030 2, RFC 4954 4).

``SmtpConnection`` wraps the reader and is told every reply the application sends, as h11
is told every event: it knows MAIL was accepted only when it sees "250" answer a MAIL, that
DATA began only when "354" answers it, that AUTH goes on while "334" answers it. So the
order rules live here once, and the session keeps only policy (who may send, to whom):

    client bytes -> receive() -> next_event() -> the session decides -> send(reply) -> bytes

A command out of order never reaches the session: ``next_event`` returns a
``ProtocolError`` carrying the 503 (or 554) to send instead. MAIL and RCPT come out as
``MailFrom`` and ``RcptTo``, their parameters parsed into typed values.

The phases of a mail transaction, and what moves between them:

    phase     | entered when                               | allowed
    ----------|--------------------------------------------|------------------------------
    IDLE      | greeting, 250 to EHLO/HELO/RSET, the reply | EHLO HELO MAIL AUTH STARTTLS
              | that ends a message, 220 to STARTTLS       | (MAIL and AUTH need EHLO first)
    MAIL      | 250 to MAIL                                | RCPT; DATA/BDAT/BURL: 554
    RCPT      | a 2xx to RCPT                              | RCPT DATA BDAT BURL (no
              |                                            | DATA after BODY=BINARYMIME)
    DATA      | 354 to DATA (the reader reads the body)    | the body, until CRLF.CRLF
    BDAT      | a BDAT or BURL in RCPT phase (RFC 3030 2,  | BDAT BURL; RCPT and DATA: 503
              | RFC 4468 3)                                |
    closed    | 221 to QUIT, or any 421                    | nothing
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.mail.address import Address
from postel.smtp.params import (
    MailParams,
    RcptParams,
    parse_mail_params,
    parse_rcpt_params,
)
from postel.smtp.proto import (
    Auth,
    AuthResponse,
    Bdat,
    BodyData,
    BodyEnd,
    Burl,
    Data,
    Ehlo,
    Event,
    Mail,
    ProtocolError,
    Rcpt,
    SimpleCommand,
    SmtpReader,
)
from postel.smtp.replies import Reply


class Phase(enum.Enum):
    IDLE = "idle"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    BDAT = "bdat"


@dataclass(frozen=True)
class MailFrom:
    """A MAIL command in the right place, with well-formed parameters."""

    reverse_path: Address | None  # None: the null reverse-path <>
    params: MailParams


@dataclass(frozen=True)
class RcptTo:
    forward_path: Address
    params: RcptParams


ConnectionEvent = (
    Ehlo
    | MailFrom
    | RcptTo
    | Data
    | Bdat
    | Burl
    | Auth
    | AuthResponse
    | SimpleCommand
    | BodyData
    | BodyEnd
    | ProtocolError
)

# RFC 5321 4.1.4 orders the commands; 503 5.5.1 (RFC 3463 3.6) says "not now".
NEED_HELO = ProtocolError(503, "5.5.1", "EHLO or HELO first")
NEED_MAIL = ProtocolError(503, "5.5.1", "MAIL first")
NESTED_MAIL = ProtocolError(503, "5.5.1", "nested MAIL command")
# RFC 5321 3.3: DATA with no accepted recipient may get 503 or 554 "no valid recipients".
NEED_RCPT = ProtocolError(554, "5.5.1", "no valid recipients")
DATA_AFTER_BDAT = ProtocolError(503, "5.5.1", "DATA after BDAT")  # RFC 3030 2
RCPT_AFTER_BDAT = ProtocolError(503, "5.5.1", "RCPT after BDAT")  # RFC 3030 2
# RFC 3030 3: "the DATA command MUST NOT be used" in a BODY=BINARYMIME transaction.
DATA_IN_BINARYMIME = ProtocolError(503, "5.5.1", "BODY=BINARYMIME needs BDAT, not DATA")
ALREADY_AUTHENTICATED = ProtocolError(503, "5.5.1", "already authenticated")  # RFC 4954 4
AUTH_IN_TRANSACTION = ProtocolError(  # RFC 4954 4
    503, "5.5.1", "AUTH not allowed during a mail transaction"
)


class SmtpConnection:
    """One SMTP server connection's protocol state; see the module docstring."""

    def __init__(self, *, max_line_length: int = 4096) -> None:
        self.reader = SmtpReader(max_line_length=max_line_length)
        self.phase = Phase.IDLE
        self.greeted = False  # a 250 answered EHLO or HELO (since STARTTLS)
        self.authenticated = False  # a 235 answered AUTH
        self.closed = False
        self._awaiting: Event | None = None  # the command the next reply answers
        # A BDAT chunk refused by the order rules is read and dropped; this is the reply
        # for its end (RFC 3030 2: the chunk is always consumed).
        self._refused_chunk: ProtocolError | None = None
        self._mail_binary = False  # the MAIL awaiting its reply said BODY=BINARYMIME
        self.binary = False  # the accepted MAIL said BODY=BINARYMIME (RFC 3030 3)

    @property
    def in_transaction(self) -> bool:
        """MAIL was accepted and the message is not finished (graceful shutdown waits)."""
        return self.phase is not Phase.IDLE

    # -- input ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        self.reader.receive(data)

    def next_event(self) -> ConnectionEvent | None:
        while not self.closed:
            event = self.reader.next_event()
            if event is None:
                return None
            if self._refused_chunk is not None:
                if isinstance(event, BodyData):
                    continue
                if isinstance(event, BodyEnd):
                    refusal, self._refused_chunk = self._refused_chunk, None
                    self._awaiting = None
                    return refusal
            checked = self._check(event)
            if checked is None:  # a refused BDAT: its chunk follows
                continue
            self._awaiting = event
            return checked
        return None

    def _check(self, event: Event) -> ConnectionEvent | None:
        """The event as the session sees it, or the refusal that replaces it."""
        phase = self.phase
        match event:
            case Mail():
                if not self.greeted:
                    return NEED_HELO  # RFC 5321 4.1.4: EHLO or HELO starts the session
                if phase is not Phase.IDLE:
                    return NESTED_MAIL  # RFC 5321 4.1.4: no MAIL inside a transaction
                params = parse_mail_params(event.params)
                if isinstance(params, ProtocolError):
                    return params
                self._mail_binary = params.binary
                return MailFrom(event.reverse_path, params)
            case Rcpt():
                if phase is Phase.BDAT:
                    return RCPT_AFTER_BDAT
                if phase not in (Phase.MAIL, Phase.RCPT):
                    return NEED_MAIL  # RFC 5321 4.1.4: RCPT only after a successful MAIL
                rcpt_params = parse_rcpt_params(event.params)
                if isinstance(rcpt_params, ProtocolError):
                    return rcpt_params
                return RcptTo(event.forward_path, rcpt_params)
            case Data():
                return self._check_data()
            case Bdat():
                refusal = self._check_bdat()
                if refusal is not None:
                    self._refused_chunk = refusal
                    # RFC 3030 2: a failed BDAT ends the transaction; drop it now.
                    self.phase = Phase.IDLE
                    return None
                self.phase = Phase.BDAT  # no reply before the chunk: BDAT holds now
                return event
            case Burl():
                # RFC 4468 3: BURL goes where BDAT may, and mixes with BDAT chunks.
                burl_refusal = self._check_bdat()
                if burl_refusal is not None:
                    return burl_refusal
                self.phase = Phase.BDAT
                return event
            case Auth():
                if not self.greeted:
                    return NEED_HELO  # RFC 4954 4: AUTH comes after EHLO
                if self.authenticated:
                    return ALREADY_AUTHENTICATED
                if phase is not Phase.IDLE:
                    return AUTH_IN_TRANSACTION
                return event
        return event

    def _check_data(self) -> ConnectionEvent:
        if self.phase is Phase.IDLE:
            return NEED_MAIL
        if self.phase is Phase.MAIL:
            return NEED_RCPT
        if self.phase is Phase.BDAT:
            return DATA_AFTER_BDAT
        if self.binary:
            return DATA_IN_BINARYMIME  # RFC 3030 3
        return Data()

    def _check_bdat(self) -> ProtocolError | None:
        if self.phase is Phase.IDLE:
            return NEED_MAIL
        if self.phase is Phase.MAIL:
            return NEED_RCPT
        return None  # RCPT (the first chunk) or BDAT (a later one)

    # -- output --------------------------------------------------------------------------

    def send(self, reply: Reply) -> bytes:
        """Serialise a reply and apply what it means to the state. The first reply after an
        event answers it; any further one (a 421 after a 535) answers nothing."""
        answered, self._awaiting = self._awaiting, None
        code = reply.code
        if code == 421 or (code == 221 and _is_verb(answered, "QUIT")):
            self.closed = True  # RFC 5321 3.8: 421 closes the connection
        elif answered is not None:
            self._answered(answered, code)
        return reply.to_bytes()

    def _answered(self, event: Event, code: int) -> None:
        positive = 200 <= code < 300
        match event:
            case Ehlo() if positive:
                self.greeted = True  # RFC 5321 4.1.4: EHLO also resets any transaction
                self.phase = Phase.IDLE
            case Mail() if positive:
                self.phase = Phase.MAIL
                # RFC 3030 3: this transaction's chunks are binary (or not); a refused
                # MAIL changes nothing, and the next accepted one decides again.
                self.binary = self.reader.binary = self._mail_binary
            case Rcpt() if positive:
                self.phase = Phase.RCPT
            case Data() if code == 354:
                self.phase = Phase.DATA
                self.reader.start_data()
            case BodyEnd():
                # Whatever the reply, a message's end (DATA, BDAT LAST) ends the transaction;
                # a later chunk's reply keeps BDAT going.
                if event.last:
                    self.phase = Phase.IDLE
            case Burl():
                # The last BURL ends the transaction whatever the reply; a refused one
                # ends it too, as a refused BDAT does (RFC 3030 2, RFC 4468 3).
                if event.last or not positive:
                    self.phase = Phase.IDLE
            case Auth() | AuthResponse():
                if code == 334:
                    self.reader.expect_auth_response()  # RFC 4954 4: a challenge
                elif code == 235:
                    self.authenticated = True
            case SimpleCommand(verb="RSET") if positive:
                self.phase = Phase.IDLE  # RFC 5321 4.1.1.5
            case SimpleCommand(verb="STARTTLS") if code == 220:
                # RFC 3207 4.2: forget everything learned before TLS, including plaintext
                # pipelined after the command.
                self.reader.discard_buffer()
                self.phase = Phase.IDLE
                self.greeted = False
            case SimpleCommand(verb="XCLIENT") if code == 220:
                # XCLIENT_README: the session starts over for the client named; EHLO again.
                self.phase = Phase.IDLE
                self.greeted = False
                self.authenticated = False
            case _:
                pass


def _is_verb(event: Event | None, verb: str) -> bool:
    return isinstance(event, SimpleCommand) and event.verb == verb

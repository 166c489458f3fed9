"""The HTTP protocol of ``palsy serve``: uvicorn's httptools protocol with Nagle's algorithm off, and bounds on
what one connection may cost.

httptools (the C parser of Node's llhttp) and uvloop (an event loop on libuv, where it has a build) are
uvicorn's fast pair: with them, and the gate as pure ASGI middleware, a memoised card costs the server about
a fifth less CPU than with h11 on asyncio's loop (docs/service.md, "What the server itself cost").

uvicorn creates its listening socket with protocol number 0, so asyncio's loop does not set ``TCP_NODELAY``
on the connections (it does so only for sockets created with ``IPPROTO_TCP``; uvloop sets it on every TCP
connection); uvicorn writes a response's head and body in separate writes, and on a kept-alive connection
the body then waits for the client's delayed acknowledgement: about 40 ms added to every answer on Linux
(measured on loopback with h11 on asyncio's loop: 51 ms per memoised card against 8 ms; docs/service.md).
A CDS service answers small JSON bodies once per request, so it writes at once, on whichever loop it runs
(asyncio's where uvloop has no build).

uvicorn's httptools protocol bounds none of these, and each is reached before any token is checked:

- a request's line and headers: httptools keeps a header's value in memory until the value ends (a 300 MB
  header cost a worker 440 MB, and was then answered); h11 stops at 16 kB. Here the head may take
  :data:`MAX_HEAD_BYTES`; more is a JSON 431 and the connection is closed;
- requests sent ahead of their answers (HTTP/1.1 pipelining): each is parsed and queued, a socket read at a
  time, however many; more than :data:`MAX_PIPELINED` closes the connection;
- a client that does not read its answers: the answer waits in memory, and its request's task waits, for as
  long as the socket stays open. An answer left unread for :data:`WRITE_STALL_SECONDS` resets the connection
  (what the kernel still holds for it is dropped too);
- a client that sends nothing, or its head a byte at a time: the connection stays open without end. A
  connection with no answer in progress must complete a request's head within :data:`HEAD_SECONDS` (of its
  opening or of its last answer), or it is closed (a JSON 408 when part of a head had come);
- a client that stops sending its body (a crash mid-body, a half-open connection): its request held an
  admission place until the worker restarted (s17 review #14). A body that makes no progress for
  :data:`BODY_SECONDS` while the service waits for it, or that takes more than :data:`BODY_TOTAL_SECONDS` in all
  (a byte trickled every 29 s), is a JSON 408 and the connection is closed; time the service itself does not
  read (its buffer full while the token is checked, or while a large body waits its turn) is not counted.

These bound each connection, not their number: the reverse proxy in front limits connections per client.

Each refusal answered (431, 408, 400) carries the CORS headers the app's CORS layer would add to any of its
answers for the request's Origin, as far as the head was read (the app hands the protocol its CORS layer's
headers through the lifespan state, :data:`CORS_STATE`): a browser-based CDS client of an allowed origin can
read why it was refused, and no other origin is allowed (until 5 December these were the service's only errors
without them). The head's lines are read from its bytes as they came (:func:`head_lines`: httptools hands a
header over only when the next one starts, so a head that stops, or breaks, right after its Origin would have
none); an Origin the head had not reached gets none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("palsy.serve")

#: The most bytes a request's line and headers may take together (the URL and the final blank line included).
MAX_HEAD_BYTES = 64 * 1024
#: The most requests a connection may send ahead of the answer it waits for (HTTP/1.1 pipelining).
MAX_PIPELINED = 16
#: How long an answer may wait unread (the connection's write buffer above its high-water mark), seconds.
WRITE_STALL_SECONDS = 30.0
#: How long a connection with no answer in progress may take to send a request's head, seconds.
HEAD_SECONDS = 30.0
#: How long a request's body may make no progress while the service waits for it, seconds.
BODY_SECONDS = 30.0
#: How long a request's whole body may take while the service waits for it, seconds (4 MB in 60 s is 70 kB/s): a
#: body trickled a byte every 29 s met no other bound (second review of s17, #6).
BODY_TOTAL_SECONDS = 60.0
#: The key of the app's lifespan state (uvicorn's ``app_state``) under which the app gives its CORS layer's
#: headers for a request: a callable from the request's headers (lower-case names) to the headers to add.
CORS_STATE = "palsy_cors_headers"


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on ``transport``'s socket (when it is a TCP socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket after all: nothing to turn off
            pass


def drop(transport: asyncio.Transport) -> None:
    """Close ``transport`` at once with a reset, discarding what it and the kernel still hold for the client
    (a socket closed without a reset delivers its kernel buffer, up to megabytes, at the client's pace)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:  # not a socket that lingers: the close below is all there is
            pass
    transport.abort()


_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(_TOKEN + rb" [^\x00-\x20\x7f]+ HTTP/[0-9]\.[0-9]")
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")


def head_lines(head: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of the start of a request head as the app would see them, each line whole (ended by CRLF):
    the name in lower case, the value without its leading spaces and tabs (httptools keeps trailing ones, and
    so does this). Read as a parser reads: nothing without a request line, and nothing from the first line that
    is not a header (a name with spaces, a folded continuation, a control character) on, as nothing after a
    parser's error is read; the part of a line not ended yet is not read either."""
    end = head.find(b"\r\n\r\n")
    lines = (head[:end + 2] if end >= 0 else head).split(b"\r\n")
    if len(lines) < 2 or not _REQUEST_LINE.fullmatch(lines[0]):
        return []
    out = []
    for line in lines[1:-1]:
        m = _HEADER_LINE.fullmatch(line)
        if m is None:
            break
        out.append((m[1].lower(), m[2]))
    return out


def error_response(status: int, code: str, message: str, default_headers: list[tuple[bytes, bytes]] = (),
                   extra_headers: list[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole HTTP/1.1 response with the service's JSON error body (and ``extra_headers``: its CORS headers),
    closing the connection."""
    body = json.dumps({"error": code, "message": message}).encode("utf-8")
    head = [STATUS_LINE[status]]
    for name, value in [*default_headers, *extra_headers, (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode("ascii")), (b"connection", b"close")]:
        head += [name, b": ", value, b"\r\n"]
    return b"".join([*head, b"\r\n", body])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each connection with ``TCP_NODELAY`` set and the bounds of this module.

    A request's head is counted as its bytes are fed to the parser (httptools calls back with a header only
    once its value has ended, too late to bound it), so the bound holds to within one socket read when a head
    starts in the middle of a read that ended the request before it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_head = True  # the parser is reading a request's line and headers (or waiting for them)
        self.in_message = False  # a request has begun and not ended: self.headers are its headers so far
        self.head_bytes = 0
        self.head_seen = bytearray()  # the bytes of the head being read (at most MAX_HEAD_BYTES), for its Origin
        self.refused = False
        self.head_timer: asyncio.TimerHandle | None = None
        self.stall_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.body_moved = 0.0  # when the body being read last made progress (the loop's time)
        self.body_spent = 0.0  # the seconds the body being read has taken while the service read it
        self.body_checked = 0.0  # when body_spent was last brought up to date
        self.answering: Any = None  # the request whose answer is being sent (uvicorn's cycle)

    # --- the connection ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)
        self.head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.head_timer, self.stall_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        # uvicorn tells only the newest request parsed that its client is gone; the one being answered is an
        # older one when requests were sent ahead, and its next write to the closed transport raised (uvloop's
        # RuntimeError: an internal error logged for every such connection dropped)
        if self.answering is not None and not self.answering.response_complete:
            self.answering.disconnected = True
            self.answering.message_event.set()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self.answering = cycle
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        while data and not self.refused and not self.transport.is_closing():
            if self.in_head:
                room = MAX_HEAD_BYTES - self.head_bytes
                if room <= 0:
                    self.refuse(431, "headers_too_large", f"the request's line and headers are larger than "
                                f"{MAX_HEAD_BYTES} bytes")
                    return
                piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
                self.head_bytes += len(piece)
                self.head_seen += piece
            else:
                piece, data = data, b""
            super().data_received(piece)

    # --- the parser's callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_message = True

    def on_headers_complete(self) -> None:
        if self.refused:  # the rest of the read being parsed: start nothing more
            return
        self.in_head, self.head_seen = False, bytearray()  # its headers are parsed now (self.headers)
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        super().on_headers_complete()
        if len(self.pipeline) > MAX_PIPELINED:
            self.refuse(None, "", f"more than {MAX_PIPELINED} requests sent ahead of their answers")
        elif self.body_timer is None:  # cancelled by the message's end when it has no body (the same read)
            self.body_moved = self.body_checked = self.loop.time()
            self.body_spent = 0.0
            self.body_timer = self.loop.call_later(min(BODY_SECONDS, BODY_TOTAL_SECONDS), self._body_too_slow)

    def on_body(self, body: bytes) -> None:
        self.body_moved = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes, self.in_message = True, 0, False
        self.head_seen = bytearray()
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._answer_done() and self.head_timer is None:
            self.head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    # --- flow control: an answer the client does not read ----------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.stall_timer is None:
            self.stall_timer = self.loop.call_later(WRITE_STALL_SECONDS, self._unread)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None

    # --- refusals ---------------------------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse: the JSON 400 (uvicorn's is plain text)."""
        self.refuse(400, "bad_http", "the request is not valid HTTP/1.1")

    def refuse(self, status: int | None, code: str, message: str) -> None:
        """Close the connection, with the JSON error ``status`` when no other answer is being sent on it (an
        answer cannot be interleaved with another); ``status`` None closes it without one."""
        if self.refused:
            return
        self.refused = True
        log.info("connection closed: %s%s", message, f" ({status})" if status else "")
        if status is not None and self._answer_done() and not self.transport.is_closing():
            self.transport.write(error_response(status, code, message, self.server_state.default_headers,
                                                self._cors_headers()))
            self.transport.close()
        else:
            drop(self.transport)

    def _cors_headers(self) -> list[tuple[bytes, bytes]]:
        """The CORS headers of the app's CORS layer for the request being read: its head's lines as far as they
        came while its head is read, else its headers as parsed; none when the app has no CORS layer or no
        request has begun (bytes that start no request)."""
        headers_for = (self.app_state or {}).get(CORS_STATE)
        if headers_for is None or not self.in_message:
            return []
        headers = head_lines(bytes(self.head_seen)) if self.in_head else list(self.headers or ())
        if not headers:
            return []
        try:
            return list(headers_for(headers))
        except Exception:  # noqa: BLE001 (the refusal is answered without them rather than not at all)
            log.warning("connection refusal: its CORS headers could not be made; answered without them")
            return []

    def _answer_done(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or not self._answer_done():
            return
        if self.in_head and self.head_bytes:
            self.refuse(408, "request_timeout", f"the request's line and headers took more than {HEAD_SECONDS:g} s")
        else:
            self.refused = True
            self.transport.close()

    def _body_too_slow(self) -> None:
        self.body_timer = None
        if self.transport.is_closing() or not self.in_message or self.in_head:
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the service is not reading (its buffer is full): not the client's time
            self.body_moved = now
        else:  # the time since the last check counted whole when the service reads at the check
            self.body_spent += now - self.body_checked
        self.body_checked = now
        overall = BODY_TOTAL_SECONDS - self.body_spent
        left = min(self.body_moved + BODY_SECONDS - now, overall)
        if left > 0:
            self.body_timer = self.loop.call_later(left, self._body_too_slow)
            return
        why = f"took more than {BODY_TOTAL_SECONDS:g} s" if overall <= 0 else f"made no progress for {BODY_SECONDS:g} s"
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self.refuse(None, "", f"its request's body {why}")
            return
        # the app waits for the body: the 408 is written here, and the app told its client has gone (it unwinds,
        # leaving its admission place; what it would send is dropped)
        self.refused = True
        message = f"the request's body {why}"
        log.info("connection closed: %s (408)", message)
        self.transport.write(error_response(408, "request_timeout", message, self.server_state.default_headers,
                                            self._cors_headers()))
        self.transport.close()
        cycle.disconnected = True
        cycle.message_event.set()

    def _unread(self) -> None:
        self.stall_timer = None
        self.refuse(None, "", f"its client left an answer unread for {WRITE_STALL_SECONDS:g} s")

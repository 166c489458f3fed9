"""The HTTP protocol of ``palsy serve``: uvicorn's httptools protocol with Nagle's algorithm off.

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
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on ``transport``'s socket (when it is a TCP socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket after all: nothing to turn off
            pass


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each connection with ``TCP_NODELAY`` set."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)

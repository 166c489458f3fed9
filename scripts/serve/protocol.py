"""The HTTP protocol of ``palsy serve``: uvicorn's h11 protocol with Nagle's algorithm off.

uvicorn creates its listening socket with protocol number 0, so asyncio does not set ``TCP_NODELAY`` on the
connections (it does so only for sockets created with ``IPPROTO_TCP``); uvicorn writes a response's head
and body in separate writes, and on a kept-alive connection the body then waits for the client's delayed
acknowledgement: about 40 ms added to every answer on Linux (measured on loopback: 51 ms per memoised card
against 8 ms; docs/service.md). A CDS service answers small JSON bodies once per request, so it writes at
once.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, each connection with ``TCP_NODELAY`` set."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # not a TCP socket after all: nothing to turn off
                pass
        super().connection_made(transport)

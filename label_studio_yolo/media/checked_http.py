"""A requests session whose every new connection is checked against ``MEDIA_ALLOWED_HOSTS`` once it is open.

requests and urllib3 have no hook between "connected" and "request sent", so the session's connection pools make
their connections through subclasses of urllib3's own connection classes that run the check on the socket's peer
address (the address actually reached, whatever the URL's spelling or the DNS answer). A refusal surfaces as a
:class:`~label_studio_yolo.allowed_hosts.RefusedAddress` somewhere in the exception chain; :func:`refusal_in`
finds it.

Example:
    >>> session = checked_session(peer_check(HostPolicy.parse("public"), frozenset()))
    >>> session.get("http://127.0.0.1:6379/")                   # doctest: +SKIP
    requests.exceptions.ConnectionError: ... 127.0.0.1 is 127.0.0.1, a loopback address ...
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from label_studio_yolo.allowed_hosts import PeerCheck, RefusedAddress


def checked_session(check: PeerCheck) -> requests.Session:
    """A session whose direct connections (not those to an HTTP proxy) pass ``check`` before any byte is sent."""
    session = requests.Session()
    pools = _checked_pool_classes(check)
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        adapter.poolmanager.pool_classes_by_scheme = pools
    return session


def refusal_in(error: BaseException) -> RefusedAddress | None:
    """The :class:`RefusedAddress` that caused ``error`` (urllib3 and requests wrap it a few levels deep)."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:  # a ``reason`` may be a string
            continue
        seen.add(id(current))
        if isinstance(current, RefusedAddress):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None


def _checked_pool_classes(check: PeerCheck) -> dict[str, type[HTTPConnectionPool]]:
    def checked(sock: socket.socket, connection: HTTPConnection) -> socket.socket:
        peer = sock.getpeername()
        try:
            check(str(connection.host), int(connection.port or 0), str(peer[0]))
        except RefusedAddress:
            sock.close()
            raise
        return sock

    class CheckedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn(), self)

    class CheckedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn(), self)

    class CheckedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls: Any = CheckedHTTPConnection

    class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls: Any = CheckedHTTPSConnection

    return {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}

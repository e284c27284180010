"""Which hosts task URLs may be downloaded from (``MEDIA_ALLOWED_HOSTS``), checked on the address actually connected.

Whoever can import a task chooses the URL the backend downloads, from inside the backend's network: without a
check, ``http://169.254.169.254/...`` reads a cloud's metadata service and ``http://localhost:6379`` talks to Redis.
The default, ``public``, allows any address on the public internet, and Label Studio's own address (wherever it
runs); not private, loopback, link-local, shared, multicast or reserved addresses.

The check is made on the socket's peer address after each connect, so every spelling of an address (``2130706433``,
``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``), a name that resolves to one, DNS rebinding and every redirect hop
are caught alike. When an HTTP proxy connects instead (``HTTP_PROXY``), the names are resolved and checked first.

Example:
    >>> policy = HostPolicy.parse("public,10.1.0.0/16,minio.internal")
    >>> policy.allows_address("10.1.2.3"), policy.allows_address("127.0.0.1"), policy.allows_name("minio.internal")
    (True, False, True)
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from label_studio_yolo.label_studio_url import normalised_host

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PUBLIC = "public"
"""``MEDIA_ALLOWED_HOSTS`` entry: any address on the public internet."""

ANY = "*"
"""``MEDIA_ALLOWED_HOSTS`` entry: any address at all (the backend's own network included)."""

NAT64 = ipaddress.ip_network("64:ff9b::/96")
"""IPv6 addresses that a NAT64 gateway turns into the IPv4 address in their last 32 bits."""


class RefusedAddress(OSError):
    """A connection went to an address ``MEDIA_ALLOWED_HOSTS`` does not allow; the message says which and why."""


@dataclass(frozen=True)
class HostPolicy:
    """The parsed ``MEDIA_ALLOWED_HOSTS``: public addresses or not, and the names and networks added."""

    public: bool = True
    anything: bool = False
    names: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    setting: str = PUBLIC

    @classmethod
    def parse(cls, text: str) -> HostPolicy:
        """The policy a ``MEDIA_ALLOWED_HOSTS`` value describes (comma-separated entries).

        Raises:
            ValueError: an entry is empty-looking or neither a keyword, a host name, an address nor a network.
        """
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        names, networks = [], []
        for entry in entries:
            if entry.lower() in (PUBLIC, ANY):
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.append(_host_pattern(entry))
        lowered = {entry.lower() for entry in entries}
        return cls(PUBLIC in lowered, ANY in lowered, tuple(names), tuple(networks), text)

    def allows_name(self, host: str) -> bool:
        """Whether ``host`` is allowed by name (an entry such as ``minio.internal`` or ``*.example.com``)."""
        host = normalised_host(host)
        return self.anything or any(fnmatch.fnmatchcase(host, name) for name in self.names)

    def allows_address(self, address: str) -> bool:
        """Whether a connection to ``address`` (an IP address as a socket reports it) is allowed."""
        if self.anything:
            return True
        written = ipaddress.ip_address(address.split("%", 1)[0])
        ip = _effective(written)
        if any(written in network or ip in network for network in self.networks):
            return True
        return self.public and is_public(ip)

    def refusal(self, host: str, address: str) -> str:
        """Why a connection to ``host`` at ``address`` is refused, and the setting that would allow it."""
        ip = _effective(ipaddress.ip_address(address.split("%", 1)[0]))
        where = f"{host} is {ip}," if normalised_host(host) != str(ip) else f"{ip} is"
        return (
            f"{where} {_kind(ip)} address; task URLs may point to public addresses and to Label Studio only "
            f"(MEDIA_ALLOWED_HOSTS={self.setting}). To allow it, add it: MEDIA_ALLOWED_HOSTS={self.setting},{host}"
        )

    def check_resolved(self, host: str, port: int) -> None:
        """Resolve ``host`` and refuse it unless every address it has is allowed (for proxied requests).

        Raises:
            RefusedAddress: an address of ``host`` is not allowed.
            OSError: ``host`` cannot be resolved.
        """
        if self.allows_name(host):
            return
        for *_, address in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
            if not self.allows_address(str(address[0])):
                raise RefusedAddress(self.refusal(host, str(address[0])))


def _host_pattern(entry: str) -> str:
    """A host-name entry (``minio.internal``, ``*.example.com``) normalised for matching.

    Raises:
        ValueError: ``entry`` is not a host name.
    """
    labels = entry.removeprefix("*.").split(".")
    if not all(label and label.replace("-", "").replace("_", "").isalnum() for label in labels):
        raise ValueError(f"MEDIA_ALLOWED_HOSTS entry {entry!r} is not a host name, IP address or network")
    return ("*." if entry.startswith("*.") else "") + normalised_host(entry.removeprefix("*."))


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is an address on the public internet (not private, loopback, link-local, shared, multicast,
    reserved or unspecified; an IPv4 address inside IPv6 is judged as itself)."""
    ip = _effective(ip)
    private = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
    return ip.is_global and not private and not ip.is_unspecified


def _effective(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def _kind(ip: IPAddress) -> str:
    for kind, flag in (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("an unspecified", ip.is_unspecified),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
    ):
        if flag:
            return kind
    return "a non-public"


PeerCheck = Callable[[str, int, str], None]
"""Called with a connection's host name, port and the peer address it reached; raises :class:`RefusedAddress`."""


def peer_check(policy: HostPolicy, trusted: frozenset[tuple[str, int]]) -> PeerCheck:
    """The check run on every new connection: ``trusted`` (host, port) pairs (Label Studio's) and host names the
    policy allows pass; any other connection must have reached an address the policy allows."""

    def check(host: str, port: int, address: str) -> None:
        name = normalised_host(host)
        if (name, port) in trusted or policy.allows_name(name):
            return
        if not policy.allows_address(address):
            raise RefusedAddress(policy.refusal(host, address))

    return check

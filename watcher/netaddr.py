"""Which addresses are public: a feed on the internet may not redirect us into a private network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolve(host, port)`` → IP addresses as strings."""


def ip_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP in ``address`` (IPv4-mapped IPv6 unwrapped, zone dropped), or None for a host name."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(address: str) -> bool:
    """True for a globally routable unicast IP; False for loopback, private, link-local, reserved,
    multicast, shared (CGNAT), documentation ranges, and for anything that is not an IP."""
    ip = ip_of(address)
    if ip is None:
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
    )


async def getaddrinfo(host: str, port: int) -> list[str]:
    """The default :data:`Resolver`: the running loop's ``getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]

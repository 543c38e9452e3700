"""URLs fetched on a user's behalf never reach into the gateway's own
network (server-side request forgery).

A file the user shares from XMPP is a URL the gateway downloads. The
address it actually connects to — after DNS, and again after each redirect,
so that rebinding a name or redirecting does not get around the check — is
refused when it is loopback, private (RFC 1918), shared (100.64/10),
link-local (169.254/16, the cloud metadata address among them), multicast,
unspecified, reserved, IPv6 unique-local or link-local, or an IPv4-mapped
form of these. Host names the admin lists in ``FETCH_ALLOW_HOSTS`` (the XMPP
server's own upload service often lives on a private address) are exempt.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import urllib.parse
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from . import config

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")

# How many redirects a fetch follows.
MAX_REDIRECTS = 5


class RefusedAddress(OSError):
    """A URL leads into the gateway's own network; the text says why."""


def refusal(ip: IPAddress) -> str | None:
    """Why the gateway must not connect to `ip` for a user, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def allowed_host(host: str) -> bool:
    """Whether the admin lets the gateway fetch from `host` whatever its
    address (``FETCH_ALLOW_HOSTS``, names compared without case)."""
    return host.lower().rstrip(".") in _allowed(config.FETCH_ALLOW_HOSTS)


@functools.cache
def _allowed(option: str) -> frozenset[str]:
    # Parsed once per value of the option, not on every lookup.
    names = {h.strip().lower().rstrip(".") for h in option.split(",")}
    return frozenset(names - {""})


def check_url(url: str) -> str:
    """The URL's host if the gateway may request it (http or https, and not
    an address literal inside its network); RefusedAddress otherwise.
    Host names are checked again once resolved, by :class:`GuardedResolver`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedAddress(f"only http and https addresses are fetched, not {url!r}")
    host = parts.hostname
    if not host:
        raise RefusedAddress(f"{url!r} names no host")
    if allowed_host(host):
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name: checked after DNS
    why = refusal(ip)
    if why is not None:
        raise RefusedAddress(f"{host} is {why}, inside the gateway's own network")
    return host


class GuardedResolver(AbstractResolver):
    """DNS that keeps only the addresses a user's URL may reach; the
    connection is made to exactly these, so a name cannot be rebound
    between the check and the connection."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if allowed_host(host):
            return found
        kept: list[ResolveResult] = []
        reasons: list[str] = []
        for info in found:
            why = refusal(ipaddress.ip_address(info["host"]))
            if why is None:
                kept.append(info)
            else:
                reasons.append(f"{info['host']} ({why})")
        if not kept:
            raise RefusedAddress(
                f"{host} leads to {', '.join(reasons)}, inside the gateway's own "
                "network"
            )
        return kept

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An HTTP session for a user's URLs: every connection goes through
    :class:`GuardedResolver`. Callers must not let it follow redirects
    itself: each hop's URL goes through :func:`check_url` first."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver())
    return aiohttp.ClientSession(connector=connector, **kwargs)

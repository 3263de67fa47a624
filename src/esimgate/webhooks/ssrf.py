"""SSRF guard for webhook URLs: checked at registration and again at every delivery.

The URL's host is parsed the way browsers and libc would read it (every legacy IPv4 spelling,
IPv6 literals, IDNA), names are resolved, and *every* resolved address must be public. The sender
then connects to the checked address itself, so a second DNS answer (rebinding) cannot redirect
the delivery. Plain http is only accepted for loopback receivers when the caller explicitly allows
loopback (tests, local development); private, link-local, metadata and CGNAT addresses are never
allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT_S = 10.0

_LOOPBACK_NAME_ADDRESSES: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# A DNS name: letters, digits, hyphen, underscore, dots (after IDNA encoding).
_NAME_RE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
# The last label "is a number" in the WHATWG sense: decimal, 0x-hex or octal digits.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class UnsafeWebhookUrl(ValueError):
    """The webhook URL is malformed or points at an address esimgate must not call."""

    def __init__(self, url: str, reason: str) -> None:
        shown = url if len(url) <= 120 else url[:117] + "..."
        super().__init__(f"unsafe webhook URL {shown!r}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked delivery target: the original URL plus the addresses that passed the guard."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address would actually reach, if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.sixtofour is not None:
        return addr.sixtofour
    return None


def _unsafe_reason(addr: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why `addr` must not be called, or None when it is acceptable."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return f"{addr} carries an IPv6 zone id"
        if addr == ipaddress.IPv6Address("::1"):
            return None if allow_loopback else f"{addr} is a loopback address"
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            # Loopback is only allowed in its native form, never through a translation prefix.
            inner = _unsafe_reason(embedded, allow_loopback=False)
            return None if inner is None else f"{addr} embeds {embedded}: {inner}"
        if addr in _NAT64_LOCAL_USE:
            return f"{addr} is a local-use NAT64 address"
        if addr in _IPV4_COMPATIBLE:
            return f"{addr} is an IPv4-compatible or unspecified address"
        if addr.teredo is not None:
            return f"{addr} is a Teredo tunnel address"
    if addr.is_loopback:
        return None if allow_loopback else f"{addr} is a loopback address"
    if addr.is_unspecified:
        return f"{addr} is the unspecified address"
    if addr.is_link_local:
        return f"{addr} is a link-local (or cloud metadata) address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return f"{addr} is a carrier-grade NAT (shared) address"
    if addr.is_multicast:
        return f"{addr} is a multicast address"
    if addr.is_private:
        return f"{addr} is a private address"
    if addr.is_reserved:
        return f"{addr} is a reserved address"
    if not addr.is_global:
        return f"{addr} is not a public address"
    return None


def _parse_ip_literal(host: str, url: str) -> IPAddress | None:
    """Recognise `host` as an IP literal in any spelling libc/browsers accept, before DNS."""
    if ":" in host:
        if "%" in host:
            raise UnsafeWebhookUrl(url, "IPv6 zone ids are not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeWebhookUrl(url, f"invalid IPv6 literal {host!r}") from None
    bare = host[:-1] if host.endswith(".") else host
    try:
        return ipaddress.IPv4Address(bare)
    except ValueError:
        pass
    last_label = bare.rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL_RE.match(last_label):
        return None  # an ordinary DNS name
    # Legacy spellings: 2130706433, 0x7f000001, 0177.0.0.1, 127.1, 0x7f.1 ... (inet_aton rules).
    if not re.fullmatch(r"[0-9a-fx.]+", bare):
        raise UnsafeWebhookUrl(url, f"host {host!r} ends in a number but is not an IPv4 address")
    try:
        packed = socket.inet_aton(bare)
    except OSError:
        raise UnsafeWebhookUrl(
            url, f"host {host!r} ends in a number but is not an IPv4 address"
        ) from None
    return ipaddress.IPv4Address(packed)


def _normalise_host(raw: str, url: str) -> str:
    host = raw.lower()
    if ":" in host:
        return host  # IPv6 literal (urlsplit already removed the brackets)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeWebhookUrl(url, "host is not a valid internationalised name") from None
    if not _NAME_RE.match(host.rstrip(".")) or host.startswith("."):
        raise UnsafeWebhookUrl(url, f"invalid host {raw!r}")
    return host


def _split(url: str) -> tuple[SplitResult, str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(url, f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise UnsafeWebhookUrl(url, "contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(url, f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeWebhookUrl(url, "only http(s) URLs are allowed")
    if "@" in parts.netloc:
        raise UnsafeWebhookUrl(url, "credentials (userinfo) in the URL are not allowed")
    if not parts.hostname:
        raise UnsafeWebhookUrl(url, "the URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    if port == 0:
        raise UnsafeWebhookUrl(url, "port 0 is not allowed")
    return parts, scheme, port


async def _resolve(host: str, port: int, url: str) -> tuple[IPAddress, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise UnsafeWebhookUrl(url, f"cannot resolve {host!r} ({exc})") from None
    found: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        raw = str(sockaddr[0])
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            raise UnsafeWebhookUrl(url, f"{host!r} resolved to unparseable {raw!r}") from None
        if addr not in found:
            found.append(addr)
    if not found:
        raise UnsafeWebhookUrl(url, f"cannot resolve {host!r} (no addresses)")
    return tuple(found)


async def resolve_target(url: str, *, allow_loopback: bool) -> Target:
    """Parse, resolve and check `url`; raise UnsafeWebhookUrl unless every address is safe.

    https is required, except that with `allow_loopback` plain http is accepted when every
    resolved address is a loopback address (local receivers in tests and development).
    """
    parts, scheme, port = _split(url)
    assert parts.hostname is not None  # checked by _split
    host = _normalise_host(parts.hostname, url)

    literal = _parse_ip_literal(host, url)
    addresses: tuple[IPAddress, ...]
    if literal is not None:
        addresses = (literal,)
        host = str(literal)
    elif host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
        addresses = _LOOPBACK_NAME_ADDRESSES
    else:
        addresses = await _resolve(host, port, url)

    for addr in addresses:
        reason = _unsafe_reason(addr, allow_loopback=allow_loopback)
        if reason is not None:
            raise UnsafeWebhookUrl(url, reason)

    if scheme != "https" and not (allow_loopback and all(a.is_loopback for a in addresses)):
        raise UnsafeWebhookUrl(url, "https is required")
    return Target(url=url, scheme=scheme, host=host, port=port, addresses=addresses)

"""SSRF guard: every spelling of an internal address is refused, before and after DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest

from esimgate.webhooks.ssrf import Target, UnsafeWebhookUrl, resolve_target

# reliability.md "Webhooks": every one of these hosts must be refused.
RELIABILITY_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104
    "[fd00::1]",
    "[64:ff9b::7f00:1]",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
]
# Refused even when loopback receivers are allowed.
NEVER_ALLOWED_HOSTS = [
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104
    "[fd00::1]",
    "[64:ff9b::7f00:1]",
    "[::]",
    "[fe80::1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::a00:1]",
    "[2002:a00:1::]",
    "[2002:7f00:1::]",
    "[::ffff:10.0.0.1]",
    "[ff02::1]",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "0",
    "0x0a000001",
    "012.0.0.1",
    "10.1",
    "167772161",
    "0xa9.0xfe.0xa9.0xfe",
    "2852039166",
    "100.127.255.254",
    "172.31.255.255",
    "192.168.255.255.",
    "[::ffff:7f00:1]",
]
PUBLIC_V4 = "93.184.215.14"

Resolver = Callable[..., Any]


def _info(address: str, port: int) -> tuple[Any, ...]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr: tuple[Any, ...] = (
        (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
    )
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Patch the running loop's getaddrinfo; returns the list of names looked up."""
    loop = asyncio.get_running_loop()
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **_kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_info(address, port) for address in answers[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
async def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """IP literals and localhost must be recognised without any DNS lookup."""
    return fake_dns(monkeypatch, {})


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("host", RELIABILITY_HOSTS)
async def test_reliability_cases_refused(scheme: str, host: str, no_dns: list[str]) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        await resolve_target(f"{scheme}://{host}/hook", allow_loopback=False)
    with pytest.raises(UnsafeWebhookUrl):
        await resolve_target(f"{scheme}://{host}:8443/hook?x=1", allow_loopback=False)
    assert no_dns == []


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("host", NEVER_ALLOWED_HOSTS)
async def test_internal_refused_even_with_loopback_allowed(
    scheme: str, host: str, no_dns: list[str]
) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        await resolve_target(f"{scheme}://{host}/hook", allow_loopback=True)
    assert no_dns == []


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://127.0.0.1:{port}/", "127.0.0.1", None),
        ("http://localhost/", "localhost", 80),
        ("http://localhost:{port}/hook", "localhost", None),
        ("http://api.localhost:{port}/hook", "api.localhost", None),
        ("http://[::1]:{port}/", "::1", None),
        ("http://2130706433:{port}/", "127.0.0.1", None),
        ("http://127.1:{port}/", "127.0.0.1", None),
        ("https://127.0.0.1:{port}/", "127.0.0.1", None),
    ],
)
async def test_loopback_allowed_only_when_enabled(
    url: str, host: str, port: int | None, no_dns: list[str]
) -> None:
    full = url.format(port=48123)
    target = await resolve_target(full, allow_loopback=True)
    assert target.host == host
    assert target.port == (port or 48123)
    assert target.addresses
    assert all(address.is_loopback for address in target.addresses)
    assert target.url == full
    with pytest.raises(UnsafeWebhookUrl):
        await resolve_target(full, allow_loopback=False)
    assert no_dns == []


async def test_legacy_spellings_are_normalised(no_dns: list[str]) -> None:
    for spelling in ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.0.1."]:
        target = await resolve_target(f"http://{spelling}:9000/", allow_loopback=True)
        assert target.addresses == (ipaddress.IPv4Address("127.0.0.1"),), spelling
        assert target.host == "127.0.0.1"


async def test_numeric_looking_garbage_is_not_sent_to_dns(no_dns: list[str]) -> None:
    for host in ["1.2.3.09", "0x7g.0.0.1", "1.2.3.4.5", "999999999999", "foo.123"]:
        with pytest.raises(UnsafeWebhookUrl):
            await resolve_target(f"https://{host}/", allow_loopback=True)
    assert no_dns == []


async def test_fullwidth_digits_are_normalised_before_parsing(no_dns: list[str]) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        await resolve_target("https://１２７.０.０.１/", allow_loopback=False)
    assert no_dns == []


async def test_name_resolving_to_private_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(
        monkeypatch,
        {
            "evil.example": ["10.0.0.5"],
            "meta.example": ["169.254.169.254"],
            "loop.example": ["127.0.0.1"],
            "v6.example": ["fd12::5"],
            "mapped.example": ["::ffff:192.168.1.1"],
        },
    )
    for name in ["evil.example", "meta.example", "loop.example", "v6.example", "mapped.example"]:
        with pytest.raises(UnsafeWebhookUrl):
            await resolve_target(f"https://{name}/hook", allow_loopback=False)
    for name in ["evil.example", "meta.example", "v6.example", "mapped.example"]:
        with pytest.raises(UnsafeWebhookUrl):
            await resolve_target(f"https://{name}/hook", allow_loopback=True)
    assert "evil.example" in asked


async def test_mixed_public_and_private_answers_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(monkeypatch, {"split.example": [PUBLIC_V4, "10.0.0.5"]})
    with pytest.raises(UnsafeWebhookUrl, match=re.escape("10.0.0.5")):
        await resolve_target("https://split.example/hook", allow_loopback=True)


async def test_public_https_target_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"example.com": [PUBLIC_V4, PUBLIC_V4, "2606:2800:21f:cb07::1"]})
    target = await resolve_target("https://Example.COM/hooks/in?x=1", allow_loopback=False)
    assert target == Target(
        url="https://Example.COM/hooks/in?x=1",
        scheme="https",
        host="example.com",
        port=443,
        addresses=(
            ipaddress.IPv4Address(PUBLIC_V4),
            ipaddress.IPv6Address("2606:2800:21f:cb07::1"),
        ),
    )
    assert asked == ["example.com"]


async def test_public_literal_https_is_accepted(no_dns: list[str]) -> None:
    target = await resolve_target(f"https://{PUBLIC_V4}:8443/x", allow_loopback=False)
    assert target.addresses == (ipaddress.IPv4Address(PUBLIC_V4),)
    assert target.port == 8443


async def test_plain_http_to_public_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"example.com": [PUBLIC_V4]})
    for url in ["http://example.com/hook", f"http://{PUBLIC_V4}/hook"]:
        for allow in (False, True):
            with pytest.raises(UnsafeWebhookUrl, match="https is required"):
                await resolve_target(url, allow_loopback=allow)


async def test_unresolvable_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {})
    with pytest.raises(UnsafeWebhookUrl, match="cannot resolve"):
        await resolve_target("https://nowhere.invalid/hook", allow_loopback=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "example.com/hook",
        "//example.com/hook",
        "https:///hook",
        "https://",
        "https://user:pass@example.com/hook",
        "https://user@example.com/hook",
        "https://example.com@10.0.0.1/hook",
        "https://example.com\\@10.0.0.1/hook",
        "https://example.com:99999/hook",
        "https://example.com:0/hook",
        "https://exa mple.com/hook",
        "https://example.com/a\nb",
        "https://" + "a" * 1990 + ".com/",
        "https://example.com/" + "x" * 2000,
        "https://[fe80::1%25eth0]/",
        "https://[::1/",
        "https://exa_mple..com/",
    ],
)
async def test_bad_urls_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"example.com": [PUBLIC_V4]})
    with pytest.raises(UnsafeWebhookUrl):
        await resolve_target(url, allow_loopback=True)


async def test_error_message_is_clear(no_dns: list[str]) -> None:
    with pytest.raises(UnsafeWebhookUrl) as caught:
        await resolve_target("https://169.254.169.254/latest/meta-data", allow_loopback=False)
    assert isinstance(caught.value, ValueError)
    assert "169.254.169.254" in str(caught.value)
    assert "link-local" in caught.value.reason

"""One delivery attempt against real loopback receivers (asyncio servers on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from esimgate.webhooks.sender import Attempt, send
from esimgate.webhooks.ssrf import Target, resolve_target

BODY = b'{"event":"order.completed","timestamp":"2026-04-13T10:05:30.000Z","data":{"n":1}}'
HEADERS = {"Content-Type": "application/json", "X-Webhook-Id": "wh_1", "Host": "attacker.example"}
HUGE = 32 * 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    huge_fully_sent: bool | None = None


async def _read_request(reader: asyncio.StreamReader) -> Seen:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(method, path, headers, body)


def _response(status: str, extra: str = "", body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    return head.encode() + body


@contextlib.asynccontextmanager
async def receiver(tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    handlers: set[asyncio.Task[Any]] = set()
    state = Receiver(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            seen = await _read_request(reader)
            state.seen.append(seen)
            state.hits[seen.path] += 1
            route = seen.path.split("?", 1)[0]
            if route == "/ok":
                writer.write(_response("200 OK", body=b"thanks"))
            elif route == "/fail":
                writer.write(_response("500 Internal Server Error", body=b"secret stack trace"))
            elif route == "/redirect":
                location = f"http://127.0.0.1:{state.port}/followed"
                writer.write(_response("302 Found", f"Location: {location}\r\n"))
            elif route == "/slow":
                await asyncio.sleep(10)
                writer.write(_response("200 OK"))
            elif route == "/huge":
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n"
                writer.write(head.encode())
                chunk = b"x" * 65536
                state.huge_fully_sent = False
                for _ in range(HUGE // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
                state.huge_fully_sent = True
            else:
                writer.write(_response("404 Not Found"))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.wait_for(server.wait_closed(), timeout=5)


async def _target(url: str) -> Target:
    return await resolve_target(url, allow_loopback=True)


async def test_200_is_ok_and_receiver_sees_host_and_exact_body() -> None:
    async with receiver() as rx:
        target = await _target(f"http://localhost:{rx.port}/ok?a=1")
        attempt = await asyncio.wait_for(send(target, BODY, HEADERS, timeout=5), 10)
    assert attempt == Attempt(status_code=200, error=None, duration_ms=attempt.duration_ms)
    assert attempt.ok
    assert rx.hits == Counter({"/ok?a=1": 1})
    seen = rx.seen[0]
    assert seen.method == "POST"
    assert seen.body == BODY
    assert seen.headers["host"] == f"localhost:{rx.port}"
    assert seen.headers["x-webhook-id"] == "wh_1"
    assert seen.headers["content-type"] == "application/json"


async def test_500_is_not_ok() -> None:
    async with receiver() as rx:
        target = await _target(f"http://127.0.0.1:{rx.port}/fail")
        attempt = await asyncio.wait_for(send(target, BODY, HEADERS, timeout=5), 10)
    assert attempt.status_code == 500
    assert not attempt.ok
    assert attempt.error == "HTTP 500"
    assert "stack trace" not in repr(attempt)


@pytest.mark.parametrize("follow_in_client", [False, True])
async def test_redirect_is_a_failure_and_not_followed(follow_in_client: bool) -> None:
    async with receiver() as rx:
        target = await _target(f"http://127.0.0.1:{rx.port}/redirect")
        async with httpx.AsyncClient(follow_redirects=follow_in_client, trust_env=False) as client:
            attempt = await asyncio.wait_for(
                send(target, BODY, HEADERS, timeout=5, client=client), 10
            )
    assert attempt.status_code == 302
    assert not attempt.ok
    assert attempt.error == "redirect not followed (3xx)"
    assert rx.hits == Counter({"/redirect": 1})


async def test_slow_receiver_times_out() -> None:
    async with receiver() as rx:
        target = await _target(f"http://127.0.0.1:{rx.port}/slow")
        started = time.monotonic()
        attempt = await asyncio.wait_for(send(target, BODY, HEADERS, timeout=0.5), 10)
        elapsed = time.monotonic() - started
    assert attempt.status_code is None
    assert attempt.error is not None
    assert "timeout" in attempt.error
    assert not attempt.ok
    assert elapsed < 1.5
    assert 400 <= attempt.duration_ms < 1500


async def test_connection_refused_is_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = await _target(f"http://127.0.0.1:{port}/ok")
    attempt = await asyncio.wait_for(send(target, BODY, HEADERS, timeout=5), 10)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("connection failed")
    assert not attempt.ok


async def test_huge_response_body_is_not_kept() -> None:
    async with receiver() as rx:
        target = await _target(f"http://127.0.0.1:{rx.port}/huge")
        attempt = await asyncio.wait_for(send(target, BODY, HEADERS, timeout=10), 20)
        await asyncio.sleep(0.2)  # let the server notice the closed connection
    assert attempt.ok
    assert attempt.status_code == 200
    assert set(vars(attempt)) == {"status_code", "error", "duration_ms"}
    assert rx.huge_fully_sent is False, "the sender read the whole 32 MiB body"


def _self_signed(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    return server_ctx, client_ctx


async def _fake_dns(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if host != name:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


async def test_https_connects_to_checked_address_with_sni_of_real_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path, "hooks.receiver.test")
    await _fake_dns(monkeypatch, "hooks.receiver.test", "127.0.0.1")
    async with receiver(tls=server_ctx) as rx:
        target = await _target(f"https://hooks.receiver.test:{rx.port}/ok")
        # The name is never resolved again by the sender: DNS now points elsewhere.
        await _fake_dns(monkeypatch, "hooks.receiver.test", "10.0.0.5")
        async with httpx.AsyncClient(
            verify=client_ctx, follow_redirects=False, trust_env=False
        ) as client:
            attempt = await asyncio.wait_for(
                send(target, BODY, HEADERS, timeout=5, client=client), 10
            )
            # Without the real name as SNI/hostname the certificate check fails.
            wrong = Target(
                url=target.url,
                scheme="https",
                host="other.receiver.test",
                port=target.port,
                addresses=target.addresses,
            )
            refused = await asyncio.wait_for(
                send(wrong, BODY, HEADERS, timeout=5, client=client), 10
            )
    assert attempt.ok, attempt
    assert rx.seen[0].headers["host"] == f"hooks.receiver.test:{rx.port}"
    assert rx.seen[0].body == BODY
    assert refused.status_code is None
    assert refused.error is not None
    assert "certificate" in refused.error.lower() or "ssl" in refused.error.lower()

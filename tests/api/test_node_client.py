"""A real server on loopback answering the seed documents' Node.js client (examples/balance.mjs)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path

import pytest
import uvicorn

from esimgate.app import create_app
from esimgate.clock import SystemClock
from esimgate.runtime import Runtime
from tests.support import Credentials

EXAMPLE = Path(__file__).parents[2] / "examples" / "balance.mjs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is required for the wire-compatibility test (it is on every CI machine)")
    return path


async def test_node_client_reads_balance(runtime: Runtime, creds: Credentials, node: str) -> None:
    runtime.clock = SystemClock()  # the Node client signs with its own wall clock
    port = _free_port()
    app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(100):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        process = await asyncio.create_subprocess_exec(
            node,
            str(EXAMPLE),
            env={
                "ESIMGATE_URL": f"http://127.0.0.1:{port}",
                "ACCESS_CODE": creds.access_code,
                "SECRET_KEY": creds.secret_key,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
    assert process.returncode == 0, stderr.decode() + stdout.decode()
    result = json.loads(stdout)
    assert result == {
        "status": 200,
        "body": {"success": True, "data": {"balance": 1500.0, "currency": "USD"}},
    }

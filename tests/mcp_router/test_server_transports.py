"""`mcp-router serve` as a real subprocess: over stdio (the console script) and over streamable HTTP on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from mcp import Client, StdioServerParameters

from mcp_router.codeindex import IndexStatus, SearchResult

pytestmark = pytest.mark.anyio

from tests.conftest import console_script  # noqa: E402

MODES = ("auto", "legacy")


def serve_command() -> list[str]:
    """The installed console script, as a host would run it; ``python -m mcp_router`` when it is not installed."""
    script = console_script()
    return [script] if script else [sys.executable, "-m", "mcp_router"]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", MODES)
async def test_stdio_console_script(indexed_repo: Path, mode: str) -> None:
    command, *prefix = serve_command()
    params = StdioServerParameters(command=command, args=[*prefix, "serve", "--root", str(indexed_repo), "--no-watch"],
                                   env=server_env(), cwd="/")
    updates: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with Client(params, mode=mode, read_timeout_seconds=120) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        # Called right after start-up, while the model may still be loading in the background: it waits, not fails.
        result = await client.call_tool("search_code", {"query": "parse_duration", "k": 2},
                                        progress_callback=on_progress)
        status = await client.call_tool("index_status", {})
        bad = await client.call_tool("reindex", {"path": "/"})
    assert {"search_code", "index_status", "reindex"} <= tools
    assert not result.is_error, result.content
    assert SearchResult.model_validate(result.structured_content).results[0].symbol == "parse_duration"
    assert all("loading the embedding model" in (m or "") for m in updates)
    assert IndexStatus.model_validate(status.structured_content).root == str(indexed_repo)
    assert bad.is_error and "is outside the repository" in bad.content[0].text


async def test_stdio_root_from_claude_project_dir(indexed_repo: Path) -> None:
    """Without --root, the server serves $CLAUDE_PROJECT_DIR (Claude Code sets it), not its working directory."""
    command, *prefix = serve_command()
    params = StdioServerParameters(command=command, args=[*prefix, "serve", "--no-watch"],
                                   env=server_env(CLAUDE_PROJECT_DIR=str(indexed_repo)), cwd="/")
    async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
        status = IndexStatus.model_validate((await client.call_tool("index_status", {})).structured_content)
    assert status.root == str(indexed_repo) and status.indexed


def test_stdout_carries_only_protocol_messages(indexed_repo: Path) -> None:
    """A raw initialize + tools/list exchange: every stdout line is JSON-RPC; logs go to stderr."""
    import json

    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "reindex", "arguments": {"path": "/"}}},
    ]
    proc = subprocess.Popen([*serve_command(), "--debug", "serve", "--root", str(indexed_repo), "--no-watch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=server_env())
    try:
        answers: dict[int, dict] = {}
        assert proc.stdin is not None and proc.stdout is not None
        for msg in lines:
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
            if "id" in msg:
                while msg["id"] not in answers:
                    line = proc.stdout.readline()
                    assert line, "server closed stdout"
                    reply = json.loads(line)  # anything that is not JSON here would corrupt the protocol stream
                    assert reply.get("jsonrpc") == "2.0"
                    if "id" in reply:
                        answers[reply["id"]] = reply
        rest, err = proc.communicate(timeout=60)  # closes stdin: the server must then exit by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in rest.splitlines():
        assert json.loads(line).get("jsonrpc") == "2.0"
    assert answers[1]["result"]["serverInfo"]["name"] == "mcp-router"
    assert "search_code" in {t["name"] for t in answers[2]["result"]["tools"]}
    assert answers[3]["result"]["isError"] is True
    assert proc.returncode == 0
    assert "DEBUG" in err  # --debug logging is on, and it went to stderr


@pytest.fixture(scope="module")
def http_server(indexed_repo: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([*serve_command(), "serve", "--root", str(indexed_repo), "--no-watch",
                             "--http", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=server_env())
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"mcp-router serve --http exited with {proc.returncode}: {err.decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mcp-router serve --http did not listen on port {port} within 120 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("mode", MODES)
async def test_streamable_http(http_server: str, indexed_repo: Path, mode: str) -> None:
    updates: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with Client(http_server, mode=mode, read_timeout_seconds=120) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool("search_code", {"query": "parse_duration", "k": 2},
                                        progress_callback=on_progress)
        again = await client.call_tool("reindex", {}, progress_callback=on_progress)
        bad = await client.call_tool("search_code", {"query": "x", "k": 0})
        resource = await client.read_resource("mcp-router://index/status")
    assert tools["search_code"].output_schema is not None
    assert SearchResult.model_validate(result.structured_content).results[0].path == "src/sample.py"
    assert not again.is_error and again.structured_content["files_indexed"] == 0
    assert "done" in updates  # reindex progress arrived over HTTP
    assert bad.is_error and "bad arguments for search_code: `k`" in bad.content[0].text
    assert IndexStatus.model_validate_json(resource.contents[0].text).root == str(indexed_repo)

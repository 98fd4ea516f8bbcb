"""End-to-end: `mcp-router serve` driven by MCP clients nobody here wrote (npm packages).

- the MCP Inspector CLI: `tools/list`, then `tools/call search_code` (and an error path), output checked as JSON;
- Claude Code's CLI: `claude mcp add` into a throw-away HOME, then `claude mcp list` must show the server connected.

The npm packages are installed once into a cache folder outside the repository (``$MCP_ROUTER_E2E_NODE_DIR``, default
``~/.cache/mcp-router-e2e/node``) and reused. These tests need node + npm: without them they FAIL, on purpose (CI
machines have node 20 + npm; a silently skipped end-to-end test proves nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NPM_PACKAGES = ("@modelcontextprotocol/inspector@0.15.0", "@anthropic-ai/claude-code@2.1.197")
NODE_DIR = Path(os.environ.get("MCP_ROUTER_E2E_NODE_DIR", Path.home() / ".cache" / "mcp-router-e2e" / "node"))
SERVER_NAME = "mcp-router-e2e"


@pytest.fixture(scope="session")
def node_dir() -> Path:
    """The cache folder with the two npm packages installed (one-off `npm install`, about a minute)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are required for the end-to-end client tests (install Node.js 20+ with npm); "
                    "they are not skipped on purpose")
    bins = NODE_DIR / "node_modules" / ".bin"
    if not ((bins / "mcp-inspector").exists() and (bins / "claude").exists()):
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        if not (NODE_DIR / "package.json").exists():
            (NODE_DIR / "package.json").write_text('{"private": true}\n')
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
                              cwd=NODE_DIR, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"npm install {' '.join(NPM_PACKAGES)} failed in {NODE_DIR}:\n{proc.stderr[-3000:]}")
    return NODE_DIR


@pytest.fixture(scope="session")
def mcp_router_script() -> str:
    """The installed console script, by absolute path, as a user registers it in a host."""
    from tests.conftest import console_script

    script = console_script()
    if script is None:
        pytest.fail("the `mcp-router` console script is not installed: `pip install -e .` in the test environment")
    return os.path.abspath(script)


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env.update(extra)
    return env


def inspector(node_dir: Path, server: list[str], *args: str) -> dict:
    proc = subprocess.run(["npx", "--no-install", "@modelcontextprotocol/inspector", "--cli", *server, *args],
                          cwd=node_dir, capture_output=True, text=True, timeout=180, env=client_env())
    assert proc.returncode == 0, f"inspector exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def test_inspector_lists_the_tools(node_dir: Path, mcp_router_script: str, indexed_repo: Path) -> None:
    listing = inspector(node_dir, [mcp_router_script, "serve", "--root", str(indexed_repo), "--no-watch"],
                        "--method", "tools/list")
    tools = {t["name"]: t for t in listing["tools"]}
    assert {"search_code", "index_status", "reindex"} <= tools.keys()
    assert tools["search_code"]["annotations"]["readOnlyHint"] is True
    assert tools["reindex"]["annotations"]["readOnlyHint"] is False
    assert "query" in tools["search_code"]["inputSchema"]["required"]
    assert "results" in tools["search_code"]["outputSchema"]["properties"]
    assert all(len(t["description"].encode()) < 2048 for t in tools.values())


def test_inspector_calls_search_code(node_dir: Path, mcp_router_script: str, indexed_repo: Path) -> None:
    server = [mcp_router_script, "serve", "--root", str(indexed_repo)]  # default: with the in-server watcher
    result = inspector(node_dir, server, "--method", "tools/call", "--tool-name", "search_code",
                       "--tool-arg", "query=parse_duration", "--tool-arg", "k=3")
    assert result.get("isError") is not True, result
    top = result["structuredContent"]["results"][0]
    assert (top["path"], top["symbol"]) == ("src/sample.py", "parse_duration")
    assert "def parse_duration" in top["code"]
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]

    error = inspector(node_dir, server, "--method", "tools/call", "--tool-name", "reindex", "--tool-arg", "path=/etc")
    assert error["isError"] is True
    assert "is outside the repository" in error["content"][0]["text"]


def test_claude_code_connects(node_dir: Path, mcp_router_script: str, indexed_repo: Path, tmp_path: Path) -> None:
    claude = str(node_dir / "node_modules" / ".bin" / "claude")
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = client_env(HOME=str(home), DISABLE_AUTOUPDATER="1")
    add = subprocess.run([claude, "mcp", "add", SERVER_NAME, "--", mcp_router_script, "serve", "--root",
                          str(indexed_repo)], cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert add.returncode == 0, add.stderr
    listed = subprocess.run([claude, "mcp", "list"], cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert listed.returncode == 0, listed.stderr
    line = next((ln for ln in listed.stdout.splitlines() if ln.startswith(f"{SERVER_NAME}:")), None)
    assert line is not None, listed.stdout
    assert "Connected" in line and "Failed" not in line, listed.stdout


def test_claude_code_project_mcp_json(node_dir: Path, mcp_router_script: str, indexed_repo: Path,
                                      tmp_path: Path) -> None:
    """The documented project `.mcp.json` (no --root: Claude Code runs the server for its project)."""
    claude = str(node_dir / "node_modules" / ".bin" / "claude")
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    shutil.copytree(indexed_repo, project, symlinks=True)
    (project / ".mcp.json").write_text(json.dumps(
        {"mcpServers": {"mcp-router": {"type": "stdio", "command": mcp_router_script, "args": ["serve"]}}}))
    # Project servers wait for the user's approval in an interactive `claude` session; record that approval.
    (home / ".claude.json").write_text(json.dumps({"projects": {str(project): {
        "enabledMcpjsonServers": ["mcp-router"], "hasTrustDialogAccepted": True}}}))
    env = client_env(HOME=str(home), DISABLE_AUTOUPDATER="1")
    listed = subprocess.run([claude, "mcp", "list"], cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert listed.returncode == 0, listed.stderr
    line = next((ln for ln in listed.stdout.splitlines() if ln.startswith("mcp-router:")), None)
    assert line is not None and "Connected" in line, listed.stdout

"""Capture the real `tools/list` output of public MCP servers into `fixtures/tool_catalogs/<server>.json`.

The servers are installed OUTSIDE the repository (they are not dependencies of mcp-router):

    mkdir -p /tmp/mcps && cd /tmp/mcps && npm init -y && npm install \
        @modelcontextprotocol/server-filesystem @modelcontextprotocol/server-memory \
        @modelcontextprotocol/server-everything @modelcontextprotocol/server-sequential-thinking \
        @modelcontextprotocol/server-github @modelcontextprotocol/server-gitlab @playwright/mcp \
        @modelcontextprotocol/server-postgres @modelcontextprotocol/server-slack \
        @upstash/context7-mcp
    python -m venv /tmp/mcps/venv && /tmp/mcps/venv/bin/pip install mcp-server-git mcp-server-fetch mcp-server-time
    python benchmarks/capture_tool_catalogs.py --npm-dir /tmp/mcps --venv /tmp/mcps/venv

Each server is started over stdio, asked for `tools/list` (all pages) with the mcp SDK client, and its listing is
written exactly as the server sent it (camelCase wire names), so the fixtures are real catalogues, not hand-written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parents[1]


def server_commands(npm_dir: Path, venv: Path, scratch: Path) -> dict[str, StdioServerParameters]:
    """The servers to capture: name -> how to start it over stdio."""
    nbin = npm_dir / "node_modules" / ".bin"
    vbin = venv / "bin"
    repo_dir = scratch / "repo"
    repo_dir.mkdir(parents=True, exist_ok=True)
    return {
        "filesystem": StdioServerParameters(command=str(nbin / "mcp-server-filesystem"), args=[str(scratch)]),
        "memory": StdioServerParameters(command=str(nbin / "mcp-server-memory"),
                                        env={"MEMORY_FILE_PATH": str(scratch / "memory.jsonl")}),
        "everything": StdioServerParameters(command=str(nbin / "mcp-server-everything"), args=["stdio"]),
        "sequential-thinking": StdioServerParameters(command=str(nbin / "mcp-server-sequential-thinking")),
        "git": StdioServerParameters(command=str(vbin / "mcp-server-git"), args=["--repository", str(repo_dir)]),
        "fetch": StdioServerParameters(command=str(vbin / "mcp-server-fetch")),
        "time": StdioServerParameters(command=str(vbin / "mcp-server-time"), args=["--local-timezone", "UTC"]),
        # Listing tools needs no credentials; the placeholder tokens are never used to call anything.
        "github": StdioServerParameters(command=str(nbin / "mcp-server-github"),
                                        env={"GITHUB_PERSONAL_ACCESS_TOKEN": "placeholder"}),
        "gitlab": StdioServerParameters(command=str(nbin / "mcp-server-gitlab"),
                                        env={"GITLAB_PERSONAL_ACCESS_TOKEN": "placeholder"}),
        "playwright": StdioServerParameters(command=str(nbin / "playwright-mcp"), args=["--headless"]),
        "postgres": StdioServerParameters(command=str(nbin / "mcp-server-postgres"),
                                          args=["postgresql://localhost/placeholder"]),
        "slack": StdioServerParameters(command=str(nbin / "mcp-server-slack"),
                                       env={"SLACK_BOT_TOKEN": "placeholder", "SLACK_TEAM_ID": "T0"}),
        "context7": StdioServerParameters(command=str(nbin / "context7-mcp")),
    }


async def capture(params: StdioServerParameters) -> dict[str, Any]:
    """The full `tools/list` result of one server (pages concatenated)."""
    tools: list[dict[str, Any]] = []
    async with Client(params, mode="legacy", read_timeout_seconds=60) as client:
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools += [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
    return {"tools": tools}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npm-dir", type=Path, required=True, help="folder whose node_modules holds the npm servers")
    ap.add_argument("--venv", type=Path, required=True, help="venv with mcp-server-git/-fetch/-time installed")
    ap.add_argument("--out", type=Path, default=REPO / "fixtures" / "tool_catalogs")
    ap.add_argument("--only", nargs="*", help="capture only these servers")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        import subprocess

        for name, params in server_commands(args.npm_dir, args.venv, scratch).items():
            if args.only and name not in args.only:
                continue
            if name == "git":
                subprocess.run(["git", "init", "-q", str(scratch / "repo")], check=True)
            try:
                listing = anyio.run(capture, params)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other servers
                print(f"{name}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                failed += 1
                continue
            path = args.out / f"{name}.json"
            path.write_text(json.dumps(listing, indent=2, ensure_ascii=False) + "\n")
            print(f"{name}: {len(listing['tools'])} tools -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

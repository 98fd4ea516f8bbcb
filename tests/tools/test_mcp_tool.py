"""The `filter_tools` MCP tool, in both protocol eras, against a store indexed like the CLI does."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from mcp_router.app import App
from mcp_router.server import build_server
from tools.index import open_tool_index

CATALOGS = Path(__file__).resolve().parents[2] / "fixtures" / "tool_catalogs"


@pytest.fixture(scope="module")
def indexed_root(tmp_path_factory, encoder) -> Path:
    root = tmp_path_factory.mktemp("repo")
    (root / ".git").mkdir()
    app = App(root)
    open_tool_index(app.db(), app.encoder).index_catalogs([CATALOGS / "git.json", CATALOGS / "filesystem.json"])
    return root


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_filter_tools_returns_ranked_definitions(indexed_root: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_root)), mode=mode) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert "filter_tools" in listed
        res = await client.call_tool("filter_tools", {"query": "create a new branch called feature/x", "k": 3})
        assert not res.is_error
        data = res.structured_content
        assert not data["no_tool_needed"] and len(data["tools"]) == 3
        assert data["tools"][0]["server"] == "git" and "branch" in data["tools"][0]["name"]
        assert data["tools"][0]["definition"]["inputSchema"]["type"] == "object"
        assert data["catalogue_tools"] == 26 and data["tokens_saved"] == data["catalogue_tokens"] - data["returned_tokens"]

        chat = await client.call_tool("filter_tools", {"query": "thank you, that's all",
                                                       "context": "we discussed decorators"})
        assert not chat.is_error and chat.structured_content["no_tool_needed"]
        assert chat.structured_content["tools"] == []


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_filter_tools_without_an_index_says_what_to_do(tmp_path: Path, mode: str, encoder) -> None:
    (tmp_path / ".git").mkdir()
    async with Client(build_server(App(tmp_path)), mode=mode) as client:
        res = await client.call_tool("filter_tools", {"query": "read a file"})
        assert res.is_error
        assert "mcp-router tools index" in res.content[0].text

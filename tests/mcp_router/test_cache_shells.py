"""The cache's thin shells: `mcp-router cache ...` through click's CliRunner, and the MCP tools over both eras."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mcp import Client

from mcp_router.app import App
from mcp_router.cache import AnswerCache
from mcp_router.cli import main
from mcp_router.server import build_server


def test_cli_stats_invalidate_clear(repo: Path, encoder) -> None:  # noqa: ANN001
    cache = AnswerCache(App(repo), encoder=encoder)
    cache.store("what does parse_args in utils.py return", "argv[1:]", files=["utils.py"])
    cache.store("what does retry in client.py return", "n * 2", files=["client.py"])
    cache.lookup("what does parse_args in utils.py return")
    cache.lookup("how do I configure nginx as a reverse proxy")

    runner = CliRunner()
    res = runner.invoke(main, ["--root", str(repo), "cache", "stats", "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert stats["entries"] == 2 and stats["hits"] == 1 and stats["lookups"] == 2
    assert stats["hit_rate"] == 0.5 and stats["tokens_saved"] > 0

    res = runner.invoke(main, ["--root", str(repo), "cache", "stats"])
    assert res.exit_code == 0 and "hit rate" in res.output and "50.0%" in res.output

    res = runner.invoke(main, ["--root", str(repo), "cache", "invalidate", "utils.py", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["invalidated"] == 1

    res = runner.invoke(main, ["--root", str(repo), "cache", "invalidate", "../outside.py"])
    assert res.exit_code == 1 and "outside the repository" in res.output

    res = runner.invoke(main, ["--root", str(repo), "cache", "clear"])
    assert res.exit_code == 0 and "deleted 1 cached answer" in res.output
    assert AnswerCache(App(repo), encoder=encoder).store_.count() == 0


def _structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_store_then_lookup(repo: Path, mode: str, encoder) -> None:  # noqa: ANN001
    server = build_server(App(repo), warm=False)
    async with Client(server, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"cache_lookup", "cache_store"} <= tools.keys()
        for name in ("cache_lookup", "cache_store"):
            assert len(tools[name].description.encode()) < 2048 and "use" in tools[name].description.lower()

        miss = _structured(await client.call_tool("cache_lookup", {"query": "what does parse_args return"}))
        assert miss["hit"] is False and miss["reason"] == "empty"

        stored = _structured(await client.call_tool("cache_store", {
            "query": "what does parse_args in utils.py return", "answer": "argv without the program name",
            "files": ["utils.py"]}))
        assert stored["stored"] is True and stored["depends_on"] == ["utils.py"]

        hit = _structured(await client.call_tool("cache_lookup",
                                                 {"query": "what is returned by parse_args in utils.py"}))
        assert hit["hit"] is True and hit["answer"] == "argv without the program name"
        assert hit["depends_on"] == ["utils.py"]

        err = _structured(await client.call_tool("cache_store", {
            "query": "how do I fix the build", "answer": "Traceback (most recent call last):\n  boom"}))
        assert err["stored"] is False and "error" in err["message"]

        (repo / "utils.py").write_text("def parse_args(argv):\n    return argv\n")
        stale = _structured(await client.call_tool("cache_lookup",
                                                   {"query": "what does parse_args in utils.py return"}))
        assert stale["hit"] is False and stale["reason"] == "stale" and stale["stale_file"] == "utils.py"

        bad = await client.call_tool("cache_store", {"query": "q", "answer": "a", "files": ["/etc/passwd"]})
        assert bad.is_error
        text = "\n".join(block.text for block in bad.content)
        assert "outside the repository" in text and "Traceback" not in text

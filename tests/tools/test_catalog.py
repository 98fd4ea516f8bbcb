"""Catalogue parsing: MCP and OpenAI formats, server lists, malformed and duplicate definitions (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.errors import UserError
from tools.catalog import (
    embed_text,
    estimate_tokens,
    is_stale,
    parse_servers,
    parse_tools,
    read_catalog_file,
    split_identifier,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tool_catalogs"


def test_real_mcp_listing_is_parsed_with_definitions_unchanged() -> None:
    raw = json.loads((FIXTURES / "git.json").read_text())
    load = read_catalog_file(FIXTURES / "git.json")
    assert not load.problems
    assert [t.name for t in load.tools] == [t["name"] for t in raw["tools"]]
    commit = next(t for t in load.tools if t.name == "git_commit")
    assert commit.server == "git" and commit.key == "git/git_commit"
    assert commit.definition == next(t for t in raw["tools"] if t["name"] == "git_commit")
    assert "message" in dict(commit.param_items())
    assert load.complete_servers == {"git"}


def test_openai_function_calling_format() -> None:
    data = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                          "parameters": {"type": "object", "properties": {
                                              "city": {"type": "string", "description": "City name"}}}}},
        {"name": "legacy_fn", "description": "old-style functions entry", "parameters": {"type": "object"}},
    ]
    load = parse_tools(data, "openai")
    assert not load.problems
    weather, legacy = load.tools
    assert weather.fmt == "openai" and weather.definition is data[0]
    assert weather.param_items() == [("city", "City name")]
    assert legacy.name == "legacy_fn"
    assert "city: City name" in embed_text(weather)


def test_malformed_definitions_are_reported_and_the_rest_kept() -> None:
    data = {"tools": [
        {"name": "ok_tool", "description": "fine", "inputSchema": {"type": "object", "properties": {}}},
        {"description": "no name"},
        "not an object",
        {"name": "bad schema", "inputSchema": {"type": "object"}},
        {"name": "bad_props", "inputSchema": {"type": "object", "properties": [1, 2]}},
        {"name": "bad_desc", "description": 42},
        {"name": "ok_tool", "description": "a duplicate"},
    ]}
    load = parse_tools(data, "srv", "cat.json")
    assert [t.name for t in load.tools] == ["ok_tool"]
    assert load.tools[0].description == "fine"
    assert len(load.problems) == 6
    reasons = " ".join(str(p) for p in load.problems)
    assert "missing a string `name`" in reasons and "duplicate tool name 'ok_tool'" in reasons
    assert all(p.source == "cat.json" for p in load.problems)


def test_same_name_on_two_servers_gives_two_tools() -> None:
    listing = {"github": {"tools": [{"name": "create_issue", "description": "GitHub issue"}]},
               "gitlab": {"tools": [{"name": "create_issue", "description": "GitLab issue"}]}}
    load = parse_tools(listing)
    assert sorted(t.key for t in load.tools) == ["github/create_issue", "gitlab/create_issue"]
    assert load.tools[0].definition_hash != load.tools[1].definition_hash


def test_server_catalogue_accepts_stdio_and_http_and_reports_bad_entries() -> None:
    load = parse_servers({"mcpServers": {
        "toy": {"command": "python", "args": ["toy.py"], "env": {"A": "1"}},
        "remote": {"url": "http://127.0.0.1:9/mcp"},
        "broken": {"args": ["x"]},
        "weird": "python toy.py",
    }}, "servers.json")
    assert [s.name for s in load.servers] == ["toy", "remote"]
    assert load.servers[0].env == (("A", "1"),) and load.servers[1].url.endswith("/mcp")
    assert len(load.problems) == 2


def test_unreadable_catalogue_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_catalog_file(bad)
    with pytest.raises(UserError, match="does not exist"):
        read_catalog_file(tmp_path / "missing.json")


def test_text_helpers() -> None:
    assert split_identifier("getUserByID") == ["get", "user", "by", "id"]
    assert split_identifier("git_diff-staged.v2") == ["git", "diff", "staged", "v2"]
    assert estimate_tokens({"name": "x" * 400}) == len('{"name":"' + "x" * 400 + '"}') // 4
    assert is_stale(0.0, 10, now=10.0) and not is_stale(5.0, 10, now=10.0) and not is_stale(0.0, 0, now=1e9)

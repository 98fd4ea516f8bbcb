"""The tool index with the real encoder and a real LanceDB store: incremental sync, filtering, live servers, refresh."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import lancedb
import pytest

from indexer.errors import UserError
from tools.catalog import parse_tools, read_catalog_file
from tools.index import FilterSettings, ToolIndex

REPO = Path(__file__).resolve().parents[2]
CATALOGS = REPO / "fixtures" / "tool_catalogs"
TOY = REPO / "fixtures" / "mcp_servers" / "toy_server.py"
SMALL = ["git.json", "time.json", "fetch.json", "memory.json"]


@pytest.fixture(scope="module")
def built_store(tmp_path_factory, encoder) -> Path:
    """One store with four real catalogues, built once; tests that change it work on a copy."""
    store = tmp_path_factory.mktemp("tools-store")
    index = ToolIndex(lancedb.connect(str(store)), encoder)
    report = index.index_catalogs([CATALOGS / n for n in SMALL])
    assert report.added == 24 and report.embedded == 24 and not report.problems
    return store


@pytest.fixture
def index(built_store: Path, tmp_path: Path, encoder) -> ToolIndex:
    store = tmp_path / "store"
    shutil.copytree(built_store, store)
    return ToolIndex(lancedb.connect(str(store)), encoder)


def test_filter_ranks_the_right_tools_with_definitions_and_tokens(index: ToolIndex) -> None:
    resp = index.filter("commit my staged changes with a message", k=3)
    assert not resp.no_tool_needed
    assert "git/git_commit" in [t.key for t in resp.tools]
    raw = json.loads((CATALOGS / "git.json").read_text())["tools"]
    commit = next(t for t in resp.tools if t.name == "git_commit")
    assert commit.definition == next(t for t in raw if t["name"] == "git_commit")
    assert commit.reason and commit.score >= resp.min_score
    assert resp.catalogue_tools == 24 and 0 < resp.returned_tokens < resp.catalogue_tokens
    assert resp.tokens_saved == resp.catalogue_tokens - resp.returned_tokens
    top = index.filter("what time is it in Tokyo", k=2)
    assert {t.key for t in top.tools} == {"time/get_current_time", "time/convert_time"}


def test_no_tool_needed_for_a_chat_message(index: ToolIndex) -> None:
    resp = index.filter("thanks, that explanation of decorators was great", k=5)
    assert resp.no_tool_needed and resp.tools == [] and resp.notes
    assert resp.returned_tokens == 0


def test_context_sharpens_an_ambiguous_follow_up(index: ToolIndex) -> None:
    plain = index.filter("and the other one too", k=1, min_score=0)
    ctx = index.filter("and the other one too", k=1, min_score=0,
                       context="previous tool call: git_diff_staged on the repository; now show unstaged changes")
    assert ctx.tools[0].server == "git"
    assert ctx.best_score > plain.best_score


def test_settings_pin_allow_deny(index: ToolIndex) -> None:
    index.settings = FilterSettings(pinned=("time/get_current_time",), deny=("git/git_reset",))
    resp = index.filter("unstage and reset everything I staged", k=3)
    keys = [t.key for t in resp.tools]
    assert keys[0] == "time/get_current_time" and resp.tools[0].pinned
    assert "git/git_reset" not in keys
    only_memory = index.filter("unstage everything", k=3, allow=["memory/*"], min_score=0)
    assert {t.server for t in only_memory.tools} == {"memory"}


def test_only_changed_tools_are_re_embedded_and_vanished_ones_removed(index: ToolIndex) -> None:
    again = index.index_catalogs([CATALOGS / "git.json"])
    assert (again.embedded, again.unchanged, again.removed) == (0, 12, 0)
    raw = json.loads((CATALOGS / "git.json").read_text())
    raw["tools"][0]["description"] = "Show the working tree status, including untracked files"
    del raw["tools"][-1]
    changed = index.sync(parse_tools(raw, "git"))
    assert (changed.updated, changed.embedded, changed.removed, changed.unchanged) == (1, 1, 1, 10)
    keys = {t.key for t in index.list_tools()}
    assert "git/git_branch" not in keys and "time/convert_time" in keys  # other servers untouched
    assert len(keys) == 23


def test_duplicate_names_across_servers_are_both_indexed(index: ToolIndex) -> None:
    load = read_catalog_file(CATALOGS / "gitlab.json")
    load.extend(read_catalog_file(CATALOGS / "github.json"))
    index.sync(load)
    keys = {t.key for t in index.list_tools()}
    assert {"github/create_issue", "gitlab/create_issue"} <= keys
    resp = index.filter("open a merge request on GitLab", k=3)
    assert resp.tools[0].key == "gitlab/create_merge_request"


def test_empty_index_and_empty_query_are_user_errors(tmp_path: Path, encoder) -> None:
    empty = ToolIndex(lancedb.connect(str(tmp_path / "empty")), encoder)
    with pytest.raises(UserError, match="no tools are indexed"):
        empty.filter("anything")
    with pytest.raises(UserError, match="query is empty"):
        empty.filter("  ")


def _servers_file(tmp_path: Path, tools_file: Path) -> Path:
    cat = tmp_path / "servers.json"
    cat.write_text(json.dumps({"mcpServers": {
        "toy": {"command": sys.executable, "args": [str(TOY)], "env": {"TOY_TOOLS_FILE": str(tools_file)}},
        "down": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]},
    }}))
    return cat


def test_live_stdio_server_is_listed_and_changes_are_refreshed(tmp_path: Path, encoder) -> None:
    tools_file = tmp_path / "toy_tools.json"
    tools_file.write_text(json.dumps([
        {"name": "convert_units", "description": "Convert a quantity between metric and imperial units."},
        {"name": "lookup_weather", "description": "Current weather and forecast for a city."},
    ]))
    index = ToolIndex(lancedb.connect(str(tmp_path / "store")), encoder, settings=FilterSettings(ttl_seconds=3600))
    report = index.index_catalogs([_servers_file(tmp_path, tools_file)], timeout=30)
    assert report.servers_fetched == ["toy"] and report.added == 2
    assert any("server down" in str(p) for p in report.problems)  # one broken server does not stop the others
    assert index.filter("convert 30 cm to inches", k=1, min_score=0).tools[0].key == "toy/convert_units"

    # The server's tool set changes: one description edited, one tool gone, one new.
    tools_file.write_text(json.dumps([
        {"name": "convert_units", "description": "Convert between metric and imperial units, and currencies."},
        {"name": "translate_text", "description": "Translate text between human languages."},
    ]))
    assert index.refresh().servers_fetched == []  # within the TTL nothing is re-listed
    stale = index.refresh(now=1e12, timeout=30)  # long after the TTL
    assert stale.servers_fetched == ["toy"]
    assert (stale.added, stale.updated, stale.removed) == (1, 1, 1)
    assert {t.key for t in index.list_tools()} == {"toy/convert_units", "toy/translate_text"}
    assert index.filter("translate this sentence into French", k=1, min_score=0).tools[0].key == "toy/translate_text"

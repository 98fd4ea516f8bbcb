"""`mcp-router tools ...` through click's CliRunner, on a real repository folder and store."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mcp_router.cli import main

CATALOGS = Path(__file__).resolve().parents[2] / "fixtures" / "tool_catalogs"


def test_index_filter_list_cycle(tmp_path: Path, encoder) -> None:
    (tmp_path / ".git").mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tools": [{"description": "no name"}, {"name": "ok", "description": "fine tool"}]}))
    runner = CliRunner()
    root = ["--root", str(tmp_path)]
    r = runner.invoke(main, [*root, "tools", "index", str(CATALOGS / "git.json"), str(CATALOGS / "time.json"),
                             str(bad), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["added"] == 15 and summary["tools_in_index"] == 15 and len(summary["skipped"]) == 1

    r = runner.invoke(main, [*root, "tools", "filter", "show the last commits in the log", "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout)
    assert answer["tools"][0]["name"] == "git_log" and len(answer["tools"]) == 2
    assert answer["tools"][0]["definition"]["name"] == "git_log" and answer["tokens_saved"] > 0

    r = runner.invoke(main, [*root, "tools", "filter", "show the last commits in the log"])
    assert r.exit_code == 0 and "git_log" in r.stdout and "tokens" in r.stdout

    r = runner.invoke(main, [*root, "tools", "filter", "thanks, bye!"])
    assert r.exit_code == 0 and "no tool needed" in r.stdout

    r = runner.invoke(main, [*root, "tools", "list", "--json"])
    assert r.exit_code == 0
    assert {(t["server"], t["name"]) for t in json.loads(r.stdout)} >= {("git", "git_log"), ("bad", "ok")}


def test_missing_catalogue_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    r = CliRunner().invoke(main, ["--root", str(tmp_path), "tools", "index", str(tmp_path / "nope.json")])
    assert r.exit_code == 1 and "does not exist" in r.output

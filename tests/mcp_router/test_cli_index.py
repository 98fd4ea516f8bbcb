"""The index/search/status commands through click's CliRunner, on a real repository."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mcp_router.cli import main


def test_index_search_status(sample_repo: Path, encoder) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["--root", str(sample_repo), "index"])
    assert res.exit_code == 0, res.output
    assert "chunks embedded" in res.output and "tree-sitter" in res.output and "python" in res.output

    res = runner.invoke(main, ["--root", str(sample_repo), "search", "parse_duration", "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["results"][0]["symbol"] == "parse_duration"
    assert data["results"][0]["path"] == "src/sample.py"

    res = runner.invoke(main, ["--root", str(sample_repo), "search", "parse_duration", "-k", "1"])
    assert res.exit_code == 0 and "src/sample.py" in res.output and "def parse_duration" in res.output

    res = runner.invoke(main, ["--root", str(sample_repo), "status", "--json"])
    st = json.loads(res.output)
    assert st["indexed"] and st["files"] >= 17 and st["chunks"] > 17 and st["pending_changes"] == 0

    (sample_repo / "src" / "new.py").write_text("x = 1\n")
    st = json.loads(runner.invoke(main, ["--root", str(sample_repo), "status", "--json"]).output)
    assert st["pending_changes"] == 1 and st["pending_files"] == ["src/new.py"]


def test_cli_root_discovery_from_subfolder(sample_repo: Path, encoder, monkeypatch) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--root", str(sample_repo), "index", "--json"]).exit_code == 0
    monkeypatch.chdir(sample_repo / "src")
    res = runner.invoke(main, ["search", "Session", "--json", "--no-refresh"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["results"]


def test_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / ".git").mkdir()
    res = runner.invoke(main, ["--root", str(tmp_path), "search", "anything"])
    assert res.exit_code == 1
    assert "error:" in res.output and "no code index" in res.output and "mcp-router index" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(main, ["--root", str(tmp_path / "missing"), "status"])
    assert res.exit_code != 0 and "Traceback" not in res.output


def test_model_mismatch_and_missing_model_are_one_line_errors(sample_repo: Path, encoder) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--root", str(sample_repo), "index", "--json"]).exit_code == 0
    res = runner.invoke(main, ["--root", str(sample_repo), "--model", str(sample_repo / "no-such-model"),
                               "search", "x"])
    assert res.exit_code == 1 and "index was built with model 'all-MiniLM-L6-v2'" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(main, ["--root", str(sample_repo), "--model", str(sample_repo / "no-such-model"),
                               "--index-dir", str(sample_repo / "other-index"), "index"])
    assert res.exit_code == 1 and "could not load" in res.output and "Traceback" not in res.output

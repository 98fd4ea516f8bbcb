"""Fixtures shared by the answer-cache tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny repository whose files cached answers depend on."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "utils.py").write_text("def parse_args(argv):\n    return argv[1:]\n")
    (root / "client.py").write_text("def retry(n):\n    return n * 2\n")
    (root / "src").mkdir()
    (root / "src" / "db.py").write_text("def connect():\n    pass\n")
    return root

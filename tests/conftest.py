"""Shared test fixtures: the real embedded encoder (loaded once), anyio on asyncio, sample repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

# Keep the ONNX export cache of the test run out of the user's home when CI asks for it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def encoder():
    """The real embedded model (all-MiniLM-L6-v2 via ONNX Runtime), shared by every test."""
    from indexer.encoder import get_encoder

    return get_encoder().load()


def make_git_repo(path: Path) -> Path:
    """A folder that `find_root` recognises as a repository (a real `git init`)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """A small real repository: every language fixture under src/, plus docs and config."""
    root = make_git_repo(tmp_path / "repo")
    shutil.copytree(FIXTURES / "languages", root / "src")
    return root

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


# A few languages are enough for the server tests, and keep the one-off index build to a few seconds on 2 cores.
INDEXED_SAMPLE_FILES = ("sample.py", "sample.go", "sample.ts", "sample.rs", "sample.md")


@pytest.fixture(scope="session")
def indexed_repo(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    """A small real repository (five language fixtures under src/) with a real index, built once per session.

    Shared: tests may read and search it, and reindex it only when nothing changed. Copy it to modify it.
    """
    from mcp_router import codeindex
    from mcp_router.app import App

    root = make_git_repo(tmp_path_factory.mktemp("indexed") / "repo")
    (root / "src").mkdir()
    for name in INDEXED_SAMPLE_FILES:
        shutil.copy2(FIXTURES / "languages" / name, root / "src" / name)
    codeindex.reindex(App(root))
    return root


def console_script() -> str | None:
    """The `mcp-router` script of the environment running the tests (next to its python), else the one on PATH."""
    import sys

    return shutil.which("mcp-router", path=str(Path(sys.executable).parent)) or shutil.which("mcp-router")

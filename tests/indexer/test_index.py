"""Incremental indexing into real LanceDB with the real model: change detection, vector reuse, ignore rules,
bad input, and a kill -9 in the middle of a run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.errors import UserError
from indexer.store import CHUNKS, CodeStore
from mcp_router import codeindex
from mcp_router.app import App
from tests.conftest import make_git_repo


def chunk_rows(app: App) -> list[dict]:
    return CodeStore.open(app.index_dir).table(CHUNKS).to_arrow().select(
        ["id", "path", "start_line", "end_line", "hash"]).to_pylist()


def assert_consistent(app: App) -> None:
    """Every indexed file has exactly its recorded chunks, none overlap, and no chunk belongs to a missing file."""
    store = CodeStore.open(app.index_dir)
    files = store.file_rows()
    rows = chunk_rows(app)
    by_path: dict[str, list[dict]] = {}
    for r in rows:
        by_path.setdefault(r["path"], []).append(r)
    assert set(by_path) <= set(files), f"orphan chunks: {set(by_path) - set(files)}"
    for path, rec in files.items():
        got = sorted(by_path.get(path, []), key=lambda r: r["start_line"])
        assert len(got) == rec["n_chunks"], path
        for a, b in zip(got, got[1:]):
            assert a["end_line"] < b["start_line"], f"overlapping chunks in {path}"
        assert (app.root / path).is_file()


def test_full_then_incremental(sample_repo: Path, encoder) -> None:
    app = App(sample_repo)
    first = codeindex.reindex(app)
    assert first.files_indexed == len(list((sample_repo / "src").iterdir()))
    assert first.chunks_embedded > 0 and first.chunks_reused == 0
    assert first.methods.get("ast", 0) >= 17, first.methods
    assert_consistent(app)

    # No change: nothing read, nothing embedded.
    again = codeindex.reindex(app)
    assert again.files_indexed == 0 and again.chunks_embedded == 0
    assert again.files_unchanged == first.files_indexed

    # Touch without changing content: re-hashed, not re-chunked.
    py = sample_repo / "src" / "sample.py"
    os.utime(py, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    touched = codeindex.reindex(app)
    assert touched.files_touched == 1 and touched.files_indexed == 0 and touched.chunks_embedded == 0
    assert codeindex.reindex(app).files_touched == 0  # the new mtime was recorded: no re-hash next time

    # Modify one function: only the changed chunk is embedded, the rest reuse stored vectors.
    text = py.read_text()
    py.write_text(text.replace("def is_secure(url: str) -> bool:", "def is_secure(url: str) -> bool:\n    # https only"))
    mod = codeindex.reindex(app)
    assert mod.files_indexed == 1
    assert 1 <= mod.chunks_embedded <= 2
    assert mod.chunks_reused >= 3
    assert_consistent(app)

    # Add a file.
    (sample_repo / "src" / "extra.py").write_text("def brand_new_helper(x):\n    return x + 41\n")
    add = codeindex.reindex(app)
    assert add.files_indexed == 1 and add.chunks_embedded == 1
    hits = codeindex.search_code(app, "brand_new_helper", refresh=False).results
    assert hits and hits[0].path == "src/extra.py"

    # Rename a directory: nothing re-embedded, old paths gone.
    shutil.move(sample_repo / "src", sample_repo / "lib")
    moved = codeindex.reindex(app)
    assert moved.files_deleted == first.files_indexed + 1
    assert moved.chunks_embedded == 0 and moved.chunks_reused > 0
    paths = {r["path"] for r in chunk_rows(app)}
    assert paths and all(p.startswith("lib/") for p in paths)
    assert_consistent(app)

    # Delete: gone from results.
    (sample_repo / "lib" / "extra.py").unlink()
    codeindex.reindex(app)
    hits = codeindex.search_code(app, "brand_new_helper", refresh=False).results
    assert all(h.path != "lib/extra.py" for h in hits)
    assert_consistent(app)


def test_ignore_rules_and_bad_files(tmp_path: Path, encoder) -> None:
    root = make_git_repo(tmp_path / "r")
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "pkg").mkdir()
    (root / "pkg" / ".gitignore").write_text("generated_*.py\n!generated_keep.py\n")
    (root / "pkg" / "core.py").write_text("def core():\n    return 1\n")
    (root / "pkg" / "generated_api.py").write_text("def generated():\n    return 2\n")
    (root / "pkg" / "generated_keep.py").write_text("def kept():\n    return 3\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("def built():\n    return 4\n")
    (root / "debug.log").write_text("log line\n")
    (root / ".env").write_text("API_KEY=sk-test-not-real\n")
    (root / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\nabc\n")
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (root / "blob.dat").write_bytes(bytes(range(256)) * 20)
    (root / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")  # binary despite the extension
    (root / "big.py").write_text("x = 1\n" * 200_000)
    (root / "latin1.py").write_bytes("# caf\xe9 menu\ndef menu():\n    return 'caf\xe9'\n".encode("latin-1"))

    app = App(root)
    stats = codeindex.reindex(app)
    indexed = set(CodeStore.open(app.index_dir).file_rows())
    assert indexed == {".gitignore", "pkg/.gitignore", "pkg/core.py", "pkg/generated_keep.py", "latin1.py"}
    assert stats.skipped["deny-list"] == 3
    assert stats.skipped["binary"] == 2
    assert stats.skipped["too large"] == 1
    assert stats.skipped["gitignored"] == 2  # debug.log, pkg/generated_api.py
    assert stats.skipped["ignored folder"] >= 1  # build/ (and .git/)
    assert stats.decode_replaced == 1
    # The index folder never indexes itself.
    assert not any(p.startswith(".mcp-router") for p in indexed)
    # Non-UTF-8 content is still searchable.
    hits = codeindex.search_code(app, "menu", refresh=False).results
    assert hits[0].path == "latin1.py" and "\ufffd" in hits[0].code


def test_user_globs_and_config(tmp_path: Path, encoder) -> None:
    root = make_git_repo(tmp_path / "r")
    (root / "a.py").write_text("def a():\n    return 1\n")
    (root / "vendor").mkdir()
    (root / "vendor" / "b.py").write_text("def b():\n    return 2\n")
    (root / ".mcp-router.toml").write_text('ignore = ["vendor/"]\n')
    app = App(root)
    codeindex.reindex(app)
    assert set(CodeStore.open(app.index_dir).file_rows()) == {"a.py", ".mcp-router.toml"}


def test_corrupt_config_is_one_clear_error(tmp_path: Path) -> None:
    root = make_git_repo(tmp_path / "r")
    (root / ".mcp-router.toml").write_text("ignore = [unterminated\n")
    with pytest.raises(UserError, match=r"\.mcp-router\.toml is not valid TOML.*fix it or delete it"):
        App(root)
    (root / ".mcp-router.toml").write_text("max_file_bytes = 'lots'\n")
    with pytest.raises(UserError, match="bad setting `max_file_bytes`"):
        App(root)


def test_missing_index_and_outside_path(tmp_path: Path) -> None:
    root = make_git_repo(tmp_path / "r")
    app = App(root)
    with pytest.raises(UserError, match="no code index"):
        codeindex.search_code(app, "anything")
    with pytest.raises(UserError, match="outside the repository"):
        codeindex.to_relative(app, "../../etc/passwd")


def test_model_change_forces_clean_rebuild(tmp_path: Path, encoder) -> None:
    root = make_git_repo(tmp_path / "r")
    (root / "a.py").write_text("def a():\n    return 1\n")
    app = App(root)
    codeindex.reindex(app)
    store = CodeStore.open(app.index_dir)
    store.meta["model_id"] = "some-other-model"
    (app.index_dir / "meta.json").write_text(__import__("json").dumps(store.meta))
    stats = codeindex.reindex(app)
    assert stats.rebuilt and stats.files_indexed == 1
    assert stats.chunks_embedded == 1 and stats.chunks_reused == 0  # old vectors are never mixed in
    assert CodeStore.open(app.index_dir).meta["model_id"] == encoder.model_id


def test_kill9_mid_run_then_rerun_is_consistent(tmp_path: Path, encoder) -> None:
    root = make_git_repo(tmp_path / "r")
    pkg = root / "pkg"
    pkg.mkdir()
    for i in range(120):
        (pkg / f"mod_{i:03d}.py").write_text(
            f'"""Module {i}."""\n\n\ndef handler_{i}(request):\n    """Handle request kind {i}."""\n'
            f"    return request.get('value_{i}', {i}) * {i + 1}\n"
        )
    (root / ".mcp-router.toml").write_text("batch_chunks = 8\n")
    cmd = [sys.executable, "-m", "mcp_router", "--root", str(root), "index", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Wait until at least one batch has been committed, then kill -9 while the run is still going.
    deadline = time.monotonic() + 120
    app = App(root)
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            committed = len(CodeStore.open(app.index_dir).file_rows())
        except Exception:  # noqa: BLE001 - the index may not exist yet
            committed = 0
        if committed >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the indexer finished before it could be killed; make the run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The partial index is usable right away.
    partial = len(CodeStore.open(app.index_dir).file_rows())
    assert 0 < partial < 121
    assert codeindex.search_code(app, "handle request", refresh=False).results
    assert_consistent(app)
    # The next run finishes the job without redoing committed work.
    stats = codeindex.reindex(app)
    assert stats.files_unchanged >= partial - 1
    assert len(CodeStore.open(app.index_dir).file_rows()) == 121
    assert_consistent(app)
    hits = codeindex.search_code(app, "handler_117", refresh=False).results
    assert hits[0].path == "pkg/mod_117.py"

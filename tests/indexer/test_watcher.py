"""Watch mode with real file-system events, the real model and real LanceDB in temp repositories.

Waiting is by condition (a batch that contains a path, a line on stderr), never by elapsed time: nothing here asserts
a duration. Files are tiny and mostly share content, so embedding stays cheap on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from indexer.chunker import chunk_file
from indexer.index import IndexSettings, index_repo
from indexer.lock import lock_holder
from indexer.store import CHUNKS, CodeStore
from indexer.walker import IgnoreRules, walk_repo
from indexer.watcher import Watcher, WatcherRunning, active_watcher
from mcp_router import codeindex
from mcp_router.app import App
from tests.conftest import make_git_repo

WAIT = 60.0  # generous: the machine is shared; a condition that never comes true fails the test at this bound


def func(name: str, body: str = "return 1") -> str:
    return f"def {name}():\n    {body}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "repo")
    (root / "a.py").write_text(func("alpha"))
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# Guide\n\nHow to use alpha.\n")
    (root / ".gitignore").write_text("build/\n*.log\n")
    return root


def settings(root: Path) -> IndexSettings:
    return IndexSettings(index_dir=root / ".mcp-router")


@pytest.fixture
def watch(repo: Path, encoder) -> Iterator[Watcher]:
    w = Watcher(repo, settings(repo), encoder, debounce=0.3).start()
    assert w.wait_ready(WAIT), "initial reconcile did not finish"
    yield w
    w.stop()


def indexed(root: Path) -> dict[str, dict]:
    return CodeStore.open(root / ".mcp-router").file_rows()


def chunk_rows(root: Path) -> list[dict]:
    return CodeStore.open(root / ".mcp-router").table(CHUNKS).to_arrow().select(
        ["id", "path", "start_line", "end_line", "text"]).to_pylist()


def wait_indexed(w: Watcher, root: Path, present: tuple[str, ...] = (), absent: tuple[str, ...] = ()) -> dict:
    ok = w.wait_for(lambda: w.idle and all(p in indexed(root) for p in present)
                    and not any(p in indexed(root) for p in absent), WAIT)
    assert ok, f"index never reached present={present} absent={absent}: {sorted(indexed(root))}"
    return indexed(root)


def assert_consistent(root: Path) -> None:
    """The index equals a from-scratch chunking of the tree: every file once, every chunk once, no orphans."""
    s = settings(root)
    walk = walk_repo(root, rules=IgnoreRules(root, s.ignore, extra_dirs=[s.index_dir]), max_file_bytes=s.max_file_bytes)
    on_disk = {f.rel for f in walk.files}
    files = indexed(root)
    assert set(files) == on_disk
    rows = chunk_rows(root)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate chunks"
    assert {r["path"] for r in rows} <= on_disk, "orphan chunks of deleted files"
    for rel in on_disk:
        want = sorted((c.start_line, c.end_line, c.text) for c in chunk_file(rel, (root / rel).read_text()).chunks)
        got = sorted((r["start_line"], r["end_line"], r["text"]) for r in rows if r["path"] == rel)
        assert got == want, rel


# -- events -----------------------------------------------------------------------------------------------------------
def test_reconcile_then_create_modify_delete_a_file(watch: Watcher, repo: Path) -> None:
    assert set(indexed(repo)) == {"a.py", "docs/guide.md", ".gitignore"}
    assert watch.history[0].kind == "reconcile"
    seen: list[list[str]] = []
    watch.on_changed.append(seen.append)

    (repo / "b.py").write_text(func("beta"))
    wait_indexed(watch, repo, present=("b.py",))
    (repo / "b.py").write_text(func("beta", "return 'changed_body_token'"))
    assert watch.wait_for(lambda: any("changed_body_token" in r["text"] for r in chunk_rows(repo)), WAIT)
    (repo / "b.py").unlink()
    wait_indexed(watch, repo, absent=("b.py",))

    assert all(r["path"] != "b.py" for r in chunk_rows(repo))
    assert ["b.py"] in seen  # the on_changed hook heard of each change
    assert watch.snapshot().batches >= 3 and watch.snapshot().last_error is None
    assert_consistent(repo)


def test_rename_move_and_delete_directories(watch: Watcher, repo: Path) -> None:
    (repo / "pkg" / "sub").mkdir(parents=True)
    (repo / "pkg" / "sub" / "deep.py").write_text(func("deep"))
    (repo / "pkg" / "top.py").write_text(func("top"))
    wait_indexed(watch, repo, present=("pkg/sub/deep.py", "pkg/top.py"))

    os.rename(repo / "pkg", repo / "lib")  # a folder rename moves every file under it
    wait_indexed(watch, repo, present=("lib/sub/deep.py", "lib/top.py"), absent=("pkg/sub/deep.py", "pkg/top.py"))

    (repo / "other").mkdir()
    shutil.move(repo / "lib" / "sub", repo / "other" / "sub")  # a folder moved into another folder
    os.rename(repo / "lib" / "top.py", repo / "lib" / "renamed.py")  # a file rename
    wait_indexed(watch, repo, present=("other/sub/deep.py", "lib/renamed.py"),
                 absent=("lib/sub/deep.py", "lib/top.py"))

    shutil.rmtree(repo / "other")  # a folder deleted with its contents
    shutil.move(repo / "lib", repo.parent / "outside")  # a folder moved out of the tree
    wait_indexed(watch, repo, absent=("other/sub/deep.py", "lib/renamed.py"))
    assert_consistent(repo)


def test_editor_style_save_replaces_the_file(watch: Watcher, repo: Path) -> None:
    tmp = repo / ".a.py.swx"
    tmp.write_text(func("alpha", "return 'saved_by_editor'"))
    os.replace(tmp, repo / "a.py")  # write a temp file, rename it over the original
    assert watch.wait_for(lambda: any("saved_by_editor" in r["text"] for r in chunk_rows(repo)), WAIT)
    assert ".a.py.swx" not in indexed(repo)
    assert_consistent(repo)


def test_a_burst_of_200_files_is_one_batch(repo: Path, encoder) -> None:
    # A longer quiet period than the default keeps this deterministic on a loaded CI machine; the default's behaviour
    # on a 200-file branch switch is measured by benchmarks/bench_watch.py.
    w = Watcher(repo, settings(repo), encoder, debounce=1.5, max_delay=60).start()
    try:
        assert w.wait_ready(WAIT)
        before = w.snapshot().batches
        (repo / "burst").mkdir()
        for i in range(200):  # four distinct bodies: vectors are reused by content hash
            (repo / "burst" / f"f{i:03}.py").write_text(func("same", f"return {i % 4}"))
        names = tuple(f"burst/f{i:03}.py" for i in range(200))
        wait_indexed(w, repo, present=names)
        st = w.snapshot()
        assert st.batches == before + 1, [r.paths[:3] for r in w.history]
        batch = w.history[-1]
        assert set(names) <= set(batch.paths) and batch.files_indexed == 200
        assert batch.chunks_embedded <= 4 and st.pending == 0
        assert_consistent(repo)
    finally:
        w.stop()


def test_ignored_paths_produce_no_work(watch: Watcher, repo: Path) -> None:
    batches = len(watch.history)
    (repo / "build").mkdir()
    (repo / "build" / "gen.py").write_text(func("generated"))  # .gitignore: build/
    (repo / "debug.log").write_text("noise\n")  # .gitignore: *.log
    (repo / ".env").write_text("TOKEN=secret\n")  # the built-in deny-list
    (repo / ".git" / "scratch").write_text("git internals\n")
    (repo / "sentinel.py").write_text(func("sentinel"))  # events arrive in order: this one comes last
    wait_indexed(watch, repo, present=("sentinel.py",))
    new = list(watch.history)[batches:]
    assert [r.paths for r in new] == [["sentinel.py"]]
    assert not {"build/gen.py", "debug.log", ".env"} & set(indexed(repo))


def test_editing_gitignore_updates_the_rules(watch: Watcher, repo: Path) -> None:
    (repo / "gen").mkdir()
    (repo / "gen" / "g.py").write_text(func("gen_code"))
    wait_indexed(watch, repo, present=("gen/g.py",))
    (repo / ".gitignore").write_text("build/\n*.log\ngen/\n")
    wait_indexed(watch, repo, absent=("gen/g.py",))
    (repo / ".gitignore").write_text("*.log\n")  # un-ignore: build/ files appear, future events are watched
    (repo / "build").mkdir()
    (repo / "build" / "b.py").write_text(func("built"))
    wait_indexed(watch, repo, present=("build/b.py",))
    (repo / "build" / "later.py").write_text(func("later"))
    wait_indexed(watch, repo, present=("build/later.py",))
    assert_consistent(repo)


def test_polling_fallback(repo: Path, encoder) -> None:
    w = Watcher(repo, settings(repo), encoder, debounce=0.1, poll=True, poll_interval=0.2).start()
    try:
        assert w.wait_ready(WAIT) and w.snapshot().observer == "polling"
        (repo / "build").mkdir()
        (repo / "build" / "skip.py").write_text(func("skipped"))
        (repo / "polled.py").write_text(func("polled"))
        wait_indexed(w, repo, present=("polled.py",))
        (repo / "polled.py").unlink()
        wait_indexed(w, repo, absent=("polled.py",))
        assert all("build/skip.py" not in r.paths for r in w.history)
    finally:
        w.stop()


# -- freshness, single writer, processes -----------------------------------------------------------------------------
def test_search_right_after_a_save_sees_it_without_waiting_for_the_debounce(repo: Path, encoder) -> None:
    from mcp_router.watch import watcher_for

    app = App(repo)
    w = watcher_for(app, debounce_ms=600_000)  # ten minutes: only query-time freshness can index the save
    w.start()
    try:
        assert w.wait_ready(WAIT) and active_watcher(app.index_dir) is w
        (repo / "a.py").write_text(func("alpha", "return 'fresh_token_xyz'"))
        result = codeindex.search_code(app, "fresh_token_xyz", k=3)
        assert result.results and result.results[0].path == "a.py"
        assert "fresh_token_xyz" in result.results[0].code
        assert "refreshed 1 changed file" in result.freshness
        (repo / "a.py").unlink()
        result = codeindex.search_code(app, "alpha fresh_token_xyz", k=3)
        assert all(h.path != "a.py" for h in result.results)  # never a deleted file
    finally:
        w.stop()
    assert active_watcher(app.index_dir) is None and lock_holder(app.index_dir) is None


def test_a_second_watcher_reports_the_first_and_exits(watch: Watcher, repo: Path) -> None:
    from mcp_router.cli import main

    with pytest.raises(WatcherRunning, match="already running"):
        Watcher(repo, settings(repo), watch.encoder).start()
    res = CliRunner().invoke(main, ["--root", str(repo), "watch"])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "a watcher is already running" in lines[0] and str(os.getpid()) in lines[0]
    assert lock_holder(repo / ".mcp-router")["role"] == "watch"  # the first one is untouched


def _spawn_watch(root: Path) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from mcp_router.cli import main; main()", "--root", str(root),
                             "watch", "--debounce", "200"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env)
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _wait(cond, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_one_writer_process_and_one_reader_stay_consistent(repo: Path, encoder) -> None:
    for i in range(4):
        (repo / f"stable_{i}.py").write_text(func(f"stable_{i}", f"return {i}"))
    index_repo(repo, settings(repo), encoder)
    proc, lines = _spawn_watch(repo)
    app = App(repo)
    errors: list[BaseException] = []
    searches = {"n": 0}
    stop = threading.Event()

    def reader() -> None:  # the second process's role: search in a loop while the watcher writes
        while not stop.is_set():
            try:
                for hit in codeindex.search_code(app, "stable function", k=8).results:
                    if hit.path.startswith("stable_"):
                        assert hit.code in (repo / hit.path).read_text()
                searches["n"] += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    try:
        _wait(lambda: any("watching" in ln for ln in lines) or proc.poll() is not None, "the watcher to start")
        assert proc.poll() is None, "".join(lines)
        t = threading.Thread(target=reader)
        t.start()
        for i in range(4):
            token = f"edit_token_{i}"
            (repo / f"edit_{i % 2}.py").write_text(func(f"edit_{i}", f"return '{token}'"))
            _wait(lambda: any(token in h.code for h in codeindex.search_code(app, token, k=3).results), token)
        (repo / "edit_0.py").unlink()
        _wait(lambda: "edit_0.py" not in indexed(repo), "the delete")
        stop.set()
        t.join(WAIT)
        assert not errors, errors
        assert searches["n"] > 0
        proc.send_signal(signal.SIGTERM)  # clean shutdown
        assert proc.wait(WAIT) == 0, "".join(lines)
        assert any(ln.startswith("stopped:") for ln in lines)
        assert lock_holder(repo / ".mcp-router") is None
        status = json.loads((repo / ".mcp-router" / "watch.json").read_text())
        assert status["state"] == "stopped" and status["batches"] >= 5
        assert_consistent(repo)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()


def test_kill_9_mid_batch_then_restart_gives_a_consistent_index(repo: Path, encoder) -> None:
    for i in range(6):
        (repo / f"old_{i}.py").write_text(func(f"old_{i}"))
    index_repo(repo, settings(repo), encoder)
    proc, lines = _spawn_watch(repo)
    status_file = repo / ".mcp-router" / "watch.json"

    def state() -> str:
        try:
            return json.loads(status_file.read_text()).get("state", "")
        except (OSError, ValueError):
            return ""

    try:
        _wait(lambda: any("watching" in ln for ln in lines) or proc.poll() is not None, "the watcher to start")
        assert proc.poll() is None, "".join(lines)
        for i in range(40):  # distinct bodies: the batch has real embedding work to be killed in
            (repo / f"new_{i:02}.py").write_text(func(f"new_{i}", f"return 'distinct body number {i}'") +
                                                 func(f"more_{i}", f"return {i} * {i}"))
        for i in range(3):
            (repo / f"old_{i}.py").unlink()
        _wait(lambda: state() == "indexing", "the batch to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lock_holder(repo / ".mcp-router") is None  # the kernel dropped the lock with the process

    (repo / "old_3.py").unlink()  # and something changes while nothing watches
    w = Watcher(repo, settings(repo), encoder).start()  # the restart
    try:
        assert w.wait_ready(WAIT) and w.history[0].error is None
        files = indexed(repo)
        assert all(f"new_{i:02}.py" in files for i in range(40))
        assert not any(f"old_{i}.py" in files for i in range(4))
        assert_consistent(repo)
    finally:
        w.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_server_runs_the_watcher_in_process(repo: Path, encoder, mode: str) -> None:
    import anyio
    from mcp import Client

    from mcp_router.server import build_server

    app = App(repo)
    codeindex.reindex(app)
    async with Client(build_server(app, watch=True), mode=mode) as client:
        with anyio.fail_after(WAIT):
            while active_watcher(app.index_dir) is None:
                await anyio.sleep(0.05)
        assert lock_holder(app.index_dir)["role"] == "watch"
        (repo / "served.py").write_text(func("served", "return 'served_token_q'"))
        res = await client.call_tool("search_code", {"query": "served_token_q", "k": 3})
        assert not res.is_error
        assert res.structured_content["results"][0]["path"] == "served.py"
        status = await client.call_tool("index_status", {})
        assert status.structured_content["watcher_running"] is True
        res = await client.call_tool("reindex", {"path": "served.py"})  # runs between the watcher's batches
        assert not res.is_error, res.content
    assert active_watcher(app.index_dir) is None and lock_holder(app.index_dir) is None

"""Code-index operations shared by the CLI and the MCP server: reindex, search (with freshness), status.

The results are pydantic models, so the MCP tools return them as structured content and the CLI renders the same data.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, Field

from indexer.errors import UserError
from mcp_router.app import App

if TYPE_CHECKING:
    from indexer.index import IndexSettings, IndexStats
    from indexer.lock import WriterLock
    from indexer.store import CodeStore

# The indexer modules (chunker, search, walker, lock) are imported inside the functions that use them: the MCP server
# imports this module for its result models, and its handshake must not pay for them.

FRESHNESS_BUDGET_S = 0.5
FRESHNESS_MAX_FILES = 200
FRESHNESS_WAIT_S = 3.0  # how long a search waits for a watcher to index what just changed


class CodeHit(BaseModel):
    path: str = Field(description="file path relative to the repository root")
    start_line: int
    end_line: int
    symbol: str = Field(description="qualified symbol defined in this chunk, e.g. Session.send; empty for module code")
    kind: str = Field(description="function, method, class, section, lines, ...")
    language: str
    score: float
    match: str = Field(description="why it ranked: definition, dense, keyword or dense+keyword")
    code: str
    truncated: bool = Field(description="true when the code was cut to fit the size budget; read the file for the rest")


class SearchResult(BaseModel):
    query: str
    results: list[CodeHit]
    next_offset: int | None = Field(description="pass as offset to get the next page; null when there is no more")
    freshness: str = Field(description="index age and pending changes, one line")


class IndexStatus(BaseModel):
    root: str
    index_dir: str
    indexed: bool
    model: str | None = None
    files: int = 0
    chunks: int = 0
    languages: dict[str, int] = {}
    last_indexed: str | None = None
    index_age_seconds: float | None = None
    pending_changes: int = 0
    pending_files: list[str] = []
    watcher_running: bool = False
    watcher: dict[str, Any] | None = Field(None, description="the running watcher's state, pending batch size, last "
                                                              "update and chunks re-embedded/reused")
    writer: str | None = None
    disk_mb: float = 0.0


class ReindexResult(BaseModel):
    files_indexed: int
    files_unchanged: int
    files_deleted: int
    chunks_total: int
    chunks_embedded: int
    chunks_reused: int
    languages: dict[str, int]
    chunking: dict[str, int]
    skipped: dict[str, int]
    unreadable: list[str]
    seconds: float


def settings_for(app: App) -> IndexSettings:
    from indexer.index import IndexSettings

    c = app.config
    return IndexSettings(index_dir=app.index_dir, ignore=list(c.ignore), max_file_bytes=c.max_file_bytes,
                         chunk_chars=c.chunk_chars, ann_min_rows=c.ann_min_rows, batch_chunks=c.batch_chunks)


def reindex(app: App, *, paths: list[str] | None = None, rebuild: bool = False,
            progress: Callable[[str, int, int], None] | None = None, lock: WriterLock | None = None) -> IndexStats:
    """Incrementally (re)index the repository, or only ``paths`` (root-relative or absolute inside the root)."""
    from indexer.index import index_repo

    rel = [to_relative(app, p) for p in paths] if paths else None
    from indexer.watcher import active_watcher

    watcher = active_watcher(app.index_dir) if lock is None else None
    if watcher is not None:  # this process's watcher holds the writer lock: run between its batches
        return watcher.reindex(rel, rebuild=rebuild, progress=progress)
    return index_repo(app.root, settings_for(app), app.encoder, paths=rel, rebuild=rebuild, progress=progress, lock=lock)


def stats_dict(stats: IndexStats) -> dict[str, Any]:
    return reindex_result(stats).model_dump()


def reindex_result(stats: IndexStats) -> ReindexResult:
    return ReindexResult(files_indexed=stats.files_indexed, files_unchanged=stats.files_unchanged + stats.files_touched,
                         files_deleted=stats.files_deleted, chunks_total=stats.chunks_total,
                         chunks_embedded=stats.chunks_embedded, chunks_reused=stats.chunks_reused,
                         languages=stats.languages, chunking=stats.methods, skipped=stats.skipped,
                         unreadable=stats.errors[:20], seconds=round(stats.seconds, 2))


def to_relative(app: App, path: str) -> str:
    """A root-relative POSIX path; `UserError` for a path outside the repository."""
    p = Path(path)
    full = (p if p.is_absolute() else app.root / p).resolve()
    try:
        return full.relative_to(app.root).as_posix()
    except ValueError:
        raise UserError(f"{path} is outside the repository {app.root}: give a path inside it") from None


def pending_changes(app: App, store: CodeStore, budget_s: float = FRESHNESS_BUDGET_S) -> tuple[list[str], bool]:
    """Files changed, added or deleted since they were indexed (size/mtime scan, bounded in time).

    Returns ``(paths, complete)``: ``complete`` is False when the scan ran out of time on a huge tree.
    """
    import os

    from indexer.walker import IgnoreRules, WalkResult, check_file

    deadline = time.monotonic() + budget_s
    known = store.file_rows()
    rules = IgnoreRules(app.root, app.config.ignore, extra_dirs=[app.index_dir])
    seen: set[str] = set()
    changed: list[str] = []
    scratch = WalkResult()
    for dirpath, dirnames, filenames in os.walk(app.root):
        if time.monotonic() > deadline:
            return changed, False
        rel_dir = Path(dirpath).relative_to(app.root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = [d for d in sorted(dirnames)
                       if not rules.ignored(f"{rel_dir}/{d}" if rel_dir else d, is_dir=True)]
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            old = known.get(rel)
            if old is None:
                if rules.path_ignored(rel) or check_file(app.root, rel, app.config.max_file_bytes, scratch) is None:
                    continue
                changed.append(rel)
                continue
            seen.add(rel)
            try:
                st = os.stat(app.root / rel)
            except OSError:
                continue
            if st.st_size != old["size"] or st.st_mtime_ns != old["mtime_ns"]:
                changed.append(rel)
    changed.extend(p for p in known if p not in seen)
    return changed, True


def open_store(app: App) -> CodeStore:
    from indexer.store import CodeStore

    return CodeStore.open(app.index_dir)


def freshen(app: App, store: CodeStore) -> str:
    """Reindex the few files changed since the last run (query-time freshness); return the one-line note."""
    from indexer.lock import WriterLock, lock_holder
    from indexer.watcher import active_watcher

    changed, complete = pending_changes(app, store)
    note = ""
    watcher = active_watcher(app.index_dir)
    holder = lock_holder(app.index_dir) if changed and watcher is None else None
    if changed and len(changed) <= FRESHNESS_MAX_FILES and watcher is not None:
        # The server's own watcher holds the lock: hand it the paths and let it index them now (no debounce).
        if watcher.flush(changed, timeout=FRESHNESS_WAIT_S):
            note = f"refreshed {len(changed)} changed file(s) before searching"
            changed = []
    elif changed and len(changed) <= FRESHNESS_MAX_FILES and holder and holder.get("role") == "watch":
        # A watcher in another process owns the index and will pick these up within its quiet period: wait a little.
        changed = _wait_for_watcher(app, store, changed, FRESHNESS_WAIT_S)
        if not changed:
            note = "waited for the watcher to index the changed files"
    elif changed and len(changed) <= FRESHNESS_MAX_FILES:
        lock = WriterLock(app.index_dir, role="search refresh")
        if lock.acquire(wait=2.0):
            try:
                reindex(app, paths=changed, lock=lock)
                note = f"refreshed {len(changed)} changed file(s) before searching"
                changed = []
            finally:
                lock.release()
    age = _age(store)
    parts = [f"index updated {age} ago"] if age else ["index age unknown"]
    if note:
        parts.append(note)
    if changed:
        parts.append(f"{len(changed)} file(s) changed since then and not yet reindexed (run reindex)")
    if not complete:
        parts.append("freshness scan incomplete (large tree)")
    return "; ".join(parts)


def _wait_for_watcher(app: App, store: CodeStore, paths: list[str], timeout: float) -> list[str]:
    """Poll the index until another process's watcher has indexed ``paths``; return those still pending."""
    import os

    deadline = time.monotonic() + timeout
    while True:
        known = store.file_rows()
        left = []
        for rel in paths:
            old = known.get(rel)
            try:
                st = os.stat(app.root / rel)
            except OSError:
                if old is not None:
                    left.append(rel)  # deleted, still indexed
                continue
            if old is None or st.st_size != old["size"] or st.st_mtime_ns != old["mtime_ns"]:
                left.append(rel)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _age(store: CodeStore) -> str:
    from indexer.store import CodeStore

    meta = CodeStore.read_meta(store.index_dir) or {}
    last = meta.get("last_indexed")
    if not last:
        return ""
    secs = max(0.0, time.time() - float(last))
    if secs < 90:
        return f"{secs:.0f}s"
    if secs < 5400:
        return f"{secs / 60:.0f}min"
    return f"{secs / 3600:.1f}h"


def search_code(app: App, query: str, *, k: int = 5, offset: int = 0, path_glob: str | None = None,
                language: str | None = None, mode: str = "hybrid", refresh: bool = True,
                max_chars: int | None = None) -> SearchResult:
    """Search the code index after refreshing files edited since the last update."""
    from indexer.search import search

    store = open_store(app)
    built_with = store.meta.get("model_id")
    if built_with and built_with != app.encoder.model_id:
        raise UserError(f"the index was built with model {built_with!r}, not {app.encoder.model_id!r}: run "
                        "`mcp-router index --rebuild` with the new model, or drop the --model override")
    freshness = freshen(app, store) if refresh else f"index updated {_age(store) or '?'} ago"
    page = search(store, app.encoder, query, k=k, offset=offset, path_glob=path_glob, language=language, mode=mode,
                  max_chars=max_chars or app.config.result_max_chars)
    hits = [CodeHit(path=h.path, start_line=h.start_line, end_line=h.end_line, symbol=h.symbol, kind=h.kind,
                    language=h.language, score=h.score, match=h.match, code=h.code, truncated=h.truncated)
            for h in page.hits]
    return SearchResult(query=page.query, results=hits, next_offset=page.next_offset, freshness=freshness)


def index_status(app: App) -> IndexStatus:
    """What is indexed, how old it is, what changed since, and whether a watcher/indexer is writing."""
    from indexer.lock import lock_holder
    from indexer.watcher import read_watch_status

    holder = lock_holder(app.index_dir) if app.index_dir.exists() else None
    running = bool(holder and holder.get("role") == "watch")
    live = read_watch_status(app.index_dir) if running else None
    base = IndexStatus(root=str(app.root), index_dir=str(app.index_dir), indexed=False,
                       watcher_running=running,
                       watcher={k: live.get(k) for k in ("pid", "state", "observer", "pending", "batches",
                                                         "last_update", "chunks_embedded", "chunks_reused",
                                                         "last_error")} if live else None,
                       writer=f"{holder.get('role')} (pid {holder.get('pid')})" if holder else None)
    try:
        store = open_store(app)
    except UserError:
        return base
    rows = store.file_rows()
    langs: dict[str, int] = {}
    for r in rows.values():
        langs[r["language"]] = langs.get(r["language"], 0) + 1
    changed, _complete = pending_changes(app, store, budget_s=2.0)
    last = store.meta.get("last_indexed")
    return base.model_copy(update=dict(
        indexed=True, model=store.meta.get("model_id"), files=len(rows), chunks=store.count(), languages=langs,
        last_indexed=datetime.fromtimestamp(last, timezone.utc).isoformat(timespec="seconds") if last else None,
        index_age_seconds=round(time.time() - last, 1) if last else None,
        pending_changes=len(changed), pending_files=changed[:20], disk_mb=round(store.disk_bytes() / 1e6, 2),
    ))

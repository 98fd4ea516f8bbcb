"""Incremental, crash-safe indexing of a repository into the code store.

Change detection, cheapest first:
1. size and mtime unchanged → skipped without reading;
2. otherwise the bytes are hashed; same hash → only the file record is refreshed;
3. otherwise the file is re-chunked, and every chunk whose content hash has a stored vector reuses it.
Work is committed in batches: vectors first, then the batch's chunks (one atomic merge per batch), then the file
records. A run killed anywhere leaves the previous state readable, and the next run redoes only the unfinished batch.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from indexer.chunker import chunk_file
from indexer.encoder import Encoder
from indexer.errors import UserError
from indexer.lock import WriterLock
from indexer.models import FileChunks
from indexer.store import CodeStore, chunk_table, search_text
from indexer.walker import FileEntry, IgnoreRules, WalkResult, check_file, is_denied, walk_repo

# progress(phase, done, total): phases are "scan", "parse", "embed".
Progress = Callable[[str, int, int], None]

BATCH_CHUNKS = 512


@dataclass
class IndexSettings:
    """What a run needs to know besides the root; built from `mcp_router.config.Config` by the callers."""

    index_dir: Path
    ignore: list[str] = field(default_factory=list)
    max_file_bytes: int = 1_000_000
    chunk_chars: int = 1500
    ann_min_rows: int = 50_000
    batch_chunks: int = BATCH_CHUNKS


@dataclass
class IndexStats:
    """The summary of one run (the CLI's table and the MCP tool's result)."""

    files_seen: int = 0
    files_unchanged: int = 0
    files_touched: int = 0  # mtime changed, content identical
    files_indexed: int = 0
    files_deleted: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    decode_replaced: int = 0
    rebuilt: bool = False
    model_loaded: bool = False
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text, or the same with replacement characters (and True) for other encodings."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def index_repo(
    root: Path,
    settings: IndexSettings,
    encoder: Encoder,
    *,
    paths: Iterable[str] | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    lock: WriterLock | None = None,
) -> IndexStats:
    """Bring the index of ``root`` up to date.

    ``paths`` (root-relative) limits the run to those files (the watcher and query-time freshness use it); a path
    that no longer exists or is now ignored is removed from the index. ``lock``: pass a lock the caller already holds.
    """
    root = root.resolve()
    if not root.is_dir():
        raise UserError(f"{root} is not a directory: pass the repository folder")
    own_lock = lock is None
    lock = lock or WriterLock(settings.index_dir)
    if own_lock:
        lock.__enter__()
    try:
        return _run(root, settings, encoder, paths, rebuild, progress)
    finally:
        if own_lock:
            lock.release()


def _run(root: Path, settings: IndexSettings, encoder: Encoder, paths: Iterable[str] | None, rebuild: bool,
         progress: Progress | None) -> IndexStats:
    t0 = time.perf_counter()
    stats = IndexStats()
    report = progress or (lambda *_: None)
    rules = IgnoreRules(root, settings.ignore, extra_dirs=[settings.index_dir])

    meta = CodeStore.read_meta(settings.index_dir)
    if meta and meta.get("model_id") == encoder.model_id and not rebuild:
        dim = int(meta["dim"])  # no model load needed for a no-change run
    else:
        dim = encoder.dim
        stats.model_loaded = True
    store, stats.rebuilt = CodeStore.create_or_open(settings.index_dir, encoder.model_id, dim, root, rebuild=rebuild)

    # 1. Which files exist and may be indexed.
    report("scan", 0, 0)
    if paths is None:
        walk = walk_repo(root, rules=rules, max_file_bytes=settings.max_file_bytes)
        scope: set[str] | None = None
    else:
        walk = WalkResult()
        scope = set()
        for rel in paths:
            rel = rel.strip("/")
            scope.add(rel)
            if not (root / rel).is_file() or rules.path_ignored(rel):
                continue
            entry = check_file(root, rel, settings.max_file_bytes, walk)
            if entry is not None:
                walk.files.append(entry)
    stats.skipped, stats.errors = walk.skipped, walk.errors
    stats.files_seen = len(walk.files)
    report("scan", len(walk.files), len(walk.files))

    known = store.file_rows()
    present = {f.rel for f in walk.files}
    candidates = known.keys() if scope is None else (scope & known.keys())
    deleted = sorted(p for p in candidates if p not in present)
    stats.files_deleted = len(deleted)

    # 2. Cheap change detection: size + mtime, then the content hash.
    todo: list[tuple[FileEntry, bytes, str]] = []
    touched: list[dict[str, Any]] = []
    for entry in walk.files:
        old = known.get(entry.rel)
        if old and old["size"] == entry.size and old["mtime_ns"] == entry.mtime_ns:
            stats.files_unchanged += 1
            _count(stats, old["language"], old["method"])
            continue
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            stats.errors.append(f"cannot read {entry.rel}: {exc.strerror}")
            stats.skipped["unreadable"] = stats.skipped.get("unreadable", 0) + 1
            continue
        digest = file_hash(data)
        if old and old["hash"] == digest:
            stats.files_touched += 1
            _count(stats, old["language"], old["method"])
            touched.append({**old, "size": entry.size, "mtime_ns": entry.mtime_ns})
            continue
        todo.append((entry, data, digest))

    # 3. Chunk, embed (reusing vectors by content hash) and commit, batch by batch.
    if deleted or touched:
        store.replace_files(deleted, chunk_table(_empty_rows(), np.zeros((0, dim), np.float32), dim), touched)
    parsed: list[tuple[FileEntry, str, FileChunks, bool]] = []
    for n, (entry, data, digest) in enumerate(todo, 1):
        text, replaced = decode(data)
        stats.decode_replaced += int(replaced)
        fc = chunk_file(entry.rel, text, max_chars=settings.chunk_chars)
        _count(stats, fc.language, fc.method)
        parsed.append((entry, digest, fc, replaced))
        report("parse", n, len(todo))
    known = store.known_vectors(ch.hash for *_, fc, _r in parsed for ch in fc.chunks) if parsed else {}
    pending = {ch.hash for *_, fc, _r in parsed for ch in fc.chunks} - known.keys()
    embed = {"done": 0, "total": len(pending)}
    report("embed", 0, embed["total"])
    batch: list[tuple[FileEntry, str, FileChunks, bool]] = []
    size = 0
    for item in parsed:
        batch.append(item)
        size += len(item[2].chunks)
        if size >= settings.batch_chunks:
            _commit_batch(store, encoder, dim, batch, known, stats, report, embed)
            batch, size = [], 0
    if batch:
        _commit_batch(store, encoder, dim, batch, known, stats, report, embed)
    stats.files_indexed = len(todo)

    store.finish(changed=bool(todo or deleted or stats.rebuilt), ann_min_rows=settings.ann_min_rows)
    stats.chunks_total = store.count()
    stats.model_loaded = stats.model_loaded or encoder.loaded
    stats.seconds = time.perf_counter() - t0
    return stats


def _count(stats: IndexStats, language: str, method: str) -> None:
    stats.languages[language] = stats.languages.get(language, 0) + 1
    stats.methods[method] = stats.methods.get(method, 0) + 1


def _empty_rows() -> dict[str, list[Any]]:
    return {k: [] for k in ("id", "path", "language", "start_line", "end_line", "symbol", "symbol_lc", "kind",
                            "parent", "hash", "text", "search_text")}


def _commit_batch(store: CodeStore, encoder: Encoder, dim: int, batch: list[tuple[FileEntry, str, FileChunks, bool]],
                  known: dict[str, np.ndarray], stats: IndexStats, report: Progress, embed: dict[str, int]) -> None:
    """Embed what no stored vector covers, then commit: vectors, the batch's chunks, the file records."""
    rows = _empty_rows()
    hashes: list[str] = []
    texts: list[str] = []
    for entry, _digest, fc, _replaced in batch:
        for ch in fc.chunks:
            h = ch.hash
            rows["id"].append(f"{entry.rel}#{ch.start_line}-{ch.end_line}#{h[:12]}")
            rows["path"].append(entry.rel)
            rows["language"].append(fc.language)
            rows["start_line"].append(ch.start_line)
            rows["end_line"].append(ch.end_line)
            rows["symbol"].append(ch.symbol)
            rows["symbol_lc"].append(ch.symbol.lower())
            rows["kind"].append(ch.kind)
            rows["parent"].append(ch.parent)
            rows["hash"].append(h)
            rows["text"].append(ch.text)
            rows["search_text"].append(search_text(entry.rel, ch.symbol, ch.text))
            hashes.append(h)
            texts.append(ch.embed_text)
    vectors = np.zeros((len(hashes), dim), dtype=np.float32)
    missing = [i for i, h in enumerate(hashes) if h not in known]
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = known[h]
    stats.chunks_reused += len(hashes) - len(missing)
    if missing:
        # Unique texts only: identical chunks (licence headers, boilerplate) are embedded once.
        first: dict[str, int] = {}
        for i in missing:
            first.setdefault(hashes[i], i)
        # Longest-first, so each encoder batch holds texts of similar length (little padding), as raw encode() does.
        order = sorted(first.values(), key=lambda i: -len(texts[i]))
        t = time.perf_counter()
        new = np.zeros((len(order), dim), dtype=np.float32)
        step = 32
        for s in range(0, len(order), step):
            part = order[s : s + step]
            new[s : s + len(part)] = encoder.encode([texts[i] for i in part])
            embed["done"] += len(part)
            report("embed", embed["done"], embed["total"])
        stats.embed_seconds += time.perf_counter() - t
        by_hash = {hashes[i]: new[k] for k, i in enumerate(order)}
        known.update(by_hash)
        for i in missing:
            vectors[i] = by_hash[hashes[i]]
        stats.chunks_embedded += len(order)
        stats.chunks_reused += len(missing) - len(order)
        store.add_vectors([hashes[i] for i in order], new)
    file_rows = [
        {"path": entry.rel, "size": entry.size, "mtime_ns": entry.mtime_ns, "hash": digest, "language": fc.language,
         "method": fc.method, "n_chunks": len(fc.chunks), "decode_errors": replaced}
        for entry, digest, fc, replaced in batch
    ]
    store.replace_files([e.rel for e, *_ in batch], chunk_table(rows, vectors, dim), file_rows)


__all__ = ["IndexSettings", "IndexStats", "index_repo", "is_denied"]

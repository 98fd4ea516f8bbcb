"""Storage of the answer cache: entries in the LanceDB table ``answer_cache``, usage and counters in SQLite.

Why two stores:
- An entry (query, answer, embedding, partition, dependencies) is written once and deleted once. LanceDB commits
  each write atomically (a reader sees a whole row or none), and concurrent appends from several server processes
  are merged by its optimistic concurrency; we retry the rare commit conflict (e.g. two deletes racing).
- A hit updates the entry's last-hit time and hit count, and every lookup bumps a counter. Doing that in LanceDB
  would write a new table version on the hot path of every lookup (version bloat, and a conflict source between
  processes). So those mutable numbers live in ``cache_usage.sqlite3`` next to the table, in WAL mode, updated with
  single-statement increments (``hit_count = hit_count + 1``) that several processes can run at once without losing
  counts.

Everything here is I/O: the decisions (guard, thresholds, freshness) live in `cache.py` and `guard.py`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import pyarrow as pa

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLE_NAME = "answer_cache"
USAGE_DB = "cache_usage.sqlite3"
COMPACT_EVERY = 50


@dataclass
class Dependency:
    """A file an answer relied on, by repo-relative POSIX path, and the sha256 of its bytes when the answer was stored."""

    path: str
    sha256: str


@dataclass
class CacheEntry:
    """One cached answer. ``last_hit`` and ``hit_count`` come from the usage store (0 until the first hit)."""

    id: str
    partition: str
    norm_query: str
    query: str
    answer: str
    created_at: float
    dependencies: list[Dependency] = field(default_factory=list)
    repo: str = ""
    tier: str = ""
    system_hash: str = ""
    user_scope: str = ""
    model_id: str = ""
    answer_tokens: int = 0
    last_hit: float = 0.0
    hit_count: int = 0
    vector: Any = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "CacheEntry":
        deps = [Dependency(**d) for d in json.loads(row.get("dependencies") or "[]")]
        return cls(
            id=row["id"], partition=row["partition"], norm_query=row["norm_query"], query=row["query"],
            answer=row["answer"], created_at=float(row["created_at"]), dependencies=deps, repo=row.get("repo", ""),
            tier=row.get("tier", ""), system_hash=row.get("system_hash", ""), user_scope=row.get("user_scope", ""),
            model_id=row.get("model_id", ""), answer_tokens=int(row.get("answer_tokens") or 0),
            vector=row.get("vector"),
        )


def _schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("id", pa.string()),
        pa.field("partition", pa.string()),
        pa.field("norm_query", pa.string()),
        pa.field("query", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field("created_at", pa.float64()),
        pa.field("dependencies", pa.string()),  # JSON list of {path, sha256}
        pa.field("dep_paths", pa.string()),  # "\n"-joined paths, for cheap filtering on invalidation
        pa.field("repo", pa.string()),
        pa.field("tier", pa.string()),
        pa.field("system_hash", pa.string()),
        pa.field("user_scope", pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("answer_tokens", pa.int64()),
    ])


def sql_str(value: str) -> str:
    """A SQL string literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def _is_conflict(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("conflict", "commit", "concurrent", "retryable", "already exists", "not found"))


def retry_write(fn: Callable[[], T], *, attempts: int = 12, what: str = "write") -> T:
    """Run a LanceDB write, retrying commit conflicts from other processes with jittered backoff."""
    import random

    delay = 0.02
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - lance raises plain RuntimeError/OSError for conflicts
            if attempt == attempts - 1 or not _is_conflict(exc):
                raise
            log.debug("cache %s conflict (attempt %d): %s", what, attempt + 1, exc)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


class UsageStore:
    """Hit counts, last-hit times and lookup counters in a small SQLite file (WAL), safe for several processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS usage (id TEXT PRIMARY KEY, last_hit REAL NOT NULL, "
                         "hit_count INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def add_entry(self, entry_id: str, created_at: float) -> None:
        self._conn().execute("INSERT OR IGNORE INTO usage (id, last_hit, hit_count, created_at) VALUES (?, ?, 0, ?)",
                             (entry_id, created_at, created_at))

    def record_hit(self, entry_id: str, now: float) -> None:
        self._conn().execute(
            "INSERT INTO usage (id, last_hit, hit_count, created_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT(id) DO UPDATE SET last_hit = excluded.last_hit, hit_count = hit_count + 1",
            (entry_id, now, now))

    def usage(self, ids: Iterable[str] | None = None) -> dict[str, tuple[float, int]]:
        """``id -> (last_used, hit_count)``; last_used is the store time until the first hit."""
        conn = self._conn()
        if ids is None:
            rows = conn.execute("SELECT id, last_hit, hit_count FROM usage").fetchall()
        else:
            ids = list(ids)
            rows = []
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                rows += conn.execute(f"SELECT id, last_hit, hit_count FROM usage WHERE id IN ({','.join('?' * len(part))})",
                                     part).fetchall()
        return {r[0]: (float(r[1]), int(r[2])) for r in rows}

    def forget(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        conn = self._conn()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            conn.execute(f"DELETE FROM usage WHERE id IN ({','.join('?' * len(part))})", part)

    def bump(self, counts: dict[str, float]) -> None:
        """Add to named counters in one transaction (atomic across processes)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for name, value in counts.items():
                conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, value))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def counters(self) -> dict[str, float]:
        return {r[0]: float(r[1]) for r in self._conn().execute("SELECT name, value FROM counters").fetchall()}

    def reset(self) -> None:
        conn = self._conn()
        conn.execute("DELETE FROM usage")
        conn.execute("DELETE FROM counters")


class EntryStore:
    """The ``answer_cache`` LanceDB table of one index folder, plus its `UsageStore`."""

    def __init__(self, db: Any, index_dir: Path, dim: Callable[[], int]) -> None:
        self.db = db
        self._dim_fn = dim
        self.usage = UsageStore(index_dir / USAGE_DB)
        self._table: Any = None
        self._snapshot: Snapshot | None = None
        self._writes = 0
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self._dim_fn())

    # -- table -------------------------------------------------------------------------------------------------
    def table(self, create: bool = True) -> Any:
        """The table, opened (and created if ``create``) on first use; None if absent and not created."""
        with self._lock:
            if self._table is None:
                names = self._table_names()
                if TABLE_NAME in names:
                    self._table = self.db.open_table(TABLE_NAME)
                elif create:
                    # exist_ok: another process may create it between our check and our create.
                    self._table = retry_write(
                        lambda: self.db.create_table(TABLE_NAME, schema=_schema(self.dim), exist_ok=True),
                        what="create")
            if self._table is not None:
                # See other processes' commits (LanceDB tables are pinned to the version they were opened at
                # unless refreshed).
                try:
                    self._table.checkout_latest()
                except Exception:  # noqa: BLE001 - older/newer API or fresh table: the read is still consistent
                    pass
            return self._table

    def _table_names(self) -> list[str]:
        try:
            res = self.db.list_tables()
            names = getattr(res, "tables", res)
            return list(names)
        except AttributeError:  # pragma: no cover - older lancedb
            return list(self.db.table_names())

    # -- writes ------------------------------------------------------------------------------------------------
    def add(self, entry: CacheEntry) -> None:
        row = {
            "id": entry.id, "partition": entry.partition, "norm_query": entry.norm_query, "query": entry.query,
            "answer": entry.answer, "vector": [float(x) for x in entry.vector], "created_at": entry.created_at,
            "dependencies": json.dumps([d.__dict__ for d in entry.dependencies]),
            "dep_paths": "\n".join(d.path for d in entry.dependencies), "repo": entry.repo, "tier": entry.tier,
            "system_hash": entry.system_hash, "user_scope": entry.user_scope, "model_id": entry.model_id,
            "answer_tokens": entry.answer_tokens,
        }
        table = self.table()
        # Usage row first: an entry visible in the table always has a usage row for LRU ordering.
        self.usage.add_entry(entry.id, entry.created_at)
        retry_write(lambda: table.add(pa.Table.from_pylist([row], schema=_schema(self.dim))), what="add")
        self._after_write()

    def _after_write(self) -> None:
        # Every one-row write leaves a fragment and a version; compact now and then so reads stay fast and the
        # folder does not bloat.
        self._writes += 1
        if self._writes % COMPACT_EVERY == 0:
            self.compact()

    def delete_ids(self, ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        table = self.table(create=False)
        if table is None:
            return 0
        for i in range(0, len(ids), 200):
            part = ids[i : i + 200]
            where = "id IN (" + ", ".join(sql_str(x) for x in part) + ")"
            retry_write(lambda w=where: table.delete(w), what="delete")
        self.usage.forget(ids)
        self._after_write()
        return len(ids)

    def delete_all(self) -> int:
        table = self.table(create=False)
        n = 0
        if table is not None:
            n = table.count_rows()
            retry_write(lambda: table.delete("true"), what="clear")
        self.usage.reset()
        return n

    # -- reads ------------------------------------------------------------------------------------------------
    _COLUMNS = ["id", "partition", "norm_query", "query", "answer", "created_at", "dependencies", "repo", "tier",
                "system_hash", "user_scope", "model_id", "answer_tokens"]

    def snapshot(self) -> "Snapshot":
        """All entries as of the table's latest version, held in memory until another write (by any process).

        A LanceDB query costs ~10 ms of planning even on a tiny table; the cache is small (``max_entries``), so a
        lookup searches this in-memory copy with one matrix product instead, and reloads only when the table version
        moved. Reads stay consistent: a snapshot is one committed version, never a half-written row.
        """
        table = self.table(create=False)
        if table is None:
            return Snapshot.empty(0)
        version = int(table.version)
        with self._lock:
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
        arrow = table.to_arrow()
        snap = Snapshot.from_arrow(arrow, version)
        with self._lock:
            self._snapshot = snap
        return snap

    def exact(self, partition: str, norm_query: str) -> list[CacheEntry]:
        """Entries of ``partition`` whose normalised query is ``norm_query``, newest first."""
        snap = self.snapshot()
        rows = [i for i in snap.by_key.get((partition, norm_query), [])]
        rows.sort(key=lambda i: -snap.created_at[i])
        return [snap.entry(i) for i in rows]

    def nearest(self, partition: str, vector: Any, k: int) -> list[tuple[CacheEntry, float]]:
        """The ``k`` nearest entries of a partition with their cosine similarity (exact search)."""
        import numpy as np

        snap = self.snapshot()
        rows = snap.by_partition.get(partition)
        if rows is None or len(rows) == 0:
            return []
        sims = snap.vectors[rows] @ np.asarray(vector, dtype=np.float32)
        top = np.argsort(-sims)[:k]
        return [(snap.entry(int(rows[j])), float(min(1.0, max(0.0, sims[j])))) for j in top]

    def scan(self, columns: list[str] | None = None, where: str | None = None) -> list[dict[str, Any]]:
        table = self.table(create=False)
        if table is None:
            return []
        n = table.count_rows()
        if n == 0:
            return []
        q = table.search()
        if where:
            q = q.where(where)
        return q.select(columns or self._COLUMNS).limit(n + 1000).to_list()

    def count(self) -> int:
        table = self.table(create=False)
        return 0 if table is None else int(table.count_rows())

    def compact(self) -> None:
        """Merge the small fragments that one-row appends leave behind and drop versions older than an hour.

        Best effort: another process may be compacting or writing at the same moment.
        """
        from datetime import timedelta

        table = self.table(create=False)
        if table is None:
            return
        try:
            table.optimize(cleanup_older_than=timedelta(hours=1))
        except Exception as exc:  # noqa: BLE001
            log.debug("cache compaction skipped: %s", exc)


@dataclass
class Snapshot:
    """An in-memory copy of one version of the table, indexed by partition and by (partition, normalised query)."""

    version: int
    rows: list[dict[str, Any]]
    vectors: Any
    created_at: list[float]
    by_partition: dict[str, Any]
    by_key: dict[tuple[str, str], list[int]]

    @classmethod
    def empty(cls, version: int) -> "Snapshot":
        import numpy as np

        return cls(version, [], np.zeros((0, 1), dtype=np.float32), [], {}, {})

    @classmethod
    def from_arrow(cls, arrow: pa.Table, version: int) -> "Snapshot":
        import numpy as np

        n = arrow.num_rows
        if n == 0:
            return cls.empty(version)
        vec_col = arrow.column("vector").combine_chunks()
        dim = vec_col.type.list_size
        vectors = vec_col.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, dim)
        rows = arrow.drop_columns(["vector"]).to_pylist()
        by_part: dict[str, list[int]] = {}
        by_key: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(rows):
            by_part.setdefault(r["partition"], []).append(i)
            by_key.setdefault((r["partition"], r["norm_query"]), []).append(i)
        return cls(version, rows, vectors, [float(r["created_at"]) for r in rows],
                   {k: np.asarray(v, dtype=np.int64) for k, v in by_part.items()}, by_key)

    def entry(self, i: int) -> CacheEntry:
        return CacheEntry.from_row({**self.rows[i], "vector": self.vectors[i]})


def new_id() -> str:
    return uuid.uuid4().hex

"""The code index on disk: LanceDB tables plus a small JSON manifest, all in one folder.

Tables:
- ``chunks``: one row per chunk (location, symbol, code, the text the keyword index reads, and the vector);
- ``files``: one row per indexed file (size, mtime, content hash, how it was chunked). It is written *after* the chunks
  of a batch, so it is the commit record: a run killed in between leaves files that look changed, and the next run
  redoes them;
- ``vectors``: embeddings keyed by chunk content hash. It outlives the chunks, so a branch switch, a revert, a rename
  or a moved function reuses vectors instead of re-encoding.

``meta.json`` records the model id and vector size: opening an index with another model forces a clean rebuild
instead of mixing vectors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from indexer.errors import UserError

SCHEMA_VERSION = 1
CHUNKS, FILES, VECTORS = "chunks", "files", "vectors"

_IDENT_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifiers(text: str) -> str:
    """``parseHTTPResponse`` / ``parse_http_response`` → ``parse http response``: lets BM25 match words inside names."""
    words = []
    for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text):
        if "_" in token or any(c.isupper() for c in token[1:]):
            words.extend(w.lower() for w in _IDENT_SPLIT.findall(token))
    return " ".join(words)


def search_text(path: str, symbol: str, text: str) -> str:
    """What the keyword index reads: path words, the symbol (whole and split) and the code with split identifiers."""
    return f"{path} {split_identifiers(path)} {symbol} {split_identifiers(symbol)}\n{text}\n{split_identifiers(text)}"


def chunk_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("path", pa.string()),
            pa.field("language", pa.string()),
            pa.field("start_line", pa.int32()),
            pa.field("end_line", pa.int32()),
            pa.field("symbol", pa.string()),
            pa.field("symbol_lc", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("parent", pa.string()),
            pa.field("hash", pa.string()),
            pa.field("text", pa.string()),
            pa.field("search_text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


FILE_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("hash", pa.string()),
        pa.field("language", pa.string()),
        pa.field("method", pa.string()),
        pa.field("n_chunks", pa.int32()),
        pa.field("decode_errors", pa.bool_()),
    ]
)


def vector_schema(dim: int) -> pa.Schema:
    return pa.schema([pa.field("hash", pa.string()), pa.field("vector", pa.list_(pa.float32(), dim))])


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    vals = list(values)
    return f"{column} IN ({', '.join(_sql_str(v) for v in vals)})" if vals else "false"


class CodeStore:
    """One code index folder. Open with `CodeStore.open` (reader) or `CodeStore.create_or_open` (writer)."""

    def __init__(self, index_dir: Path, db: Any, meta: dict[str, Any]) -> None:
        self.index_dir = index_dir
        self.db = db
        self.meta = meta

    # -- opening ----------------------------------------------------------------------------------------------
    @staticmethod
    def meta_path(index_dir: Path) -> Path:
        return index_dir / "meta.json"

    @classmethod
    def read_meta(cls, index_dir: Path) -> dict[str, Any] | None:
        try:
            return json.loads(cls.meta_path(index_dir).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UserError(
                f"index manifest {cls.meta_path(index_dir)} is unreadable ({exc}): run `mcp-router index --rebuild`"
            ) from None

    @classmethod
    def open(cls, index_dir: Path, db: Any = None) -> "CodeStore":
        """Open an existing index for reading; `UserError` if there is none."""
        meta = cls.read_meta(index_dir)
        if meta is None or CHUNKS not in _table_names(db or _connect(index_dir)):
            raise UserError(
                f"no code index at {index_dir}: run `mcp-router index` in the repository (or call the reindex tool)"
            )
        return cls(index_dir, db or _connect(index_dir), meta)

    @classmethod
    def create_or_open(cls, index_dir: Path, model_id: str, dim: int, root: Path, db: Any = None,
                       rebuild: bool = False) -> tuple["CodeStore", bool]:
        """Open for writing. Returns ``(store, rebuilt)``; rebuilt is True when a model change or ``rebuild`` wiped it."""
        index_dir.mkdir(parents=True, exist_ok=True)
        _write_gitignore(index_dir)
        meta = cls.read_meta(index_dir) if not rebuild else None
        db = db or _connect(index_dir)
        rebuilt = False
        if rebuild or meta is None or meta.get("model_id") != model_id or meta.get("dim") != dim \
                or meta.get("schema") != SCHEMA_VERSION:
            rebuilt = meta is not None or rebuild
            for name in (CHUNKS, FILES):
                if name in _table_names(db):
                    db.drop_table(name)
            if VECTORS in _table_names(db) and (meta is None or meta.get("model_id") != model_id
                                                or meta.get("dim") != dim):
                db.drop_table(VECTORS)
            meta = {"schema": SCHEMA_VERSION, "model_id": model_id, "dim": dim, "root": str(root),
                    "created": time.time(), "last_indexed": None}
            _atomic_write_json(cls.meta_path(index_dir), meta)
        names = _table_names(db)
        if CHUNKS not in names:
            db.create_table(CHUNKS, schema=chunk_schema(dim))
        if FILES not in names:
            db.create_table(FILES, schema=FILE_SCHEMA)
        if VECTORS not in names:
            db.create_table(VECTORS, schema=vector_schema(dim))
        return cls(index_dir, db, meta), rebuilt

    def table(self, name: str) -> Any:
        return self.db.open_table(name)

    # -- reading ----------------------------------------------------------------------------------------------
    def file_rows(self) -> dict[str, dict[str, Any]]:
        """Every indexed file's record, by path."""
        tbl = self.table(FILES).to_arrow()
        return {row["path"]: row for row in tbl.to_pylist()}

    def known_vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors for the given content hashes (from the ``vectors`` table)."""
        wanted = list(set(hashes))
        out: dict[str, np.ndarray] = {}
        tbl = self.table(VECTORS)
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = tbl.search().where(sql_in("hash", part)).select(["hash", "vector"]).limit(len(part) * 4 + 10).to_arrow()
            if rows.num_rows:
                vecs = np.asarray(rows.column("vector").combine_chunks().flatten()).reshape(rows.num_rows, -1)
                for h, v in zip(rows.column("hash").to_pylist(), vecs):
                    out[h] = v
        return out

    def count(self, name: str = CHUNKS) -> int:
        return self.table(name).count_rows()

    # -- writing ----------------------------------------------------------------------------------------------
    def add_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        if not hashes:
            return
        data = pa.table({"hash": hashes, "vector": _fixed_list(vectors)}, schema=vector_schema(vectors.shape[1]))
        (self.table(VECTORS).merge_insert("hash").when_not_matched_insert_all().execute(data))

    def replace_files(self, paths: list[str], chunk_rows: pa.Table, file_rows: list[dict[str, Any]]) -> None:
        """Atomically replace the chunks of ``paths`` (one commit), then record the files (the commit record).

        Paths with no row in ``file_rows`` are deleted from the index; rows of other paths are upserted.
        """
        chunks = self.table(CHUNKS)
        if paths:
            (
                chunks.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(sql_in("path", paths))
                .execute(chunk_rows)
            )
        files = self.table(FILES)
        if paths or file_rows:  # file_rows alone: records refreshed after a touch (same content, new mtime)
            new = pa.Table.from_pylist(file_rows, schema=FILE_SCHEMA)
            (
                files.merge_insert("path")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(sql_in("path", paths))
                .execute(new)
            )

    def finish(self, changed: bool, ann_min_rows: int) -> None:
        """After a run: refresh the keyword index, build the ANN index on big tables, compact old versions."""
        from lancedb.index import FTS

        chunks = self.table(CHUNKS)
        names = {idx.name for idx in chunks.list_indices()}
        if "search_text_idx" not in names:
            chunks.create_index(
                "search_text",
                config=FTS(with_position=False, base_tokenizer="simple", lower_case=True, stem=True,
                           remove_stop_words=True, ascii_folding=True),
            )
            changed = True
        n = chunks.count_rows()
        if n >= ann_min_rows and "vector_idx" not in names:
            chunks.create_index(
                metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ",
                num_partitions=max(1, n // 4096),
            )
        if changed:
            from datetime import timedelta

            # Compact small fragments and drop versions older than a minute: enough for readers in other processes
            # to finish the query they started on an old version, while keeping disk use flat.
            for name in (CHUNKS, FILES, VECTORS):
                self.table(name).optimize(cleanup_older_than=timedelta(seconds=60))
        self.meta["last_indexed"] = time.time()
        _atomic_write_json(self.meta_path(self.index_dir), self.meta)

    def disk_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.index_dir):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
        return total


def _fixed_list(vectors: np.ndarray) -> pa.FixedSizeListArray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])


def chunk_table(rows: dict[str, list[Any]], vectors: np.ndarray, dim: int) -> pa.Table:
    """Build the arrow table of a batch of chunk rows (column lists) plus their vectors."""
    cols = dict(rows)
    cols["vector"] = _fixed_list(vectors) if len(vectors) else pa.array([], pa.list_(pa.float32(), dim))
    return pa.table(cols, schema=chunk_schema(dim))


def _connect(index_dir: Path) -> Any:
    from datetime import timedelta

    import lancedb

    # Check for newer table versions on every read: a long-lived server must see what the indexer just wrote.
    return lancedb.connect(str(index_dir), read_consistency_interval=timedelta(0))


def _table_names(db: Any) -> list[str]:
    res = db.list_tables()
    names = getattr(res, "tables", res)
    return list(names)


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _write_gitignore(index_dir: Path) -> None:
    """The index folder ignores itself, so it never lands in git even without a root .gitignore entry."""
    gi = index_dir / ".gitignore"
    if not gi.exists():
        gi.write_text("*\n")


def remove_index(index_dir: Path) -> None:
    shutil.rmtree(index_dir, ignore_errors=True)

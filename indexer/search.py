"""Hybrid code search over the store: dense + BM25 candidates, fused by normalised scores, identifier-aware.

Plain reciprocal-rank fusion of BM25 and dense falls *below* dense alone on natural-language code search (BM25 ranks
are noisy), so fusion here is score-based: every candidate gets its exact cosine (vectors of BM25-only candidates
are read back), and BM25 adds a small, max-normalised bonus. A query that is an identifier (``parse_duration``,
``Session.send``) puts chunks that *define* that symbol first.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from indexer.chunker import split_symbols
from indexer.encoder import Encoder
from indexer.errors import UserError
from indexer.store import CHUNKS, CodeStore, _sql_str, split_identifiers

MODES = ("hybrid", "dense", "bm25")
IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:\.|::|#|->)[A-Za-z_$][\w$]*)*(?:\(\))?$")


@dataclass
class Weights:
    """Fusion weights (fitted on the CoSQA dev split, see benchmarks/bench_cosqa.py)."""

    bm25: float = 0.1
    identifier: float = 1.0
    candidates: int = 60


@dataclass
class SearchHit:
    path: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    score: float
    code: str
    truncated: bool = False
    parent: str = ""
    match: str = ""  # why it ranked: "definition", "dense", "keyword", "dense+keyword"


@dataclass
class SearchPage:
    query: str
    mode: str
    hits: list[SearchHit] = field(default_factory=list)
    offset: int = 0
    next_offset: int | None = None
    total_candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- pure scoring ---------------------------------------------------------------------------------------------
def is_identifier_query(query: str) -> bool:
    q = query.strip().strip("`")
    return bool(q) and " " not in q and bool(IDENTIFIER.match(q))


def identifier_symbol(query: str) -> str:
    """``Session::send()`` → ``session.send`` (the lower-cased, dot-qualified form stored in ``symbol_lc``)."""
    q = query.strip().strip("`").removesuffix("()")
    return re.sub(r"::|#|->", ".", q).lower()


def fuse_scores(cosine: np.ndarray, bm25: np.ndarray, definition: np.ndarray, weights: Weights,
                mode: str) -> np.ndarray:
    """Combine per-candidate scores. ``bm25`` is raw (0 when absent), normalised here by its max."""
    bm = bm25 / bm25.max() if bm25.size and bm25.max() > 0 else np.zeros_like(bm25)
    if mode == "dense":
        base = cosine
    elif mode == "bm25":
        base = bm
    else:
        base = cosine + weights.bm25 * bm
    return base + weights.identifier * definition


def apply_budget(hits: list[SearchHit], max_chars: int) -> list[SearchHit]:
    """Keep whole hits while they fit; cut the first one that does not, visibly, and stop there."""
    out: list[SearchHit] = []
    used = 0
    for hit in hits:
        size = len(hit.code) + len(hit.path) + 80
        if used + size <= max_chars:
            out.append(hit)
            used += size
            continue
        room = max_chars - used - len(hit.path) - 200
        if room > 200 or not out:
            lines = hit.code.splitlines()
            kept, n = [], 0
            for line in lines:
                if n + len(line) + 1 > max(room, 200):
                    break
                kept.append(line)
                n += len(line) + 1
            cut_at = hit.start_line + len(kept)
            hit.code = "\n".join(kept) + (
                f"\n… [truncated: lines {cut_at}-{hit.end_line} not shown; read {hit.path}:{cut_at}-{hit.end_line}]"
            )
            hit.truncated = True
            out.append(hit)
        break
    return out


# -- search ---------------------------------------------------------------------------------------------------
def search(
    store: CodeStore,
    encoder: Encoder,
    query: str,
    *,
    k: int = 10,
    offset: int = 0,
    path_glob: str | None = None,
    language: str | None = None,
    mode: str = "hybrid",
    max_chars: int = 24_000,
    weights: Weights | None = None,
) -> SearchPage:
    """Search the code index. Returns one page of hits (``offset``/``k``) within ``max_chars``."""
    query = query.strip()
    if not query:
        raise UserError("the search query is empty: describe the code you are looking for, or give an identifier")
    if mode not in MODES:
        raise UserError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    if k < 1 or k > 100:
        raise UserError("k must be between 1 and 100")
    if offset < 0:
        raise UserError("offset must be 0 or more")
    weights = weights or Weights()
    tbl = store.table(CHUNKS)
    where = _where(language, path_glob)
    n_cand = max(weights.candidates, (offset + k) * 3)
    fetch = n_cand * (4 if path_glob else 1)
    cols = ["id", "path", "language", "start_line", "end_line", "symbol", "kind", "parent", "text", "vector"]

    rows: dict[str, dict[str, Any]] = {}
    bm25: dict[str, float] = {}
    qvec = encoder.encode_one(query) if mode != "bm25" else None
    if qvec is not None:
        q = tbl.search(qvec, vector_column_name="vector").distance_type("cosine").select(cols + ["_distance"])
        q = q.limit(fetch)
        if where:
            q = q.where(where, prefilter=True)
        for r in q.to_list():
            rows[r["id"]] = r
    if mode != "dense":
        fts_query = _fts_query(query)
        if fts_query:
            try:
                q = tbl.search(fts_query, query_type="fts", fts_columns="search_text").select(cols + ["_score"])
                q = q.limit(fetch)
                if where:
                    q = q.where(where, prefilter=True)
                for r in q.to_list():
                    bm25[r["id"]] = float(r["_score"])
                    rows.setdefault(r["id"], r)
            except Exception:  # noqa: BLE001 - no FTS index yet (empty table) means no keyword candidates
                pass
    definition_ids: set[str] = set()
    if is_identifier_query(query):
        sym = identifier_symbol(query)
        tail = sym.rsplit(".", 1)[-1]
        q = tbl.search().where(f"({_symbol_condition(sym)}) AND ({where})" if where else _symbol_condition(sym))
        for r in q.select(cols).limit(50).to_list():
            rows.setdefault(r["id"], r)
            names = [n.lower() for n in split_symbols(r["symbol"])]
            if any(n == sym or n.endswith("." + sym) or ("." in sym and n == tail) for n in names):
                definition_ids.add(r["id"])

    if path_glob:
        rows = {i: r for i, r in rows.items() if _glob_match(r["path"], path_glob)}
    ids = list(rows)
    if not ids:
        return SearchPage(query=query, mode=mode, offset=offset)
    vecs = np.asarray([rows[i]["vector"] for i in ids], dtype=np.float32)
    cos = vecs @ qvec if qvec is not None else np.zeros(len(ids), dtype=np.float32)
    bm = np.asarray([bm25.get(i, 0.0) for i in ids], dtype=np.float32)
    if mode == "bm25":
        keep = bm > 0
        keep |= np.asarray([i in definition_ids for i in ids])
        ids = [i for i, kf in zip(ids, keep) if kf]
        cos, bm = cos[keep], bm[keep]
    defs = np.asarray([1.0 if i in definition_ids else 0.0 for i in ids], dtype=np.float32)
    scores = fuse_scores(cos, bm, defs, weights, mode)
    order = np.argsort(-scores, kind="stable")
    page_ids = order[offset : offset + k]
    hits = []
    for j in page_ids:
        r = rows[ids[j]]
        why = "definition" if defs[j] else ("dense+keyword" if bm[j] > 0 and mode != "bm25" else
                                           "keyword" if bm[j] > 0 else "dense")
        hits.append(SearchHit(path=r["path"], start_line=int(r["start_line"]), end_line=int(r["end_line"]),
                              symbol=r["symbol"], kind=r["kind"], language=r["language"], score=round(float(scores[j]), 4),
                              code=r["text"], parent=r["parent"], match=why))
    hits = apply_budget(hits, max_chars)
    shown = offset + len(hits)
    return SearchPage(query=query, mode=mode, hits=hits, offset=offset,
                      next_offset=shown if shown < len(ids) else None, total_candidates=len(ids))


def _symbol_condition(sym: str) -> str:
    """SQL matching chunks that define ``sym``: alone, qualified (``x.sym``), or in a merged list (``a, sym, b``)."""
    names = [sym] + ([sym.rsplit(".", 1)[-1]] if "." in sym else [])
    parts = []
    for n in names:
        for pat in (n, f"%.{n}", f"{n}, %", f"%.{n}, %", f"%, {n}", f"%, {n}, %"):
            parts.append(f"symbol_lc {'=' if pat == n else 'LIKE'} {_sql_str(pat)}")
    return " OR ".join(parts)


def _fts_query(query: str) -> str:
    """Words of the query plus split identifiers, without FTS syntax characters."""
    words = re.findall(r"[A-Za-z0-9_]+", query)
    extra = split_identifiers(query).split()
    return " ".join(dict.fromkeys(w.lower() for w in words + extra))


def _glob_match(path: str, glob: str) -> bool:
    if fnmatch.fnmatchcase(path, glob):
        return True
    if glob.endswith("/"):
        return path.startswith(glob)
    # "src" or "src/**" style folder filters, and "*.py" matching at any depth.
    return path.startswith(glob.rstrip("*").rstrip("/") + "/") or ("/" not in glob and fnmatch.fnmatchcase(
        path.rsplit("/", 1)[-1], glob))


def _where(language: str | None, path_glob: str | None) -> str:
    parts = []
    if language:
        parts.append(f"language = {_sql_str(language.lower())}")
    if path_glob:
        prefix = re.split(r"[*?\[]", path_glob, maxsplit=1)[0]
        if prefix and "/" in prefix:
            parts.append(f"path LIKE {_sql_str(prefix.replace('%', '').replace('_', '_') + '%')}")
    return " AND ".join(parts)

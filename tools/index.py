"""The tool index: embedded tool definitions persisted in LanceDB, and the in-memory snapshot the filter reads.

What this module owns:
- the LanceDB table ``tools`` (one row per ``(server, name)``: original definition, definition hash, embedded text,
  vector) and ``tool_sources`` (what was indexed: catalogue files and downstream servers, with fetch times),
  both in the per-repository store whose connection the caller passes in (``App.db()``);
- incremental sync: only tools whose definition hash (or the model) changed are re-embedded; tools a server no longer
  lists are dropped; tools of other servers are left alone;
- TTL refresh of downstream servers;
- `CatalogSnapshot`: vectors, BM25F postings and token counts as numpy arrays, which `ToolIndex.filter` scores in
  well under a millisecond for a few thousand tools (the query encode is separate).

It depends on `indexer` (the encoder) and `tools.catalog`/`tools.filter`, never on `mcp_router`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from indexer.errors import UserError
from tools.catalog import (
    CatalogLoad,
    CatalogProblem,
    ServerSpec,
    ToolDef,
    embed_text,
    estimate_tokens,
    fetch_servers,
    is_stale,
    read_catalog_file,
    tool_fields,
)
from tools.filter import (
    FilterOutcome,
    FilterWeights,
    KeywordIndex,
    build_keyword_index,
    dense_scores,
    expand_abbreviations,
    filter_scores,
    keyword_scores,
    query_terms,
)

log = logging.getLogger(__name__)

TOOLS_TABLE = "tools"
SOURCES_TABLE = "tool_sources"
DEFAULT_TTL_SECONDS = 3600.0


# ---------------------------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class FilterSettings:
    """Per-repository defaults, read from ``[tool.mcp-router.tools]`` (every key optional)::

        [tool.mcp-router.tools]
        k = 5                      # tools returned per query
        min_score = 0.4            # the bar; below it the answer is "no tool needed"
        pinned = ["git/git_status"]  # always returned (globs on server/name or name)
        allow = ["git/*", "filesystem/*"]  # if set, only these can be returned
        deny = ["*delete*"]        # never returned
        ttl_seconds = 3600         # re-list downstream servers older than this (0 = never)
    """

    k: int = 5
    min_score: float | None = None
    pinned: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    ttl_seconds: float = DEFAULT_TTL_SECONDS

    @classmethod
    def from_table(cls, table: dict[str, Any] | None) -> "FilterSettings":
        t = {k.replace("-", "_"): v for k, v in (table or {}).items()}
        known = {"k", "min_score", "pinned", "allow", "deny", "ttl_seconds"}
        bad = sorted(set(t) - known)
        if bad:
            raise UserError(f"unknown setting(s) {', '.join(bad)} in [tool.mcp-router.tools]: use "
                            f"{', '.join(sorted(known))}")

        def globs(key: str) -> tuple[str, ...]:
            v = t.get(key, ())
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                raise UserError(f"[tool.mcp-router.tools] {key} must be a list of strings such as [\"git/*\"]")
            return tuple(v)

        try:
            return cls(
                k=int(t.get("k", 5)),
                min_score=None if t.get("min_score") is None else float(t["min_score"]),
                pinned=globs("pinned"), allow=globs("allow"), deny=globs("deny"),
                ttl_seconds=float(t.get("ttl_seconds", DEFAULT_TTL_SECONDS)),
            )
        except (TypeError, ValueError) as exc:
            raise UserError(f"bad value in [tool.mcp-router.tools]: {exc}; k is an integer, min_score and "
                            "ttl_seconds are numbers") from None


# ---------------------------------------------------------------------------------------------------------------
# results


@dataclass
class SyncReport:
    """What an index or refresh run did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    servers_fetched: list[str] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class FilteredTool:
    """One tool in a filter answer: where it comes from, its original definition unchanged, score and reason."""

    server: str
    name: str
    score: float
    reason: str
    pinned: bool
    definition: dict[str, Any]
    estimated_tokens: int

    @property
    def key(self) -> str:
        return f"{self.server}/{self.name}"


@dataclass
class FilterResponse:
    """The answer to one query."""

    query: str
    tools: list[FilteredTool]
    no_tool_needed: bool
    best_score: float
    min_score: float
    catalogue_tools: int
    catalogue_tokens: int
    returned_tokens: int
    encode_ms: float
    filter_ms: float
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_saved(self) -> int:
        return max(0, self.catalogue_tokens - self.returned_tokens)


# ---------------------------------------------------------------------------------------------------------------
# keyword fields


def enum_values(tool: ToolDef, limit: int = 64) -> list[str]:
    """The allowed values (``enum``) of the tool's top-level parameters and of their array items, in order."""
    props = tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
    out: list[str] = []
    if not isinstance(props, dict):
        return out
    for spec in props.values():
        if not isinstance(spec, dict):
            continue
        items = spec.get("items")
        for src in (spec, items if isinstance(items, dict) else {}):
            values = src.get("enum")
            if isinstance(values, list):
                # booleans say nothing a request would name; strings and numbers do ("celsius", "1080")
                out += [str(v) for v in values
                        if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip()]
    return out[:limit]


def keyword_fields(tool: ToolDef) -> dict[str, str]:
    """The fields BM25F scores: `tool_fields` plus ``values``, the allowed values of the tool's parameters.

    An enum is vocabulary the tool accepts ("genre: Comedy, Thriller, ..."; "unit: celsius, fahrenheit"), so a request
    that names one of them ("a comedy", "in Fahrenheit") matches the tool that takes it. Its own field with a lower
    weight (`tools.filter.FIELD_WEIGHTS`), because enum values are often everyday words ("open", "all") that a
    request uses in another sense. Measured on BFCL (fit half / eval half): recall@1 +2.8 / +2.0, recall@5 +0.4 / +1.2;
    MCP catalogue: recall@1 +3.1, recall@5 unchanged (benchmarks/exp_tools_analysis.py). Only the in-memory keyword
    index reads it, so nothing is re-embedded.
    """
    fields = tool_fields(tool)
    fields["values"] = " ".join(enum_values(tool))
    return fields


# ---------------------------------------------------------------------------------------------------------------
# snapshot


@dataclass
class CatalogSnapshot:
    """Everything the filter needs, in memory."""

    tools: list[ToolDef]
    vectors: np.ndarray  # (n, dim) embedded text (name words, server, description, parameters)
    keyword: KeywordIndex
    tokens: np.ndarray  # (n,) estimated prompt tokens of each definition
    keys: list[str]
    names: list[str]
    version: Any = None

    @classmethod
    def build(cls, tools: Sequence[ToolDef], vectors: np.ndarray, version: Any = None) -> "CatalogSnapshot":
        tools = list(tools)
        docs = [keyword_fields(t) for t in tools]
        return cls(
            tools=tools,
            vectors=np.ascontiguousarray(vectors, dtype=np.float32),
            keyword=build_keyword_index(docs),
            tokens=np.array([estimate_tokens(t.definition) for t in tools], dtype=np.int64),
            keys=[t.key for t in tools],
            names=[t.name for t in tools],
            version=version,
        )

    def __len__(self) -> int:
        return len(self.tools)

    def score(self, query_vec: np.ndarray, terms: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Component scores (dense cosine, BM25F) of every tool: one mat-vec and one bincount."""
        dense = dense_scores(self.vectors, query_vec)
        lex, _ = keyword_scores(self.keyword, terms)
        return dense, lex

    def run(self, query_vec: np.ndarray, terms: dict[str, float], *, k: int = 5,
            weights: FilterWeights = FilterWeights(), min_score: float | None = None,
            pinned: Iterable[str] = (), allow: Iterable[str] = (), deny: Iterable[str] = (),
            query_text: str = "") -> FilterOutcome:
        """Score and pick: the in-memory part of a filter call (no encoding, no I/O)."""
        dense, lex = self.score(query_vec, terms)
        return filter_scores(dense, lex, keys=self.keys, names=self.names, tokens=self.tokens, terms=terms,
                             keyword_index=self.keyword, k=k, weights=weights, min_score=min_score,
                             pinned=pinned, allow=allow, deny=deny, query_text=query_text)


def build_query_vector(encoder: Any, query: str, context: str | None, context_weight: float) -> np.ndarray:
    """The query vector; a context (recent conversation, previous tool calls) is blended in with a small weight."""
    if context and context.strip():
        vecs = encoder.encode([query, context[-2000:]])
        v = vecs[0] + context_weight * vecs[1]
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
    return encoder.encode_one(query)


# ---------------------------------------------------------------------------------------------------------------
# the persisted index


class ToolIndex:
    """The tool catalogue of one store. ``db`` is a LanceDB connection (``App.db()``), ``encoder`` the shared encoder."""

    def __init__(self, db: Any, encoder: Any, *, settings: FilterSettings | None = None,
                 weights: FilterWeights | None = None) -> None:
        self.db = db
        self.encoder = encoder
        self.settings = settings or FilterSettings()
        self.weights = weights or FilterWeights()
        self._snapshot: CatalogSnapshot | None = None
        self._lock = threading.RLock()

    # -- storage ----------------------------------------------------------------------------------------------
    def _table(self, name: str) -> Any | None:
        try:
            return self.db.open_table(name)
        except (FileNotFoundError, ValueError):
            return None
        except Exception as exc:  # noqa: BLE001 - lancedb raises various types for a missing table
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise

    def _rows(self) -> list[dict[str, Any]]:
        tbl = self._table(TOOLS_TABLE)
        if tbl is None:
            return []
        return tbl.to_arrow().to_pylist()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        dim = self.encoder.dim
        schema = pa.schema([
            ("key", pa.string()), ("server", pa.string()), ("name", pa.string()), ("hash", pa.string()),
            ("fmt", pa.string()), ("definition", pa.string()), ("text", pa.string()), ("model", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("updated_at", pa.float64()),
        ])
        table = pa.Table.from_pylist(rows, schema=schema)
        # One overwrite per sync: a catalogue is small (thousands of rows), and this keeps one table version per
        # change instead of the delete+add pairs that bloat LanceDB datasets.
        self.db.create_table(TOOLS_TABLE, table, mode="overwrite")
        with self._lock:
            self._snapshot = None

    def _sources(self) -> list[dict[str, Any]]:
        tbl = self._table(SOURCES_TABLE)
        return tbl.to_arrow().to_pylist() if tbl is not None else []

    def _write_sources(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        schema = pa.schema([("source", pa.string()), ("kind", pa.string()), ("server", pa.string()),
                            ("spec", pa.string()), ("fetched_at", pa.float64())])
        self.db.create_table(SOURCES_TABLE, pa.Table.from_pylist(rows, schema=schema), mode="overwrite")

    # -- sync -------------------------------------------------------------------------------------------------
    def sync(self, load: CatalogLoad) -> SyncReport:
        """Bring the stored catalogue in line with ``load``: for every server ``load`` holds in full, its tools become
        exactly ``load``'s (new and changed ones embedded, vanished ones removed). Other servers are untouched."""
        report = SyncReport(problems=list(load.problems))
        with self._lock:
            existing = {r["key"]: r for r in self._rows()}
            model = self.encoder.model_id
            incoming: dict[str, ToolDef] = {}
            for t in load.tools:
                if t.key in incoming:
                    report.problems.append(CatalogProblem(t.server, t.name, "listed twice in this run; kept the first"))
                    continue
                incoming[t.key] = t
            keep = {k: r for k, r in existing.items() if r["server"] not in load.complete_servers}
            todo: list[ToolDef] = []
            for key, t in incoming.items():
                old = existing.get(key)
                if old is not None and old["hash"] == t.definition_hash and old["model"] == model:
                    keep[key] = old
                    report.unchanged += 1
                else:
                    todo.append(t)
                    if old is None:
                        report.added += 1
                    else:
                        report.updated += 1
            report.removed = sum(1 for k, r in existing.items()
                                 if r["server"] in load.complete_servers and k not in incoming)
            if todo:
                texts = [embed_text(t) for t in todo]
                vecs = self.encoder.encode(texts)
                now = time.time()
                for t, text, v in zip(todo, texts, vecs):
                    keep[t.key] = {
                        "key": t.key, "server": t.server, "name": t.name, "hash": t.definition_hash, "fmt": t.fmt,
                        "definition": json.dumps(t.definition, ensure_ascii=False), "text": text, "model": model,
                        "vector": v.astype(np.float32).tolist(),
                        "updated_at": now,
                    }
                report.embedded = len(todo)
            if report.changed or self._table(TOOLS_TABLE) is None:
                self._write(sorted(keep.values(), key=lambda r: r["key"]))
        return report

    def index_catalogs(self, paths: Sequence[str | Path], *, timeout: float = 60.0) -> SyncReport:
        """Index catalogue files: tool listings (server = file stem) and ``mcpServers`` files (servers are started or
        called, and their tools listed). Their sources are remembered for `refresh`."""
        load = CatalogLoad()
        sources = {r["source"]: r for r in self._sources()}
        now = time.time()
        for p in paths:
            path = Path(p).expanduser().resolve()
            got = read_catalog_file(path)
            load.extend(got)
            for server in got.complete_servers:
                sources[f"file:{path}#{server}"] = {"source": f"file:{path}#{server}", "kind": "file",
                                                    "server": server, "spec": str(path), "fetched_at": now}
        fetched = self._fetch(load.servers, timeout)
        load.extend(fetched)
        for spec in load.servers:
            if spec.name in fetched.complete_servers:
                sources[f"server:{spec.name}"] = {"source": f"server:{spec.name}", "kind": "server",
                                                  "server": spec.name, "spec": json.dumps(spec.to_json()),
                                                  "fetched_at": now}
        report = self.sync(load)
        report.servers_fetched = sorted(fetched.complete_servers)
        self._write_sources(sorted(sources.values(), key=lambda r: r["source"]))
        return report

    def _fetch(self, specs: Sequence[ServerSpec], timeout: float) -> CatalogLoad:
        if not specs:
            return CatalogLoad()
        import anyio

        return anyio.run(fetch_servers, list(specs), timeout)

    def refresh(self, *, force: bool = False, timeout: float = 60.0, now: float | None = None) -> SyncReport:
        """Re-list downstream servers whose listing is older than the TTL (all of them with ``force``) and re-index
        what changed. Catalogue files are re-read when their modification time is newer than the last read."""
        ttl = self.settings.ttl_seconds
        now = time.time() if now is None else now
        rows = self._sources()
        specs: list[ServerSpec] = []
        load = CatalogLoad()
        touched: set[str] = set()
        for r in rows:
            if r["kind"] == "server" and (force or is_stale(r["fetched_at"], ttl, now)):
                spec = json.loads(r["spec"])
                specs.append(ServerSpec(name=r["server"], command=spec.get("command"),
                                        args=tuple(spec.get("args", [])),
                                        env=tuple(sorted((spec.get("env") or {}).items())), cwd=spec.get("cwd"),
                                        url=spec.get("url")))
            elif r["kind"] == "file":
                path = Path(r["spec"])
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue  # a vanished file keeps its last tools: deleting tools on a typo'd mount is worse
                if force or mtime > r["fetched_at"]:
                    got = read_catalog_file(path)
                    sub = CatalogLoad(tools=[t for t in got.tools if t.server == r["server"]],
                                      problems=got.problems, complete_servers={r["server"]} & got.complete_servers)
                    load.extend(sub)
                    touched.add(r["source"])
        fetched = self._fetch(specs, timeout)
        load.extend(fetched)
        if not specs and not touched:
            return SyncReport()
        report = self.sync(load)
        report.servers_fetched = sorted(fetched.complete_servers)
        for r in rows:
            if r["source"] in touched or (r["kind"] == "server" and r["server"] in fetched.complete_servers):
                r["fetched_at"] = now
        self._write_sources(rows)
        return report

    async def refresh_async(self, **kwargs: Any) -> SyncReport:
        """`refresh` from async code (the MCP server): runs in a worker thread with its own event loop."""
        import anyio

        return await anyio.to_thread.run_sync(lambda: self.refresh(**kwargs))

    # -- reading ----------------------------------------------------------------------------------------------
    def snapshot(self) -> CatalogSnapshot:
        """The in-memory catalogue, reloaded when the table changed on disk (e.g. another process indexed)."""
        with self._lock:
            tbl = self._table(TOOLS_TABLE)
            version = tbl.version if tbl is not None else None
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
            rows = tbl.to_arrow().to_pylist() if tbl is not None else []
            model = self.encoder.model_id
            stale = [r["key"] for r in rows if r["model"] != model]
            if stale:
                raise UserError(f"the tool index was built with another embedding model ({rows[0]['model']}); run "
                                "`mcp-router tools index` again with the current model")
            tools = [_row_tool(r) for r in rows]
            dim = len(rows[0]["vector"]) if rows else 0
            vecs = np.array([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), dim)
            self._snapshot = CatalogSnapshot.build(tools, vecs, version)
            return self._snapshot

    def list_tools(self) -> list[ToolDef]:
        return list(self.snapshot().tools)

    def sources(self) -> list[dict[str, Any]]:
        return self._sources()

    def filter(self, query: str, k: int | None = None, context: str | None = None, *,
               min_score: float | None = None, pinned: Iterable[str] | None = None,
               allow: Iterable[str] | None = None, deny: Iterable[str] | None = None) -> FilterResponse:
        """The few tools ``query`` needs (or none). Unset arguments fall back to the repository's settings."""
        if not query or not query.strip():
            raise UserError("the query is empty: pass the user's request (or the task) as the query")
        snap = self.snapshot()
        if len(snap) == 0:
            raise UserError("no tools are indexed: run `mcp-router tools index CATALOG.json` first (a tools/list "
                            "JSON, an OpenAI tools array, or an mcpServers file)")
        s = self.settings
        t0 = time.perf_counter()
        expanded = expand_abbreviations(query)
        qv = build_query_vector(self.encoder, expanded, context, self.weights.context_weight)
        t1 = time.perf_counter()
        terms = query_terms(expanded, context or "", self.weights.context_weight)
        out = snap.run(qv, terms, k=s.k if k is None else k, weights=self.weights,
                       min_score=s.min_score if min_score is None else min_score,
                       pinned=s.pinned if pinned is None else pinned, allow=s.allow if allow is None else allow,
                       deny=s.deny if deny is None else deny, query_text=expanded)
        t2 = time.perf_counter()
        return FilterResponse(
            query=query,
            tools=[FilteredTool(snap.tools[t.index].server, snap.tools[t.index].name, round(t.score, 4), t.reason,
                                t.pinned, snap.tools[t.index].definition, int(snap.tokens[t.index]))
                   for t in out.tools],
            no_tool_needed=out.no_tool_needed,
            best_score=round(out.best_score, 4),
            min_score=out.min_score,
            catalogue_tools=out.catalogue_tools,
            catalogue_tokens=out.catalogue_tokens,
            returned_tokens=out.returned_tokens,
            encode_ms=(t1 - t0) * 1000,
            filter_ms=(t2 - t1) * 1000,
            notes=out.notes,
        )


def _row_tool(r: dict[str, Any]) -> ToolDef:
    from tools.catalog import parse_tools

    got = parse_tools([json.loads(r["definition"])], r["server"], "index")
    if got.tools:
        return got.tools[0]
    # Stored rows were valid when indexed; keep the row usable even if parsing rules tighten later.
    d = json.loads(r["definition"])
    return ToolDef(r["server"], r["name"], str(d.get("description", "")), {}, d, fmt=r["fmt"])


def open_tool_index(db: Any, encoder: Any, tools_config: dict[str, Any] | None = None) -> ToolIndex:
    """The tool index of a store, with the settings of ``[tool.mcp-router.tools]`` (the CLI and the server share it)."""
    return ToolIndex(db, encoder, settings=FilterSettings.from_table(tools_config))


def response_dict(resp: FilterResponse) -> dict[str, Any]:
    """A JSON-ready view of a filter answer (the shape of ``tools filter --json`` and of the MCP tool's result)."""
    return {
        "query": resp.query,
        "no_tool_needed": resp.no_tool_needed,
        "tools": [{"server": t.server, "name": t.name, "score": t.score, "why": t.reason, "pinned": t.pinned,
                   "estimated_tokens": t.estimated_tokens, "definition": t.definition} for t in resp.tools],
        "best_score": resp.best_score,
        "min_score": resp.min_score,
        "catalogue_tools": resp.catalogue_tools,
        "catalogue_tokens": resp.catalogue_tokens,
        "returned_tokens": resp.returned_tokens,
        "tokens_saved": resp.tokens_saved,
        "notes": resp.notes,
    }

"""`AnswerCache`: lookup, store, invalidation and stats of the semantic answer cache.

Lookup order (every step explains itself in the `LookupResult`):
1. an exact match on the normalised query, in the same partition;
2. the nearest neighbours in the same partition at or above the cosine threshold (one unit everywhere: cosine
   similarity in [0, 1]);
3. the verification guard (`guard.check_pair`) on each of those candidates, best first: the first one it accepts is
   the hit;
4. a freshness check of the chosen entry: if a file it depended on changed (sha256 of its bytes) or is gone, the
   entry is evicted and the lookup misses with the file's name.

A partition is (repository root, embedding model, tier, system-prompt hash, user scope): no answer crosses one.
Users share answers only when ``[tool.mcp-router.cache] share_across_users = true``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from indexer.errors import UserError
from mcp_router.cache.guard import check_pair, normalize_query
from mcp_router.cache.store import CacheEntry, Dependency, EntryStore, new_id

log = logging.getLogger(__name__)

#: Chosen from benchmarks/bench_cache_qqp.py (see docs/cache.md): the cosine gate for candidates.
DEFAULT_THRESHOLD = 0.90


@dataclass(frozen=True)
class CacheSettings:
    """The ``[tool.mcp-router.cache]`` table, with defaults."""

    threshold: float = DEFAULT_THRESHOLD
    ttl_seconds: float = 7 * 24 * 3600.0
    max_entries: int = 10_000
    max_answer_chars: int = 100_000
    share_across_users: bool = False
    candidates: int = 5
    cost_per_1k_tokens: float = 0.015  # USD, a typical output-token price; used only for the "cost saved" estimate

    @classmethod
    def from_config(cls, table: dict[str, Any] | None) -> "CacheSettings":
        table = {k.replace("-", "_"): v for k, v in (table or {}).items()}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise UserError(f"unknown cache setting(s) {', '.join(unknown)} in [tool.mcp-router.cache]: "
                            f"use {', '.join(sorted(known))}")
        try:
            settings = cls(**table)
        except TypeError as exc:  # pragma: no cover - guarded by the check above
            raise UserError(f"bad [tool.mcp-router.cache] table: {exc}") from None
        if not 0.0 <= float(settings.threshold) <= 1.0:
            raise UserError(f"cache threshold {settings.threshold} is not a cosine similarity in [0, 1]: fix "
                            "`threshold` in [tool.mcp-router.cache]")
        if settings.max_entries < 1 or settings.ttl_seconds <= 0 or settings.max_answer_chars < 1:
            raise UserError("cache max_entries, ttl_seconds and max_answer_chars must be positive: fix "
                            "[tool.mcp-router.cache]")
        return settings


@dataclass
class LookupResult:
    """What a lookup found. ``reason`` is one of: exact, semantic (hits); empty, below_threshold, guard, stale,
    expired (misses)."""

    hit: bool
    reason: str
    similarity: float | None = None
    entry_id: str | None = None
    answer: str | None = None
    refused_token: str | None = None
    stale_file: str | None = None
    refused_rule: str | None = None
    cached_query: str | None = None
    dependencies: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoreResult:
    """What a store did: ``stored`` is False (with ``reason``) for answers the cache never keeps, such as errors."""

    stored: bool
    entry_id: str | None
    reason: str
    dependencies: list[Dependency] = field(default_factory=list)
    evicted: int = 0


@dataclass
class CacheStats:
    entries: int
    lookups: int
    hits: int
    hits_exact: int
    hits_semantic: int
    misses: dict[str, int]
    hit_rate: float
    tokens_saved: int
    cost_saved_usd: float
    stores: int
    refused_stores: dict[str, int]
    invalidated: int
    evicted: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------------

_ERROR_PATTERNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"^\s*(?:\w+\.)*\w*(?:Error|Exception)\b\s*:", re.M),  # "ValueError: ...", "Error: ..."
    re.compile(r"^\s*(?:error|fatal|panic)\s*[:!]", re.I),
    re.compile(r"^\s*(?:I'm sorry|Sorry), (?:but )?(?:I|an error)", re.I),
    re.compile(r"^\s*(?:internal error|an error occurred|request failed|rate limit(?:ed)?|timed? ?out)\b", re.I),
]


def looks_like_error(answer: str) -> str | None:
    """Why ``answer`` looks like an error response (a traceback, ``Error: ...``), or None.

    Only the start of an answer is judged for the "Error:" forms: an answer that *explains* an error message further
    down is a real answer and may be cached.
    """
    head = answer.lstrip()[:400]
    if not head:
        return "the answer is empty"
    if _ERROR_PATTERNS[0].search(answer) and len(answer) < 4000 and answer.lstrip().startswith("Traceback"):
        return "the answer is a Python traceback"
    first_line = head.splitlines()[0] if head else ""
    for pat in _ERROR_PATTERNS[1:]:
        if pat.search(first_line):
            return f"the answer starts like an error message ({first_line[:60]!r})"
    return None


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters per token): enough for a 'tokens saved' estimate."""
    return max(1, len(text) // 4)


def partition_key(repo: str, model_id: str, tier: str, system_hash: str, user_scope: str) -> str:
    """One opaque key per (repo, model, tier, system prompt, user): entries never cross it."""
    raw = json.dumps([repo, model_id, tier, system_hash, user_scope])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------------------


class AnswerCache:
    """The answer cache of one repository (one `App`)."""

    def __init__(self, app: Any, settings: CacheSettings | None = None, *, encoder: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self._clock = clock  # injectable so TTL and LRU can be tested without sleeping
        self.root = Path(app.root).resolve()
        self.settings = settings or CacheSettings.from_config(getattr(app.config, "cache", {}))
        self._encoder = encoder
        self._store: EntryStore | None = None

    # -- plumbing ----------------------------------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self.app.encoder
        return self._encoder

    @property
    def store_(self) -> EntryStore:
        if self._store is None:
            # The dimension is only needed to create the table: stats/clear/invalidate never load the model.
            self._store = EntryStore(self.app.db(), Path(self.app.index_dir), lambda: self.encoder.dim)
        return self._store

    def _partition(self, tier: str | None, system_prompt: str | None, user: str | None) -> tuple[str, dict[str, str]]:
        if self.settings.share_across_users:
            scope = "*shared*"
        else:
            scope = user or os.environ.get("MCP_ROUTER_USER") or _current_user()
        parts = {
            "repo": str(self.root),
            "model_id": self.encoder.model_id,
            "tier": tier or "",
            "system_hash": hashlib.sha256(system_prompt.encode()).hexdigest()[:16] if system_prompt else "",
            "user_scope": scope,
        }
        return partition_key(**parts), parts

    def _rel_path(self, path: str | os.PathLike[str], *, must_exist: bool = True) -> tuple[str, Path]:
        p = Path(path).expanduser()
        full = (p if p.is_absolute() else self.root / p).resolve()
        try:
            rel = full.relative_to(self.root).as_posix()
        except ValueError:
            raise UserError(f"file {path} is outside the repository {self.root}: cached answers can only depend on "
                            "files inside it; pass a path relative to the repository root") from None
        if must_exist and not full.is_file():
            raise UserError(f"file {path} does not exist in {self.root}: pass the path (relative to the repository "
                            "root) of a file the answer relied on")
        return rel, full

    def _fresh(self, entry: CacheEntry) -> str | None:
        """The first dependency whose file changed or vanished since the answer was stored, or None."""
        for dep in entry.dependencies:
            full = self.root / dep.path
            try:
                if hash_file(full) != dep.sha256:
                    return dep.path
            except OSError:
                return dep.path
        return None

    def _expired(self, entry: CacheEntry, now: float) -> bool:
        return now - entry.created_at > self.settings.ttl_seconds

    # -- lookup ------------------------------------------------------------------------------------------------
    def lookup(self, query: str, *, tier: str | None = None, system_prompt: str | None = None,
               user: str | None = None) -> LookupResult:
        """Find a cached answer for ``query`` (see the module docstring for the order of checks)."""
        if not query or not query.strip():
            raise UserError("the query is empty: pass the user's question as `query`")
        result = self._lookup(query, tier=tier, system_prompt=system_prompt, user=user)
        counts: dict[str, float] = {"lookups": 1}
        if result.hit:
            counts[f"hit_{result.reason}"] = 1
            entry_tokens = estimate_tokens(result.answer or "")
            counts["tokens_saved"] = entry_tokens
            self.store_.usage.record_hit(result.entry_id or "", self._clock())
        else:
            counts[f"miss_{result.reason}"] = 1
        try:
            self.store_.usage.bump(counts)
        except Exception as exc:  # noqa: BLE001 - stats must never break a lookup
            log.warning("cache stats not updated: %s", exc)
        return result

    def _lookup(self, query: str, *, tier: str | None, system_prompt: str | None, user: str | None) -> LookupResult:
        store = self.store_
        partition, _ = self._partition(tier, system_prompt, user)
        norm = normalize_query(query)
        now = self._clock()
        exact = store.exact(partition, norm)
        if exact:
            return self._serve(exact[0], 1.0, "exact", now)
        vec = self.encoder.encode_one(query)
        candidates = store.nearest(partition, vec, max(1, self.settings.candidates))
        if not candidates:
            return LookupResult(False, "empty")
        above = [(e, s) for e, s in candidates if s >= self.settings.threshold]
        if not above:
            top, sim = candidates[0]
            return LookupResult(False, "below_threshold", similarity=round(sim, 4), entry_id=top.id,
                                cached_query=top.query)
        first_refusal: LookupResult | None = None
        for entry, sim in above:
            verdict = check_pair(entry.query, query)
            if not verdict.allowed:
                first_refusal = first_refusal or LookupResult(
                    False, "guard", similarity=round(sim, 4), entry_id=entry.id, refused_token=verdict.token,
                    refused_rule=verdict.rule, cached_query=entry.query)
                continue
            # The best acceptable candidate decides: if it is stale or expired the lookup misses (and says why)
            # rather than falling through to a weaker neighbour.
            return self._serve(entry, sim, "semantic", now)
        assert first_refusal is not None
        return first_refusal

    def _serve(self, entry: CacheEntry, sim: float, reason: str, now: float) -> LookupResult:
        """A hit for ``entry`` if it is unexpired and its files are unchanged; otherwise evict it and miss."""
        if self._expired(entry, now):
            self.store_.delete_ids([entry.id])
            self._bump_quiet({"evicted_ttl": 1})
            return LookupResult(False, "expired", similarity=round(sim, 4), entry_id=entry.id,
                                cached_query=entry.query)
        stale = self._fresh(entry)
        if stale is not None:
            self.store_.delete_ids([entry.id])
            self._bump_quiet({"invalidated": 1})
            return LookupResult(False, "stale", similarity=round(sim, 4), entry_id=entry.id, stale_file=stale,
                                cached_query=entry.query)
        return LookupResult(True, reason, similarity=round(sim, 4), entry_id=entry.id, answer=entry.answer,
                            cached_query=entry.query, dependencies=[d.path for d in entry.dependencies])

    # -- store -------------------------------------------------------------------------------------------------
    def store(self, query: str, answer: str, files: Sequence[str | os.PathLike[str]] | None = None, *,
              tier: str | None = None, system_prompt: str | None = None, user: str | None = None,
              is_error: bool = False) -> StoreResult:
        """Cache ``answer`` for ``query``, tied to the current content of ``files`` (paths inside the repo)."""
        if not query or not query.strip():
            raise UserError("the query is empty: pass the question the answer responds to as `query`")
        if answer is None or not str(answer).strip():
            raise UserError("the answer is empty: pass the final answer text as `answer`")
        if len(answer) > self.settings.max_answer_chars:
            raise UserError(f"the answer is {len(answer):,} characters, over the cache limit of "
                            f"{self.settings.max_answer_chars:,}: cache a shorter answer or raise `max_answer_chars` "
                            "in [tool.mcp-router.cache]")
        why = "the caller marked it as an error" if is_error else looks_like_error(answer)
        if why:
            self._bump_quiet({"refused_error": 1})
            return StoreResult(False, None, f"not cached: {why}; error answers are never cached")
        deps: list[Dependency] = []
        for f in files or []:
            rel, full = self._rel_path(f)
            deps.append(Dependency(rel, hash_file(full)))
        deps = list({d.path: d for d in deps}.values())
        partition, parts = self._partition(tier, system_prompt, user)
        now = self._clock()
        entry = CacheEntry(
            id=new_id(), partition=partition, norm_query=normalize_query(query), query=query.strip(), answer=answer,
            created_at=now, dependencies=deps, repo=parts["repo"], tier=parts["tier"],
            system_hash=parts["system_hash"], user_scope=parts["user_scope"], model_id=parts["model_id"],
            answer_tokens=estimate_tokens(answer), vector=self.encoder.encode_one(query),
        )
        store = self.store_
        older = [e.id for e in store.exact(partition, entry.norm_query)]
        store.add(entry)
        # Replace, not duplicate: the newer answer to the same question wins (added first, so never a gap).
        store.delete_ids([i for i in older if i != entry.id])
        evicted = self.evict()
        self._bump_quiet({"stores": 1})
        return StoreResult(True, entry.id, "stored", deps, evicted)

    # -- eviction and invalidation -----------------------------------------------------------------------------
    def evict(self, now: float | None = None) -> int:
        """Drop expired entries, then the least recently used ones above ``max_entries``. Returns how many."""
        store = self.store_
        now = self._clock() if now is None else now
        n = store.count()
        if n == 0:
            return 0
        cutoff = now - self.settings.ttl_seconds
        expired = [r["id"] for r in store.scan(["id"], where=f"created_at < {cutoff!r}")] if n else []
        removed = store.delete_ids(expired)
        over = n - removed - self.settings.max_entries
        lru_removed = 0
        if over > 0:
            rows = store.scan(["id", "created_at"])
            usage = store.usage.usage([r["id"] for r in rows])
            # Last use = last hit, or the store time for entries never hit.
            rows.sort(key=lambda r: usage.get(r["id"], (float(r["created_at"]), 0))[0])
            lru_removed = store.delete_ids([r["id"] for r in rows[:over]])
        if removed or lru_removed:
            self._bump_quiet({"evicted_ttl": removed, "evicted_lru": lru_removed})
        return removed + lru_removed

    def invalidate(self, paths: Iterable[str | os.PathLike[str]], *, only_changed: bool = False) -> int:
        """Evict every entry that depends on one of ``paths`` (files or folders, relative to the root or absolute).

        With ``only_changed`` (the watcher's mode), an entry is kept if the file's current bytes still match the hash
        it was stored with, so saving a file unchanged does not throw answers away.
        """
        targets = []
        for p in paths:
            rel, _full = self._rel_path(p, must_exist=False)
            targets.append(rel)
        if not targets:
            return 0
        rows = self.store_.scan(["id", "dependencies", "dep_paths"], where="dep_paths != ''")
        doomed = []
        for row in rows:
            deps = [Dependency(**d) for d in json.loads(row["dependencies"] or "[]")]
            for dep in deps:
                if any(dep.path == t or dep.path.startswith(t.rstrip("/") + "/") or t == "." for t in targets):
                    if only_changed:
                        full = self.root / dep.path
                        try:
                            if hash_file(full) == dep.sha256:
                                continue
                        except OSError:
                            pass
                    doomed.append(row["id"])
                    break
        n = self.store_.delete_ids(doomed)
        if n:
            self._bump_quiet({"invalidated": n})
        return n

    def clear(self) -> int:
        """Delete every entry and reset the counters. Returns how many entries were deleted."""
        return self.store_.delete_all()

    # -- stats -------------------------------------------------------------------------------------------------
    def stats(self) -> CacheStats:
        c = self.store_.usage.counters()
        hits_exact, hits_sem = int(c.get("hit_exact", 0)), int(c.get("hit_semantic", 0))
        lookups = int(c.get("lookups", 0))
        misses = {k[5:]: int(v) for k, v in sorted(c.items()) if k.startswith("miss_") and v}
        tokens = int(c.get("tokens_saved", 0))
        hits = hits_exact + hits_sem
        return CacheStats(
            entries=self.store_.count(), lookups=lookups, hits=hits, hits_exact=hits_exact, hits_semantic=hits_sem,
            misses=misses, hit_rate=round(hits / lookups, 4) if lookups else 0.0, tokens_saved=tokens,
            cost_saved_usd=round(tokens / 1000 * self.settings.cost_per_1k_tokens, 4), stores=int(c.get("stores", 0)),
            refused_stores={"error": int(c.get("refused_error", 0))}, invalidated=int(c.get("invalidated", 0)),
            evicted=int(c.get("evicted_ttl", 0) + c.get("evicted_lru", 0)),
        )

    def _bump_quiet(self, counts: dict[str, float]) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        try:
            self.store_.usage.bump(counts)
        except Exception as exc:  # noqa: BLE001
            log.warning("cache stats not updated: %s", exc)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "default"


def invalidate_paths(app_or_store: Any, paths: Iterable[str | os.PathLike[str]]) -> int:
    """Watcher hook: evict cached answers that depended on changed ``paths``. Returns how many were evicted.

    Accepts an `App` or an `AnswerCache`. Only entries whose recorded hash no longer matches the file are evicted.
    Does nothing (and loads no model) when the cache table does not exist yet.
    """
    cache = app_or_store if isinstance(app_or_store, AnswerCache) else AnswerCache(app_or_store)
    index_dir = Path(cache.app.index_dir)
    if not (index_dir / "answer_cache.lance").exists():
        return 0
    return cache.invalidate(paths, only_changed=True)


def watch_listener(app: Any) -> Any:
    """The watcher's ``on_changed`` callback for ``app``: evict answers whose files changed (see `invalidate_paths`)."""

    def on_changed(paths: Iterable[str]) -> None:
        try:
            n = invalidate_paths(app, list(paths))
            if n:
                log.info("answer cache: %d entr%s invalidated by file changes", n, "y" if n == 1 else "ies")
        except Exception as exc:  # noqa: BLE001 - a cache problem must never stop the watcher
            log.warning("answer cache invalidation failed: %s", exc)

    return on_changed


def register_watch_listener() -> None:
    """Make every watcher built from now on invalidate the cache (called by the CLI and server shells)."""
    try:
        from mcp_router.watch import add_listener_factory
    except ImportError:  # pragma: no cover - watch mode not installed
        return
    add_listener_factory(watch_listener)

"""Learning from outcomes: recorded "was the tier enough?" feedback, and a kNN that moves tiers for similar queries.

Each feedback row holds the query vector (never the text), the tier used and the outcome; from it we derive the tier
the query *needed*: the same tier when it was enough, one above when it was too weak, one below when it was overkill.
For a new query, the needs of its nearest past queries vote on whether to move the tier (`knn_tier_shift`).
Storage is the LanceDB table ``route_feedback`` in the index folder; the vectors are held in memory for the kNN.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from indexer.errors import UserError

TABLE = "route_feedback"
OUTCOMES = ("ok", "too_weak", "overkill")


def need_from_outcome(tier: int, outcome: str, n_tiers: int) -> int:
    """The tier index a query needed, given the tier it got and how that went."""
    if outcome not in OUTCOMES:
        raise UserError(f"unknown outcome {outcome!r}: use ok (the tier was enough), too_weak or overkill")
    shift = {"ok": 0, "too_weak": 1, "overkill": -1}[outcome]
    return int(min(max(tier + shift, 0), n_tiers - 1))


def knn_need_scores(sims: np.ndarray, need: np.ndarray, k: int = 10, min_sim: float = 0.0,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For each query row of ``sims (m, n)``: similarity-weighted mean need of its ``k`` nearest stored rows.

    Returns ``(score (m,), support (m,))``: support counts neighbours above ``min_sim`` (score is NaN when 0).
    """
    m, n = sims.shape
    if n == 0:
        return np.full(m, np.nan), np.zeros(m, dtype=int)
    k = min(k, n)
    top = np.argpartition(-sims, kth=k - 1, axis=1)[:, :k]
    s = np.take_along_axis(sims, top, axis=1)
    ok = s >= min_sim
    w = np.where(ok, np.clip(s, 1e-6, None), 0.0)
    support = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (w * need[top]).sum(axis=1) / w.sum(axis=1)
    return np.where(support > 0, score, np.nan), support


def knn_tier_shift(sims: np.ndarray, need: np.ndarray, current: int, k: int = 10, min_sim: float = 0.8,
                   min_support: int = 2) -> tuple[int, int, float]:
    """How many tiers to move ``current`` (-1, 0 or +1) for one query, from its neighbours' needs.

    ``sims (n,)`` are cosines to the stored feedback vectors. Moves up when the weighted mean need is at least half a
    tier above ``current``, down when it is at least 0.75 below (being wrong downwards costs more than upwards).
    Returns ``(shift, support, mean_need)``.
    """
    score, support = knn_need_scores(sims[None, :], need, k, min_sim)
    sup, mean = int(support[0]), float(score[0])
    if sup < min_support or np.isnan(mean):
        return 0, sup, mean
    if mean >= current + 0.5:
        return 1, sup, mean
    if mean <= current - 0.75:
        return -1, sup, mean
    return 0, sup, mean


@dataclass
class FeedbackRow:
    vector: np.ndarray
    need: int


class FeedbackStore:
    """Feedback rows in LanceDB plus an in-memory matrix for the kNN (a few thousand rows at most in practice)."""

    def __init__(self, db: Any, tier_names: Sequence[str], dim: int, table: str | None = None) -> None:
        self.db = db
        self.table = table or TABLE
        self.tier_names = list(tier_names)
        self.dim = dim
        self._lock = threading.Lock()
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.need = np.zeros(0, dtype=np.int64)
        self._load()

    def _load(self) -> None:
        if self.table not in _table_names(self.db):
            return
        df = self.db.open_table(self.table).to_pandas()
        if df.empty:
            return
        keep = df["need"].isin(self.tier_names)
        df = df[keep]
        if len(df) and len(df["vector"].iloc[0]) == self.dim:
            self.vectors = np.stack(df["vector"].to_numpy()).astype(np.float32)
            self.need = np.array([self.tier_names.index(t) for t in df["need"]], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.need)

    def add(self, vector: np.ndarray, *, query_hash: str, route: str | None, tier: str, outcome: str) -> str:
        """Record one outcome; returns the tier the query needed."""
        if tier not in self.tier_names:
            raise UserError(f"unknown tier {tier!r}: use one of {', '.join(self.tier_names)}")
        need = self.tier_names[need_from_outcome(self.tier_names.index(tier), outcome, len(self.tier_names))]
        row = {"ts": time.time(), "query_hash": query_hash, "route": route or "none", "tier": tier,
               "outcome": outcome, "need": need, "vector": vector.astype(np.float32).tolist()}
        with self._lock:
            if self.table in _table_names(self.db):
                self.db.open_table(self.table).add([row])
            else:
                self.db.create_table(self.table, data=[row])
            self.vectors = np.vstack([self.vectors, vector[None, :].astype(np.float32)])
            self.need = np.append(self.need, self.tier_names.index(need))
        return need

    def shift(self, x: np.ndarray, current: int, k: int = 10, min_sim: float = 0.8) -> tuple[int, int, float]:
        """`knn_tier_shift` of query vector ``x`` against the stored feedback."""
        if not len(self.need):
            return 0, 0, float("nan")
        return knn_tier_shift(self.vectors @ x, self.need, current, k=k, min_sim=min_sim)


def _table_names(db: Any) -> list[str]:
    res = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    names = getattr(res, "tables", res)
    return list(names)

"""Decision log: every routing decision appended to the LanceDB table ``route_log``, and the `stats` summary over it.

Privacy: the query is stored as a keyed hash (HMAC-SHA256 with a random per-index salt, so common queries cannot be
looked up in a dictionary) and never as text, unless the user opts in with ``routing.log_queries = true``.
Writes are buffered (every LanceDB write is a table version): the buffer flushes every `FLUSH_ROWS` rows, after
`FLUSH_SECONDS`, and at exit.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from mcp_router.routing.feedback import _table_names

TABLE = "route_log"
FLUSH_ROWS = 32
FLUSH_SECONDS = 5.0


def query_salt(folder: Path) -> bytes:
    """The per-index secret salt for query hashes (created once, readable by the owner only)."""
    path = folder / "query-salt"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        folder.mkdir(parents=True, exist_ok=True)
        salt = secrets.token_bytes(16)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(salt.hex())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return bytes.fromhex(path.read_text().strip())


def hash_query(query: str, salt: bytes) -> str:
    return hmac.new(salt, query.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


class DecisionLog:
    """Buffered appender to ``route_log``."""

    def __init__(self, db: Any, *, log_queries: bool = False) -> None:
        self.db = db
        self.log_queries = log_queries
        self._buf: list[dict] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        atexit.register(self.flush)

    def record(self, decision: Any, query: str, query_hash: str, top_price: float, price: float) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        row = {
            "ts": now.timestamp(),
            "day": now.date().isoformat(),
            "query_hash": query_hash,
            "query": query if self.log_queries else "",
            "route": decision.route or "none",
            "tier": decision.tier,
            "model": decision.model,
            "confidence": float(decision.confidence),
            "margin": float(decision.margin),
            "latency_ms": float(decision.latency_ms),
            "signals": ",".join(decision.signals),
            "price": float(price),
            "top_price": float(top_price),
        }
        with self._lock:
            self._buf.append(row)
            due = len(self._buf) >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> int:
        """Write buffered rows; returns how many were written."""
        with self._lock:
            rows, self._buf = self._buf, []
            self._last_flush = time.monotonic()
            if not rows:
                return 0
            try:
                if TABLE in _table_names(self.db):
                    self.db.open_table(TABLE).add(rows)
                else:
                    self.db.create_table(TABLE, data=rows)
            except Exception:  # noqa: BLE001 - telemetry must never break routing; keep the rows for the next try
                self._buf = rows + self._buf
                raise
            return len(rows)


def read_log(db: Any) -> Any:
    """The whole decision log as a pandas DataFrame (empty when nothing was logged yet)."""
    import pandas as pd

    if TABLE not in _table_names(db):
        return pd.DataFrame(columns=["ts", "day", "route", "tier", "margin", "price", "top_price", "latency_ms"])
    return db.open_table(TABLE).to_pandas()


def summarise(df: Any, tokens_per_call: int = 2000) -> dict:
    """Route and tier distribution, mean margin per route per day (the drift signal), and the cost saved.

    Cost: each decision is priced at its tier's price times ``tokens_per_call``, against always using the top tier.
    """
    n = int(len(df))
    if n == 0:
        return {"decisions": 0, "routes": {}, "tiers": {}, "margin_by_day": {}, "cost": {}, "latency_ms_p50": None}
    spent = float((df["price"] * tokens_per_call / 1e6).sum())
    top = float((df["top_price"] * tokens_per_call / 1e6).sum())
    by_day: dict[str, dict[str, float]] = {}
    for (route, day), m in df.groupby(["route", "day"])["margin"].mean().items():
        by_day.setdefault(str(route), {})[str(day)] = round(float(m), 4)
    return {
        "decisions": n,
        "routes": {str(k): int(v) for k, v in df["route"].value_counts().items()},
        "tiers": {str(k): int(v) for k, v in df["tier"].value_counts().items()},
        "margin_by_day": by_day,
        "cost": {"tokens_per_call": tokens_per_call, "spent_usd": round(spent, 6), "top_tier_usd": round(top, 6),
                 "saved_usd": round(top - spent, 6), "saved_share": round(1 - spent / top, 4) if top else 0.0},
        "latency_ms_p50": round(float(df["latency_ms"].median()), 3),
    }

"""Labelled query files (JSONL or CSV) and the evaluation report of a router on them.

A labelled row has the query text, its route (``none`` / empty for out of scope) and optionally the tier it needs:
JSONL ``{"query": "...", "route": "debugging", "tier": "srm"}`` (``text``/``intent``/``label`` are accepted too) or a
CSV with a header row using the same column names.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from indexer.errors import UserError

NONE = "none"


@dataclass
class Labelled:
    query: str
    route: str | None
    tier: str | None = None


def _pick(row: dict, *keys: str) -> str | None:
    for k in keys:
        if k in row and row[k] is not None and str(row[k]).strip() != "":
            return str(row[k]).strip()
    return None


def load_labelled(path: Path) -> list[Labelled]:
    """Read a labelled JSONL or CSV file (errors name the file and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labelled data file {path} does not exist: pass --data with a JSONL or CSV file")
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                rows.append((i, row))
    else:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{i}: not valid JSON ({exc.msg}): one JSON object per line") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{i}: expected a JSON object with `query` and `route`")
            rows.append((i, obj))
    out = []
    for i, row in rows:
        q = _pick(row, "query", "text", "utterance")
        if q is None:
            raise UserError(f"{path}:{i}: no `query` field: each row needs the query text")
        r = _pick(row, "route", "intent", "label")
        route = None if r is None or r.lower() in (NONE, "oos", "null") else r
        out.append(Labelled(q, route, _pick(row, "tier")))
    if not out:
        raise UserError(f"{path} has no rows: add labelled queries, one per line")
    return out


def evaluation_report(rows: Sequence[Labelled], decisions: Sequence, route_names: Sequence[str],
                      tier_names: Sequence[str]) -> dict:
    """Accuracy, per-route precision/recall, OOS precision/recall, tier accuracy, under-routing and a confusion matrix."""
    labels = [r.route or NONE for r in rows]
    preds = [d.route or NONE for d in decisions]
    n = len(rows)
    classes = list(route_names) + [NONE]
    confusion = {a: {b: 0 for b in classes} for a in classes}
    for a, b in zip(labels, preds):
        if a not in confusion:
            raise UserError(f"label {a!r} is not a route of the registry: use one of {', '.join(classes)}")
        confusion[a][b] += 1
    per_route = {}
    for c in classes:
        tp = confusion[c][c]
        pred_c = sum(confusion[a][c] for a in classes)
        true_c = sum(confusion[c].values())
        per_route[c] = {"precision": round(tp / pred_c, 4) if pred_c else None,
                        "recall": round(tp / true_c, 4) if true_c else None, "support": true_c}
    ins = [i for i in range(n) if labels[i] != NONE]
    tiered = [i for i in range(n) if rows[i].tier]
    for i in tiered:
        if rows[i].tier not in tier_names:
            raise UserError(f"row {i + 1}: tier {rows[i].tier!r} is unknown: use one of {', '.join(tier_names)}")
    order = {t: k for k, t in enumerate(tier_names)}
    under = [i for i in tiered if order[decisions[i].tier] < order[rows[i].tier]]
    over = [i for i in tiered if order[decisions[i].tier] > order[rows[i].tier]]
    return {
        "rows": n,
        "accuracy": round(sum(a == b for a, b in zip(labels, preds)) / n, 4),
        "in_scope_accuracy": round(sum(labels[i] == preds[i] for i in ins) / len(ins), 4) if ins else None,
        "oos": per_route[NONE],
        "per_route": {c: per_route[c] for c in route_names},
        "tier_rows": len(tiered),
        "tier_accuracy": round(sum(decisions[i].tier == rows[i].tier for i in tiered) / len(tiered), 4) if tiered else None,
        "under_routing_rate": round(len(under) / len(tiered), 4) if tiered else None,
        "over_routing_rate": round(len(over) / len(tiered), 4) if tiered else None,
        "confusion": confusion,
        "latency_ms_p50": _median([d.latency_ms for d in decisions]),
    }


def _median(v: list[float]) -> float | None:
    if not v:
        return None
    s = sorted(v)
    m = len(s) // 2
    return round(s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2, 3)

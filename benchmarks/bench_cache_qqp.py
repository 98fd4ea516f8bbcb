"""Benchmark: the answer cache on Quora Question Pairs (the file GPTCache benchmarks on).

Protocol (the issue's baseline protocol): a fixed-seed sample of labelled pairs; side ``a`` is the cached question,
side ``b`` the new one; a pair is a hit when cosine(a, b) >= threshold and, with the guard, `check_pair(a, b)`
allows it. Reported per threshold, with and without the guard:
- hit rate on duplicates;
- false-hit rate on non-duplicates, with a Wilson 95% confidence interval;
- hit precision (correct hits / all hits, at this sample's class balance).

The guard has no fitted parameters. Anything fitted (nothing, in the shipped version) would use the ``fit`` split:
the sample is shuffled with ``--seed``, the first ``--n`` pairs are the reported split and the next ``--n`` the fit
split, so they are disjoint. ``--end-to-end K`` also runs the real `AnswerCache` (LanceDB on disk, store a, look up
b, one partition per pair) on the first K reported pairs, checks it decides exactly as the table, and times lookups.

    python benchmarks/bench_cache_qqp.py [--data ../shared/data/qqp/similiar_qqp_full.json] [--n 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from indexer.encoder import get_encoder  # noqa: E402
from mcp_router.cache.cache import DEFAULT_THRESHOLD  # noqa: E402
from mcp_router.cache.guard import check_pair  # noqa: E402

THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97)
BASELINE = {0.90: (0.430, 0.060), 0.95: (0.214, 0.016), 0.97: (0.127, 0.007)}  # from the issue


def shuffled_order(n_rows: int, seed: int) -> list[int]:
    """The fixed-seed order of QQP rows: the first ``--n`` are the reported sample, the rest are for fitting."""
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    return order


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def rates(hit: np.ndarray, y: np.ndarray) -> dict:
    tp, fp = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum())
    npos, nneg = int((y == 1).sum()), int((y == 0).sum())
    lo, hi = wilson(fp, nneg)
    return {"hit_rate": tp / npos, "false_hit_rate": fp / nneg, "false_ci95": [lo, hi],
            "precision": tp / (tp + fp) if tp + fp else 1.0, "hits": tp, "false_hits": fp}


def embed(texts: list[str], cache_file: Path) -> np.ndarray:
    if cache_file.exists():
        return np.load(cache_file)
    vecs = get_encoder().encode(texts, batch_size=64)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache_file, vecs)
    return vecs


def end_to_end(a: list[str], b: list[str], threshold: float) -> tuple[list[bool], float]:
    from mcp_router.app import App
    from mcp_router.cache import AnswerCache, CacheSettings

    with tempfile.TemporaryDirectory() as tmp:
        cache = AnswerCache(App(Path(tmp)), CacheSettings(threshold=threshold, max_entries=len(a) + 10))
        for i, q in enumerate(a):
            cache.store(q, f"answer {i}", user=f"p{i}")
        hits, ms = [], []
        for i, q in enumerate(b):
            t0 = time.perf_counter()
            hits.append(cache.lookup(q, user=f"p{i}").hit)
            ms.append((time.perf_counter() - t0) * 1000)
    return hits, float(np.median(ms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str((REPO / "../shared/data/qqp/similiar_qqp_full.json").resolve()))
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--end-to-end", type=int, default=500, help="pairs to also run through the real AnswerCache")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/bench_cache_qqp.json"))
    args = ap.parse_args()
    console = Console(width=150)

    data = json.loads(Path(args.data).read_text())
    order = shuffled_order(len(data), args.seed)
    report = order[: args.n]  # the fit split, order[n:2n], is reserved for fitted parameters (none shipped)
    a = [data[i]["text_a"] for i in report]
    b = [data[i]["text_b"] for i in report]
    y = np.array([int(data[i]["label"]) for i in report])
    tag = f"s{args.seed}_n{args.n}"
    t0 = time.perf_counter()
    ea = embed(a, REPO / f"benchmarks/results/qqp_emb_a_{tag}.npy")
    eb = embed(b, REPO / f"benchmarks/results/qqp_emb_b_{tag}.npy")
    cos = (ea * eb).sum(1)
    guard = np.array([check_pair(x, z).allowed for x, z in zip(a, b)])
    console.print(f"{len(y):,} pairs ({int(y.sum()):,} duplicates), embedded/loaded in {time.perf_counter() - t0:.0f} s")

    rows = []
    for t in THRESHOLDS:
        plain = rates(cos >= t, y)
        guarded = rates((cos >= t) & guard, y)
        rows.append({"threshold": t, "plain": plain, "guard": guarded})

    def plain_at_false_rate(fr: float) -> float:
        """Hit rate a plain threshold keeps at the same false-hit rate (the issue's comparison)."""
        neg = np.sort(cos[y == 0])[::-1]
        k = int(math.floor(fr * len(neg)))
        thr = neg[min(k, len(neg) - 1)]
        return float(((cos > thr) & (y == 1)).sum() / (y == 1).sum())

    table = Table(title=f"QQP, {len(y):,}-pair sample (seed {args.seed}): store a, look up b")
    for col in ("threshold", "hit rate (plain)", "false hits (plain) [95% CI]", "precision (plain)",
                "hit rate (guard)", "false hits (guard) [95% CI]", "precision (guard)", "plain hit rate at same false rate",
                "issue baseline"):
        table.add_column(col, justify="right")
    for r in rows:
        p, g = r["plain"], r["guard"]
        r["plain_hit_rate_at_guard_false_rate"] = plain_at_false_rate(g["false_hit_rate"])
        base = BASELINE.get(r["threshold"])
        style = "bold" if abs(r["threshold"] - DEFAULT_THRESHOLD) < 1e-9 else None
        table.add_row(
            f"{r['threshold']:.2f}", f"{p['hit_rate']:.1%}",
            f"{p['false_hit_rate']:.2%} [{p['false_ci95'][0]:.2%}, {p['false_ci95'][1]:.2%}]", f"{p['precision']:.1%}",
            f"{g['hit_rate']:.1%}",
            f"{g['false_hit_rate']:.2%} [{g['false_ci95'][0]:.2%}, {g['false_ci95'][1]:.2%}]", f"{g['precision']:.1%}",
            f"{r['plain_hit_rate_at_guard_false_rate']:.1%}",
            f"{base[0]:.1%} / {base[1]:.1%}" if base else "", style=style)
    console.print(table)
    ok = [r for r in rows if r["guard"]["false_ci95"][1] <= 0.0125 and r["guard"]["false_hit_rate"] <= 0.01]
    console.print(f"thresholds whose guarded false-hit rate is <= 1.0%: {[r['threshold'] for r in ok]}")
    refused = {}
    for x, z, c, yy in zip(a, b, cos, y):
        if c >= 0.9:
            v = check_pair(x, z)
            if not v.allowed:
                refused.setdefault(v.rule, [0, 0])[int(yy)] += 1
    console.print("guard refusals at cosine >= 0.90 by rule [non-duplicates, duplicates]: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(refused.items(), key=lambda kv: -sum(kv[1]))))

    e2e = None
    if args.end_to_end:
        k = min(args.end_to_end, len(y))
        hits, med = end_to_end(a[:k], b[:k], DEFAULT_THRESHOLD)
        expected = ((cos[:k] >= DEFAULT_THRESHOLD) & guard[:k]).tolist()
        agree = sum(h == e for h, e in zip(hits, expected))
        # Exact-match hits (identical normalised text) are hits whatever the cosine; they match cosine 1.0 anyway.
        e2e = {"pairs": k, "agree_with_table": agree, "lookup_ms_median": med}
        console.print(f"end to end (real AnswerCache, {k} pairs at threshold {DEFAULT_THRESHOLD}): decisions agree "
                      f"with the table on {agree}/{k}; median lookup {med:.1f} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"pairs": len(y), "seed": args.seed, "default_threshold": DEFAULT_THRESHOLD,
                               "rows": rows, "end_to_end": e2e, "guard_refusals_at_0.90": refused}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

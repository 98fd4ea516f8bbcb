"""Benchmark: the answer cache on labelled coding question pairs (paraphrases that must hit, near-misses that must not).

For every pair of ``fixtures/cache/coding_pairs.jsonl`` the real `AnswerCache` (real encoder, LanceDB on disk in a
temporary repository) stores side ``a`` in a partition of its own, then looks up side ``b``. Reported per kind of pair:
hits, false hits, and the same for a plain cosine threshold without guard or verifier.

Target: zero false hits, and at least 80% of paraphrases hit.

    python benchmarks/bench_cache_coding.py [--pairs fixtures/cache/coding_pairs.jsonl] [--threshold T]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mcp_router.app import App  # noqa: E402
from mcp_router.cache import AnswerCache, CacheSettings  # noqa: E402
from mcp_router.cache.cache import DEFAULT_THRESHOLD  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default=str(REPO / "fixtures/cache/coding_pairs.jsonl"))
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/bench_cache_coding.json"))
    args = ap.parse_args()
    pairs = [json.loads(line) for line in Path(args.pairs).read_text().splitlines() if line.strip()]
    console = Console(width=150)

    with tempfile.TemporaryDirectory() as tmp:
        app = App(Path(tmp))
        cache = AnswerCache(app, CacheSettings(threshold=args.threshold))
        enc = app.encoder.load()
        rows = []
        lookup_ms = []
        for i, p in enumerate(pairs):
            user = f"pair{i}"  # one partition per pair: each lookup sees only its own stored question
            cache.store(p["a"], f"answer to: {p['a']}", user=user)
            t0 = time.perf_counter()
            res = cache.lookup(p["b"], user=user)
            lookup_ms.append((time.perf_counter() - t0) * 1000)
            cos = float(enc.encode_one(p["a"]) @ enc.encode_one(p["b"]))
            rows.append({**p, "hit": res.hit, "reason": res.reason, "rule": res.refused_rule,
                         "token": res.refused_token, "cosine": round(cos, 4)})

    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        k = by_kind[r["kind"]]
        k["n"] += 1
        k["hit"] += int(r["hit"])
        k["plain_hit"] += int(r["cosine"] >= args.threshold)
    para = [r for r in rows if r["label"] == "hit"]
    near = [r for r in rows if r["label"] == "miss"]
    summary = {
        "pairs": len(rows), "paraphrases": len(para), "near_misses": len(near), "threshold": args.threshold,
        "paraphrase_hit_rate": sum(r["hit"] for r in para) / len(para),
        "false_hits": sum(r["hit"] for r in near),
        "plain_cosine_paraphrase_hit_rate": sum(r["cosine"] >= args.threshold for r in para) / len(para),
        "plain_cosine_false_hits": sum(r["cosine"] >= args.threshold for r in near),
        "lookup_ms_median": sorted(lookup_ms)[len(lookup_ms) // 2],
        "target_met": sum(r["hit"] for r in near) == 0 and sum(r["hit"] for r in para) / len(para) >= 0.8,
    }

    table = Table(title=f"Coding pairs ({len(rows)}), threshold {args.threshold}")
    for col in ("kind", "label", "pairs", "hits (cache)", "hits (plain cosine)"):
        table.add_column(col, justify="right" if col not in ("kind", "label") else "left")
    for kind, k in sorted(by_kind.items(), key=lambda kv: kv[0] != "paraphrase"):
        label = "must hit" if kind == "paraphrase" else "must miss"
        table.add_row(kind, label, str(k["n"]), str(k["hit"]), str(k["plain_hit"]))
    console.print(table)
    console.print(
        f"paraphrase hit rate {summary['paraphrase_hit_rate']:.1%} (plain cosine "
        f"{summary['plain_cosine_paraphrase_hit_rate']:.1%}); false hits {summary['false_hits']} (plain cosine "
        f"{summary['plain_cosine_false_hits']}); median lookup {summary['lookup_ms_median']:.1f} ms; "
        f"target {'met' if summary['target_met'] else 'MISSED'}")
    missed = [r for r in para if not r["hit"]]
    if missed:
        t2 = Table(title="Paraphrases that missed")
        for col in ("a", "b", "cosine", "reason", "token"):
            t2.add_column(col)
        for r in missed:
            t2.add_row(r["a"], r["b"], f"{r['cosine']:.3f}", r["reason"], f"{r['rule'] or ''} {r['token'] or ''}")
        console.print(t2)
    wrong = [r for r in near if r["hit"]]
    if wrong:
        t3 = Table(title="False hits")
        for col in ("a", "b", "kind", "cosine"):
            t3.add_column(col)
        for r in wrong:
            t3.add_row(r["a"], r["b"], r["kind"], f"{r['cosine']:.3f}")
        console.print(t3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "by_kind": by_kind, "rows": rows}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

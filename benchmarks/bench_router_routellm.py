"""Tier routing learned from outcomes, on RouteLLM's GSM8K and MMLU labels (weak = Mixtral-8x7B, strong = GPT-4).

    python benchmarks/bench_router_routellm.py [--data ../shared/data/routellm] [--mmlu-max 4000] [--folds 5]

The router's feedback kNN (`mcp_router.routing.feedback.knn_need_scores`) is the method: in k-fold, each test prompt is
scored by its nearest training prompts' outcomes ("the weak model was wrong" = the query needed the strong tier).
Prompts are sent to the strong model in order of that score; for each share of strong calls we report the quality
kept (accuracy of the routed answers) against random routing at the same share, the share needed to reach 90% of the
strong model's quality, and APGR (average performance-gap recovered over the share axis; random = 0.5).
RouteLLM's contaminated prompts are excluded. Writes benchmarks/results/router_routellm.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _routing_data import DATA, embed_cached, write_result  # noqa: E402
from indexer.encoder import get_encoder  # noqa: E402
from mcp_router.routing.feedback import knn_need_scores  # noqa: E402

console = Console()
csv.field_size_limit(1 << 30)


def _truthy(v: str) -> bool:
    return str(v).strip().lower() in ("true", "1")


def load(base: Path, mmlu_max: int, seed: int = 0) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    contaminated = set()
    for name in ("contaminated_prompts.jsonl", "mmlu_contaminated_prompts.jsonl"):
        p = base / name
        if p.exists():
            for line in p.read_text().splitlines():
                if line.strip():
                    obj = json.loads(line)
                    contaminated.update(str(v).strip() for v in obj.values() if isinstance(v, str))
    out = {}
    for name, files in (("gsm8k", [base / "gsm8k_responses.csv"]),
                        ("mmlu", sorted((base / "mmlu_responses").glob("*.csv")))):
        prompts, weak, strong = [], [], []
        for f in files:
            with f.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                wi = next(i for i, h in enumerate(header) if "Mixtral" in h and not h.endswith("_response"))
                si = next(i for i, h in enumerate(header) if "gpt-4" in h and not h.endswith("_response"))
                for row in reader:
                    if row[0].strip() in contaminated:
                        continue
                    prompts.append(row[0])
                    weak.append(_truthy(row[wi]))
                    strong.append(_truthy(row[si]))
        idx = np.arange(len(prompts))
        if name == "mmlu" and len(idx) > mmlu_max:
            idx = np.sort(np.random.default_rng(seed).choice(len(idx), mmlu_max, replace=False))
        out[name] = ([prompts[i] for i in idx], np.array(weak)[idx], np.array(strong)[idx])
    return out


def curve(score: np.ndarray, weak: np.ndarray, strong: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Quality when the top-``share`` prompts by score go to the strong model (ties broken by index)."""
    order = np.argsort(-score, kind="stable")
    n = len(score)
    out = []
    for s in shares:
        m = int(round(s * n))
        to_strong = np.zeros(n, dtype=bool)
        to_strong[order[:m]] = True
        out.append(float(np.where(to_strong, strong, weak).mean()))
    return np.array(out)


def evaluate(x: np.ndarray, weak: np.ndarray, strong: np.ndarray, folds: int, k: int, seed: int = 0) -> dict:
    need = (~weak).astype(float)  # the weak model failed: this prompt needed the strong tier
    fold = np.random.default_rng(seed).permutation(len(weak)) % folds
    score = np.zeros(len(weak))
    for f in range(folds):
        te, tr = fold == f, fold != f
        s, _ = knn_need_scores(x[te] @ x[tr].T, need[tr], k=k)
        score[te] = np.nan_to_num(s, nan=need[tr].mean())
    shares = np.linspace(0, 1, 21)
    ours = curve(score, weak, strong, shares)
    aw, as_ = float(weak.mean()), float(strong.mean())
    rand = aw + shares * (as_ - aw)
    target = 0.9 * as_

    def share_needed(q: np.ndarray) -> float | None:
        fine = np.linspace(0, 1, 201)
        qq = curve(score, weak, strong, fine) if q is ours else aw + fine * (as_ - aw)
        hit = np.where(qq >= target)[0]
        return float(fine[hit[0]]) if len(hit) else None

    gap = as_ - aw
    apgr = float(np.trapezoid((ours - aw) / gap, shares)) if gap > 0 else float("nan")
    return {"n": int(len(weak)), "weak_accuracy": aw, "strong_accuracy": as_, "shares": shares.round(2).tolist(),
            "quality_ours": ours.round(4).tolist(), "quality_random": rand.round(4).tolist(),
            "strong_share_for_90pct_quality_ours": share_needed(ours),
            "strong_share_for_90pct_quality_random": share_needed(rand), "apgr_ours": round(apgr, 4),
            "apgr_random": 0.5, "k": k, "folds": folds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA / "routellm"))
    ap.add_argument("--mmlu-max", type=int, default=4000, help="random MMLU prompts used (encoding cost)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--k", type=int, default=20)
    args = ap.parse_args()
    enc = get_encoder()
    data = load(Path(args.data), args.mmlu_max)
    result = {"date": time.strftime("%Y-%m-%d"), "data": args.data, "encoder": enc.model_id, "datasets": {}}
    vecs = {}
    for name, (prompts, weak, strong) in data.items():
        vecs[name] = embed_cached(prompts, enc)
        result["datasets"][name] = evaluate(vecs[name], weak, strong, args.folds, args.k)
    allx = np.vstack([vecs[n] for n in data])
    result["datasets"]["gsm8k+mmlu"] = evaluate(allx, np.concatenate([data[n][1] for n in data]),
                                                np.concatenate([data[n][2] for n in data]), args.folds, args.k)
    for name, r in result["datasets"].items():
        t = Table(title=f"RouteLLM {name}: n={r['n']}, weak {r['weak_accuracy']:.1%}, strong {r['strong_accuracy']:.1%}")
        t.add_column("strong share")
        t.add_column("quality, kNN on outcomes")
        t.add_column("quality, random")
        for s, q, rq in zip(r["shares"], r["quality_ours"], r["quality_random"]):
            if round(s * 100) % 20 == 0 or s in (0.1, 0.3, 0.5):
                t.add_row(f"{s:.0%}", f"{q:.1%}", f"{rq:.1%}")
        console.print(t)
        so, sr = r["strong_share_for_90pct_quality_ours"], r["strong_share_for_90pct_quality_random"]
        console.print(f"strong share for 90% of strong quality: ours {so if so is None else f'{so:.1%}'}, random "
                      f"{sr if sr is None else f'{sr:.1%}'}; APGR ours {r['apgr_ours']:.3f} (random 0.5)")
    console.print(f"wrote {write_result('router_routellm', result)}")


if __name__ == "__main__":
    main()

"""CoSQA code search through the product's own index and search path.

The 6,267-function CoSQA corpus is written as one file per function into a work folder, indexed with
`mcp_router.codeindex.reindex` (tree-sitter chunking, LanceDB, the embedded model), and each query is answered with
`indexer.search.search` in the three modes. A file that was split into several chunks counts once, at its best rank.

    python benchmarks/bench_cosqa.py                 # test split, all modes
    python benchmarks/bench_cosqa.py --split dev --tune   # grid over fusion weights on dev
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from indexer.search import Weights, search  # noqa: E402
from indexer.store import CodeStore  # noqa: E402
from mcp_router import codeindex  # noqa: E402
from mcp_router.app import App  # noqa: E402

console = Console()


def build_corpus(data: Path, work: Path) -> dict[str, int]:
    """Write each corpus function to ``corpus/fNNNNN.py``; return path → retrieval_idx."""
    cmap = json.loads((data / "code_idx_map.txt").read_text())
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    (work / ".git").mkdir(exist_ok=True)  # find_root treats it as a repository
    paths = {}
    for code, idx in cmap.items():
        rel = f"corpus/f{idx:05d}.py"
        f = work / rel
        if not f.exists() or f.read_text() != code + "\n":
            f.write_text(code + "\n")
        paths[rel] = idx
    return paths


def evaluate(store: CodeStore, app: App, queries: list[dict], mode: str, weights: Weights) -> dict[str, float]:
    rr, r1, r5, r10, lat = [], [], [], [], []
    for q in queries:
        t = time.perf_counter()
        page = search(store, app.encoder, q["doc"], k=10, mode=mode, max_chars=10**9, weights=weights)
        lat.append(time.perf_counter() - t)
        ranked: list[int] = []
        for h in page.hits:
            idx = int(h.path.split("/f")[-1].split(".")[0])
            if idx not in ranked:
                ranked.append(idx)
        gold = q["retrieval_idx"]
        rank = ranked.index(gold) + 1 if gold in ranked else None
        rr.append(1 / rank if rank else 0.0)
        r1.append(rank is not None and rank <= 1)
        r5.append(rank is not None and rank <= 5)
        r10.append(rank is not None and rank <= 10)
    n = len(queries)
    lat.sort()
    return {"mrr@10": sum(rr) / n, "r@1": sum(r1) / n, "r@5": sum(r5) / n, "r@10": sum(r10) / n,
            "p50_ms": lat[n // 2] * 1000, "p95_ms": lat[int(n * 0.95)] * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cosqa")
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks" / "results" / "cosqa_repo")
    ap.add_argument("--split", choices=["test", "dev"], default="test")
    ap.add_argument("--modes", default="hybrid,dense,bm25")
    ap.add_argument("--tune", action="store_true", help="grid over the BM25 weight (use on dev)")
    args = ap.parse_args()

    build_corpus(args.data, args.work)
    app = App(args.work)
    t = time.perf_counter()
    stats = codeindex.reindex(app)
    console.print(f"indexed: {stats.files_indexed} files, {stats.chunks_embedded} chunks embedded, "
                  f"{stats.chunks_reused} reused, {time.perf_counter() - t:.1f} s")
    store = CodeStore.open(app.index_dir)
    app.encoder.load()
    queries = json.loads((args.data / f"cosqa-retrieval-{args.split}-500.json").read_text())

    table = Table(title=f"CoSQA {args.split} ({len(queries)} queries, {len(set(q['retrieval_idx'] for q in queries))} "
                        f"gold functions, corpus 6,267) — product index + search")
    for col in ("mode", "bm25 weight", "MRR@10", "R@1", "R@5", "R@10", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right" if col not in ("mode",) else "left")
    results = []
    grid = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5] if args.tune else [Weights().bm25]
    for mode in args.modes.split(","):
        for w in grid if mode == "hybrid" else [Weights().bm25]:
            m = evaluate(store, app, queries, mode, Weights(bm25=w))
            results.append({"mode": mode, "bm25_weight": w, **m})
            table.add_row(mode, f"{w:.2f}" if mode == "hybrid" else "-", f"{m['mrr@10']:.3f}", f"{m['r@1']:.1%}",
                          f"{m['r@5']:.1%}", f"{m['r@10']:.1%}", f"{m['p50_ms']:.1f}", f"{m['p95_ms']:.1f}")
    console.print(table)
    out = REPO / "benchmarks" / "results" / f"cosqa_{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"split": args.split, "results": results, "date": time.strftime("%Y-%m-%d")}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

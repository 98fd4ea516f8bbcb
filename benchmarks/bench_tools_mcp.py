"""Tool filtering on our own catalogue: the real `tools/list` output of 13 public MCP servers (123 tools) and
`fixtures/tool_catalogs/requests.jsonl` (coding-agent requests with their gold tools; some need no tool).

    python benchmarks/bench_tools_mcp.py [--catalogs fixtures/tool_catalogs] [--requests .../requests.jsonl]

A gold entry ``"a|b"`` is satisfied by either tool (e.g. ``read_file`` and its successor ``read_text_file``).
Reports the same metrics as the BFCL benchmark. With ~64 relevant and ~12 no-tool requests, the "95% kept" bar is
fitted in-sample here, so the script also reports the default bar fitted on BFCL (out-of-sample for this catalogue).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_tools_bfcl import (  # noqa: E402
    apply_calibrated,
    encode_cached,
    latency,
    print_table,
    recall_metrics,
    rejection_at_keep,
    rejection_features,
    rrf,
    score_matrix,
)
from indexer.encoder import get_encoder  # noqa: E402
from tools.filter import expand_abbreviations  # noqa: E402
from tools.index import ToolIndex  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description="Tool filtering on the captured MCP server catalogue.")
    ap.add_argument("--catalogs", type=Path, default=REPO / "fixtures" / "tool_catalogs")
    ap.add_argument("--requests", type=Path, default=REPO / "fixtures" / "tool_catalogs" / "requests.jsonl")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tools_mcp.json")
    args = ap.parse_args()
    import lancedb

    files = sorted(args.catalogs.glob("*.json"))
    reqs = [json.loads(line) for line in args.requests.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        index = ToolIndex(lancedb.connect(tmp), get_encoder())
        t0 = time.perf_counter()
        report = index.index_catalogs(files)
        index_s = time.perf_counter() - t0
        snap = index.snapshot()
    pos = {k: i for i, k in enumerate(snap.keys)}
    missing = [g for r in reqs for grp in r["gold"] for g in grp.split("|") if g not in pos]
    if missing:
        raise SystemExit(f"gold tools not in the catalogue: {missing}")
    w = index.weights
    texts = [expand_abbreviations(r["query"]) for r in reqs]
    qvecs = encode_cached(texts)
    dense, lex, fused = score_matrix(snap, qvecs, texts, w)
    rel = np.array([i for i, r in enumerate(reqs) if r["gold"]])
    irr = np.array([i for i, r in enumerate(reqs) if not r["gold"]])
    gold = [[{pos[g] for g in grp.split("|")} for grp in reqs[i]["gold"]] for i in rel]

    def evaluate(mat: np.ndarray) -> dict[str, float]:
        order = np.argsort(-mat, axis=1)[:, :10]
        s = mat.max(1)
        _, kept, rej = rejection_at_keep(s[rel], s[irr])
        return {**recall_metrics(order[rel], gold), "rejection": rej, "kept": kept}

    def auc(s: np.ndarray) -> float:
        """Share of (relevant, no-tool) request pairs the score orders correctly (ties count half)."""
        r, i = s[rel][:, None], s[irr][None, :]
        return 100 * float(np.mean((r > i) + 0.5 * (r == i)))

    results = {"BM25F (fields)": evaluate(lex), "dense": evaluate(dense), "RRF of the two": evaluate(rrf(dense, lex)),
               "fused (product)": evaluate(fused)}
    for r, m in zip(results.values(), (lex, dense, rrf(dense, lex), fused)):
        r["no-tool AUC"] = auc(m.max(1))
    # The BFCL-fitted 'needs a tool' experiments (tools_bfcl.json), applied unchanged to this catalogue.
    bfcl_json = args.out.parent / "tools_bfcl.json"
    if bfcl_json.exists():
        feats = rejection_features(snap, dense, lex, fused, texts)
        for name, r in json.loads(bfcl_json.read_text())["results"].items():
            if name == "fused (product)":
                best = fused.max(1)
                results[name]["kept at BFCL bar"] = 100 * float(np.mean(best[rel] >= r["bar"]))
                results[name]["rejected at BFCL bar"] = 100 * float(np.mean(best[irr] < r["bar"]))
            elif "model" in r:
                s = apply_calibrated(feats, r["model"])
                _, kept, rej = rejection_at_keep(s[rel], s[irr])
                results[name] = {**results["fused (product)"], "rejection": rej, "kept": kept, "no-tool AUC": auc(s),
                                 "kept at BFCL bar": 100 * float(np.mean(s[rel] >= r["bar"])),
                                 "rejected at BFCL bar": 100 * float(np.mean(s[irr] < r["bar"]))}
    best = fused.max(1)
    top5 = np.argsort(-fused, axis=1)[:, :5]
    returned = np.array([int(snap.tokens[top5[i]].sum()) if best[i] >= w.min_score else 0 for i in range(len(reqs))])
    default_bar = {"bar": w.min_score, "relevant_kept": 100 * float(np.mean(best[rel] >= w.min_score)),
                   "no_tool_rejected": 100 * float(np.mean(best[irr] < w.min_score))}
    tokens = {"catalogue_tokens": int(snap.tokens.sum()), "mean_returned_tokens_relevant": float(returned[rel].mean()),
              "mean_returned_tokens_no_tool": float(returned[irr].mean())}
    lat = latency(snap, qvecs, texts)
    print_table(f"Own MCP catalogue: {len(snap)} tools from {len(files)} servers, {len(rel)} relevant / "
                f"{len(irr)} no-tool requests", list(results.items()),
                ["R@1", "R@3", "R@5", "R@10", "all@5", "rejection", "kept", "no-tool AUC", "kept at BFCL bar",
                 "rejected at BFCL bar"])
    print(f"product default bar {w.min_score}: relevant kept {default_bar['relevant_kept']:.1f}%, "
          f"no-tool rejected {default_bar['no_tool_rejected']:.1f}%")
    print(f"tokens: catalogue ~{tokens['catalogue_tokens']:,}; returned per relevant request "
          f"~{tokens['mean_returned_tokens_relevant']:.0f}, per no-tool request ~{tokens['mean_returned_tokens_no_tool']:.0f}")
    print(f"latency: filter {lat['filter_ms_median']:.3f} ms median, encode {lat['encode_ms_median']:.1f} ms median; "
          f"index {len(snap)} tools in {index_s:.1f} s ({report.embedded} embedded)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dataset": "own MCP catalogue", "servers": [f.stem for f in files],
                                    "tools": len(snap), "relevant": len(rel), "no_tool": len(irr),
                                    "results": results, "default_bar": default_bar, "tokens": tokens, "latency": lat,
                                    "date": time.strftime("%Y-%m-%d")}, indent=2))
    print(f"wrote {args.out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Experiment: does fine-tuning the encoder on the shipped coding examples help authors it has never seen?

    python benchmarks/exp_router_coding_finetune.py blind16 blind17 [--epochs 1] [--lr 3e-5]

The named sets are held out: any of ``TRAINING`` in fixtures/routing/make_coding_examples.py, or the ``UNSEEN``
sets (never trained on in any case). Everything else in ``TRAINING`` trains: the registry's hand-written utterances, route names and off-topic examples, and the labelled rows of the
other sets. The hand-written rows are the registry rows that are not in any set; the others' `none` rows are
off-topic. Two vector sources feed the same scorer: an embedding logistic regression (C = 20, reject class
included) blended with the lexical model (C = 10) at the shipped weights.
- ``base``: the embedded all-MiniLM-L6-v2.
- ``tuned``: that model fine-tuned SetFit-style (`exp_router_finetune.finetune`) on the in-scope training rows.
  Checkpoints go to $FT_SCRATCH (default /work/scratch/ft), outside the repo.

Reports closed-set route accuracy on the held-out sets' in-scope rows (top route among the twelve; rejection is not
scored), for the embedding model alone and blended. Prints a rich table and writes
benchmarks/results/router_coding_finetune_<sets>.json. Not part of the product: shipping a tuned encoder needs a
router-specific model (see docs/routing.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "fixtures" / "routing"))

from _routing_data import write_result  # noqa: E402
from exp_router_finetune import SCRATCH, TunedVectors, finetune  # noqa: E402
from indexer.encoder import cache_root, get_encoder  # noqa: E402
from make_coding_examples import TRAINING, UNSEEN  # noqa: E402
from mcp_router.routing import load_registry, scoring  # noqa: E402
from mcp_router.routing.lexical import fit_lexical  # noqa: E402
from mcp_router.routing.registry import cached_embeddings, label_utterances  # noqa: E402

console = Console(width=150)
ALPHA = 0.8  # the shipped lexical blend weight (chosen by the registry's own cross-validation)


def load_sets() -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in open(REPO / "fixtures" / "routing" / f"coding_{s}.jsonl")]
            for s in TRAINING + UNSEEN}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("held_out", nargs="+", choices=TRAINING + UNSEEN, help="sets to leave out and score")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-5)
    args = ap.parse_args()
    reg = load_registry()
    names = reg.route_names
    k = len(names)
    sets = load_sets()
    in_sets = {r["query"] for rows in sets.values() for r in rows}
    texts, labels = [], []
    for i, route in enumerate(reg.routes):  # hand-written utterances and route names: not from any labelled set
        for t in route.utterances + label_utterances(route.name, route.description):
            if t not in in_sets:
                texts.append(t)
                labels.append(i)
    for t in reg.out_of_scope:
        if t not in in_sets:
            texts.append(t)
            labels.append(k)
    for s, rows in sets.items():
        if s not in args.held_out and s in TRAINING:
            for r in rows:
                texts.append(r["query"])
                labels.append(k if r["route"] == "none" else names.index(r["route"]))
    y = np.array(labels)
    test = [r for s in args.held_out for r in sets[s] if r["route"] != "none"]
    tq = [r["query"] for r in test]
    ty = np.array([names.index(r["route"]) for r in test])
    console.print(f"training rows {len(texts)} ({int((y < k).sum())} in scope); held out {', '.join(args.held_out)}: "
                  f"{len(test)} in-scope rows")
    lex = fit_lexical(texts, y, k + 1, 10.0)
    lp_lex = scoring.log_softmax(lex.logits(tq)[0])[:, :k]

    def score(vectors) -> dict:
        w, b = scoring.fit_linear_classifier(vectors(texts), y, k + 1, 20.0)
        lp = scoring.log_softmax(vectors(tq) @ w.T + b)[:, :k]
        return {"embedding": float((lp.argmax(1) == ty).mean()),
                "blend": float((scoring.blend_log_probs(lp, lp_lex, ALPHA).argmax(1) == ty).mean())}

    enc = get_encoder()
    cache = cache_root() / "bench-router-coding-finetune"
    cache.mkdir(parents=True, exist_ok=True)
    result = {"held_out": args.held_out, "rows": len(test), "epochs": args.epochs, "lr": args.lr,
              "base": score(lambda t: cached_embeddings(t, enc, cache))}
    out = SCRATCH / f"coding-{'-'.join(args.held_out)}-ep{args.epochs}"
    inscope = y < k
    result["train_seconds"] = round(finetune([t for t, m in zip(texts, inscope) if m], y[inscope], out,
                                             args.epochs, args.lr), 1)
    result["tuned"] = score(TunedVectors(out))
    tab = Table(title=f"closed-set route accuracy on {' + '.join(args.held_out)} ({len(test)} in-scope rows)")
    for col in ("vectors", "embedding alone", f"blend (lexical {ALPHA})"):
        tab.add_column(col)
    for name in ("base", "tuned"):
        tab.add_row(name, f"{result[name]['embedding']:.1%}", f"{result[name]['blend']:.1%}")
    console.print(tab)
    console.print(f"fine-tune: {result['train_seconds']} s; wrote "
                  f"{write_result('router_coding_finetune_' + '_'.join(args.held_out), result)}")


if __name__ == "__main__":
    main()

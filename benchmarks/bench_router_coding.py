"""Coding routes: the shipped registry on labelled coding-assistant queries.

    python benchmarks/bench_router_coding.py [--data fixtures/routing/coding_blind6.jsonl] [--fit FILE ...]

Labelled sets in fixtures/routing, each written for this project by a separate author who saw only the route and
tier definitions (never the registry, the router or another set):
- coding_dev, coding_test, coding_holdout, coding_blind2 ... coding_blind5: each measured blind once, then used for
  choices; their rows now ship as training examples (mcp_router/data/coding_examples.jsonl), so the router scores
  them near 100% and they are no longer measurements;
- coding_blind6 (the default) and coding_blind7: never used for any choice and not in the examples: the honest
  numbers.
Without --fit, routes and thresholds come only from the shipped registry (self-calibrated by k-fold on its
utterances and out-of-scope examples). With --fit FILE the router first learns from FILE the way a user would
(`mcp-router fit --data FILE`: classifier retrained, calibrated out-of-fold).
Reports intent accuracy, OOS P/R, tier accuracy and the under-routing rate (tier below the label), plus the decision
latency (batched encode amortised). Writes benchmarks/results/<--name>.json (default router_coding.json).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _routing_data import REPO, write_result  # noqa: E402
from indexer.encoder import get_encoder  # noqa: E402
from mcp_router.routing import Router, load_registry  # noqa: E402
from mcp_router.routing.evaluation import evaluation_report, load_labelled  # noqa: E402

console = Console()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "fixtures" / "routing" / "coding_blind6.jsonl"))
    ap.add_argument("--fit", action="append", default=[],
                    help="first run `fit` on these labelled files (repeatable; never the --data file)")
    ap.add_argument("--name", default="router_coding", help="result file name")
    ap.add_argument("--registry", default=None,
                    help="use this routes.yaml alone instead of the shipped one (e.g. an older version: "
                         "`git show a105c81:mcp_router/data/routes.yaml > /tmp/routes_start.yaml`)")
    args = ap.parse_args()
    rows = load_labelled(Path(args.data))
    if any(Path(f).resolve() == Path(args.data).resolve() for f in args.fit):
        sys.exit("--fit and --data must be different files: fitting on the evaluation data is not a measurement")
    with tempfile.TemporaryDirectory() as tmp:
        registry = load_registry([Path(args.registry)], include_default=False) if args.registry else load_registry()
        router = Router(registry, get_encoder(), cache_dir=Path(tmp))
        t = time.perf_counter()
        router.warm()
        build_s = time.perf_counter() - t
        fit = None
        if args.fit:
            frows = [r for f in args.fit for r in load_labelled(Path(f))]
            fit = router.fit([r.query for r in frows], [r.route for r in frows])
        decisions = router.route_batch([r.query for r in rows])
        single = [router.route(r.query, record=False).latency_ms for r in rows[:100]]
    rep = evaluation_report(rows, decisions, router.registry.route_names, router.registry.tier_names)
    single.sort()
    rep["single_query_latency_ms_p50"] = single[len(single) // 2]
    rep["cold_build_seconds"] = round(build_s, 1)
    rep["lexical_weight"] = router.model.alpha  # blend weights chosen by k-fold over the registry's utterances
    rep["knn_weight"] = router.model.beta
    rep["data"] = args.data
    rep["fitted_on"] = args.fit
    rep["registry"] = args.registry or "shipped"
    rep["fit"] = fit
    rep["date"] = time.strftime("%Y-%m-%d")
    title = f"{Path(args.data).name} ({rep['rows']} queries)" + (f", after fit on {' + '.join(Path(f).name for f in args.fit)}" if args.fit else "")
    tab = Table(title=title)
    for col in ("metric", "value", "target"):
        tab.add_column(col)
    tab.add_row("intent accuracy (incl. none)", f"{rep['accuracy']:.1%}", ">= 90%")
    tab.add_row("in-scope intent accuracy", f"{rep['in_scope_accuracy']:.1%}", "")
    tab.add_row("OOS precision / recall", f"{rep['oos']['precision']:.1%} / {rep['oos']['recall']:.1%}", "")
    tab.add_row("tier accuracy", f"{rep['tier_accuracy']:.1%}", "")
    tab.add_row("under-routing rate", f"{rep['under_routing_rate']:.1%}", "<= 5%")
    tab.add_row("over-routing rate", f"{rep['over_routing_rate']:.1%}", "")
    tab.add_row("single-query decision p50", f"{rep['single_query_latency_ms_p50']:.1f} ms", "")
    tab.add_row("blend weights lexical / kNN (k-fold on the registry)",
                f"{rep['lexical_weight']:.2f} / {rep['knn_weight']:.2f}", "")
    console.print(tab)
    console.print(f"wrote {write_result(args.name, rep)}")


if __name__ == "__main__":
    main()

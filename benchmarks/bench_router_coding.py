"""Coding routes: the shipped registry on labelled coding-assistant queries.

    python benchmarks/bench_router_coding.py [--data fixtures/routing/coding_blind18.jsonl] [--fit FILE ...]
    python benchmarks/bench_router_coding.py --tier-cv     # the tier model, leave one author's set out

Labelled sets in fixtures/routing, each written for this project by a separate author who saw only the route and
tier definitions (never the registry, the router or another set):
- coding_dev, coding_test, coding_holdout, coding_blind2 ... coding_blind17 (``TRAINING`` in
  fixtures/routing/make_coding_examples.py): each measured blind once, then used for choices; their rows now ship
  as training examples (mcp_router/data/coding_examples.jsonl), so the router scores their routes near 100% and
  they are no longer measurements of it;
- coding_blind18 (the default), coding_blind19, coding_blind20 and coding_blind21 (``UNSEEN``): never used for any
  choice and not in the examples (nor in the router encoder's fine-tune): the honest numbers.
The router encodes with the shipped router encoder (`mcp_router/data/router-encoder-*`, the product default);
--shared-encoder uses the plain embedded MiniLM, --tune-encoder the float fine-tune before quantisation, --encoder
DIR any encoder folder. The single-query encode p50 of the router's encoder and of the shared one is measured in the
same run, interleaved.
The tier is reported twice from the same run: with the learned tier model (the product default) and with the rules
alone (`tier_model = false`), on the same route decisions.
--tier-cv measures the tier model on the training sets honestly: for each of them, the model is retrained without
that set's rows (leave one author out) and scored on it, next to the rules alone.
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
from indexer.encoder import cache_root, get_encoder  # noqa: E402
from mcp_router.routing import Router, load_registry  # noqa: E402
from mcp_router.routing.evaluation import evaluation_report, load_labelled  # noqa: E402
from mcp_router.routing.tune import default_router_encoder  # noqa: E402

console = Console()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "fixtures" / "routing" / "coding_blind18.jsonl"))
    ap.add_argument("--tier-cv", action="store_true", help="leave-one-set-out evaluation of the tier model")
    ap.add_argument("--fit", action="append", default=[],
                    help="first run `fit` on these labelled files (repeatable; never the --data file)")
    ap.add_argument("--name", default="router_coding", help="result file name")
    ap.add_argument("--registry", default=None,
                    help="use this routes.yaml alone instead of the shipped one (e.g. an older version: "
                         "`git show a105c81:mcp_router/data/routes.yaml > /tmp/routes_start.yaml`)")
    ap.add_argument("--tune-encoder", action="store_true",
                    help="route with the encoder fine-tuned on the shipped registry (`mcp-router fit --tune-encoder`); "
                         "the tune is cached under the mcp-router cache (bench-router-tuned/) and reused")
    ap.add_argument("--encoder", default=None, help="route with this encoder folder (e.g. a quantised export)")
    ap.add_argument("--shared-encoder", action="store_true",
                    help="route with the plain embedded MiniLM (`routing.encoder = \"shared\"`) instead of the shipped "
                         "router encoder")
    args = ap.parse_args()
    if args.tier_cv:
        tier_cv(args)
        return
    rows = load_labelled(Path(args.data))
    if any(Path(f).resolve() == Path(args.data).resolve() for f in args.fit):
        sys.exit("--fit and --data must be different files: fitting on the evaluation data is not a measurement")
    with tempfile.TemporaryDirectory() as tmp:
        registry = load_registry([Path(args.registry)], include_default=False) if args.registry else load_registry()
        encoder, tuned = (get_encoder() if args.shared_encoder else default_router_encoder()), None
        if args.tune_encoder:  # tuned on the registry alone (--data rows never train); reused while it is unchanged
            info = Router(registry, encoder, cache_dir=cache_root() / "bench-router-tuned").tune_encoder()
            tuned = {k: info[k] for k in ("folder", "rows", "steps", "train_seconds", "loss_first", "loss_last")}
            console.print(f"routing with the tuned encoder {tuned}")
            encoder = get_encoder(info["path"], "onnx")
        if args.encoder:
            encoder, tuned = get_encoder(str(Path(args.encoder).resolve()), "onnx"), {"folder": args.encoder}
        router = Router(registry, encoder, cache_dir=Path(tmp), base_encoder=get_encoder())
        t = time.perf_counter()
        router.warm()
        build_s = time.perf_counter() - t
        fit = None
        if args.fit:
            frows = [r for f in args.fit for r in load_labelled(Path(f))]
            fit = router.fit([r.query for r in frows], [r.route for r in frows])
        decisions = router.route_batch([r.query for r in rows])
        single = [router.route(r.query, record=False).latency_ms for r in rows[:100]]
        encode_ms = encode_medians([r.query for r in rows[:100]], {"router": router.encoder, "shared": get_encoder()})
        router.use_tier_model = False
        rules = router.route_batch([r.query for r in rows])
        router.use_tier_model = True
    rep = evaluation_report(rows, decisions, router.registry.route_names, router.registry.tier_names)
    rep_rules = evaluation_report(rows, rules, router.registry.route_names, router.registry.tier_names)
    rep["rules_only"] = {k: rep_rules[k] for k in ("tier_accuracy", "under_routing_rate", "over_routing_rate")}
    single.sort()
    rep["single_query_latency_ms_p50"] = single[len(single) // 2]
    rep["encode_ms_p50"] = encode_ms
    rep["cold_build_seconds"] = round(build_s, 1)
    rep["lexical_weight"] = router.model.alpha  # blend weights chosen by k-fold over the registry's utterances
    rep["knn_weight"] = router.model.beta
    rep["data"] = args.data
    rep["fitted_on"] = args.fit
    rep["registry"] = args.registry or "shipped"
    rep["fit"] = fit
    rep["tuned_encoder"] = tuned
    rep["encoder"] = Path(router.encoder.model_id).name
    rep["date"] = time.strftime("%Y-%m-%d")
    title = f"{Path(args.data).name} ({rep['rows']} queries)" + (f", after fit on {' + '.join(Path(f).name for f in args.fit)}" if args.fit else "")
    tab = Table(title=title)
    for col in ("metric", "value", "target"):
        tab.add_column(col)
    tab.add_row("intent accuracy (incl. none)", f"{rep['accuracy']:.1%}", ">= 90%")
    tab.add_row("in-scope intent accuracy", f"{rep['in_scope_accuracy']:.1%}", "")
    tab.add_row("OOS precision / recall", f"{rep['oos']['precision']:.1%} / {rep['oos']['recall']:.1%}", "")
    ro = rep["rules_only"]
    tab.add_row("tier accuracy (rules alone)", f"{rep['tier_accuracy']:.1%} ({ro['tier_accuracy']:.1%})", "")
    tab.add_row("under-routing rate (rules alone)", f"{rep['under_routing_rate']:.1%} ({ro['under_routing_rate']:.1%})",
                "<= 5%")
    tab.add_row("over-routing rate (rules alone)", f"{rep['over_routing_rate']:.1%} ({ro['over_routing_rate']:.1%})", "")
    tab.add_row("single-query decision p50", f"{rep['single_query_latency_ms_p50']:.1f} ms", "")
    tab.add_row("single-query encode p50: router encoder / shared encoder (same run, interleaved)",
                f"{encode_ms['router']:.1f} / {encode_ms['shared']:.1f} ms", "")
    tab.add_row("blend weights lexical / kNN (k-fold on the registry)",
                f"{rep['lexical_weight']:.2f} / {rep['knn_weight']:.2f}", "")
    console.print(tab)
    console.print(f"wrote {write_result(args.name, rep)}")


def encode_medians(queries: list[str], encoders: dict) -> dict[str, float]:
    """Median single-query encode time of each encoder, interleaved query by query so load hits them alike."""
    import statistics

    times: dict[str, list[float]] = {name: [] for name in encoders}
    for enc in encoders.values():
        enc.encode([queries[0]])  # loaded and warm
    for q in queries:
        for name, enc in encoders.items():
            t = time.perf_counter()
            enc.encode([q])
            times[name].append((time.perf_counter() - t) * 1000)
    return {name: round(statistics.median(v), 2) for name, v in times.items()}


def tier_cv(args: argparse.Namespace) -> None:
    """Leave one labelled set out: retrain the tier model without it, score its in-scope rows; rules alone beside."""
    import numpy as np

    sys.path.insert(0, str(REPO / "fixtures" / "routing"))
    from make_coding_examples import TRAINING  # noqa: E402 - the sets that ship as examples

    from mcp_router.routing import tiers as tiermodel

    with tempfile.TemporaryDirectory() as tmp:
        encoder = get_encoder() if args.shared_encoder else default_router_encoder()
        router = Router(load_registry(), encoder, cache_dir=Path(tmp)).warm()
        reg = router.registry
        names = reg.tier_names
        out: dict[str, dict] = {}
        for held in TRAINING:
            rows = [r for r in load_labelled(REPO / "fixtures" / "routing" / f"coding_{held}.jsonl") if r.route]
            held_q = {r.query for r in rows}
            train = [e for e in reg.tier_examples if e[0] not in held_q]
            router._tier_model = tiermodel.fit_tier_model(*router.tier_training_data(train), len(names))
            queries = [r.query for r in rows]
            learned = router.route_batch(queries)
            router.use_tier_model = False
            rules = router.route_batch(queries)
            router.use_tier_model = True
            need = np.array([names.index(r.tier) for r in rows])
            res = {}
            for kind, ds in (("learned", learned), ("rules", rules)):
                got = np.array([names.index(d.tier) for d in ds])
                res[kind] = {"tier_accuracy": float((got == need).mean()), "under": float((got < need).mean()),
                             "over": float((got > need).mean())}
            out[held] = res | {"rows": len(rows)}
    mean = {kind: {m: float(np.mean([v[kind][m] for v in out.values()])) for m in ("tier_accuracy", "under", "over")}
            for kind in ("learned", "rules")}
    tab = Table(title=f"tier model, leave one set out ({len(TRAINING)} sets; in-scope rows; under_cost "
                      f"{router.tier_under_cost:g})")
    for col in ("held-out set", "rows", "tier acc learned / rules", "under learned / rules", "over learned / rules"):
        tab.add_column(col)
    for name, v in list(out.items()) + [("mean", mean | {"rows": sum(v["rows"] for v in out.values())})]:
        tab.add_row(name, str(v["rows"]), *(f"{v['learned'][m]:.1%} / {v['rules'][m]:.1%}"
                                            for m in ("tier_accuracy", "under", "over")))
    console.print(tab)
    console.print(f"wrote {write_result('router_tier_cv', {'sets': out, 'mean': mean, 'date': time.strftime('%Y-%m-%d'), 'under_cost': router.tier_under_cost})}")


if __name__ == "__main__":
    main()

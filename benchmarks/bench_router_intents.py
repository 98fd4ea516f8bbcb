"""Router accuracy on public intent data with a "no route" outcome: CLINC150 and BANKING77-OOS.

    python benchmarks/bench_router_intents.py clinc   [--data ../shared/data/clinc150/data_full.json] [--peer]
    python benchmarks/bench_router_intents.py banking [--data ../shared/data/banking77_oos]

Routes = the train split (all of it, or 10 utterances per intent: the first ten, and ten random over 3 seeds).
Classifier training (embedding logistic regression + TF-IDF lexical logistic regression; ``--knn`` adds a kNN vote over
the train utterances) uses train only; the blend weights, the acceptor and thresholds are fitted on val (in-scope + OOS val); every number is on test.
``ours_fit_val`` is the product's ``mcp-router fit --data val``: the classifier is retrained on the routes plus val
(labelled out-of-scope val rows join a reject class) and calibrated on out-of-fold val scores
(`scoring.retrain_route_model`); in the 10-per-route settings only val's out-of-scope rows join training.
``--no-lexical`` runs the embedding-only scorer (the previous method) and writes router_<dataset>_embedding_only.json. Reference methods run on the same vectors:
- semantic-router-style: top-5 most similar utterances summed per route, threshold 0.5 (its default) and fitted on val;
- centroid: cosine to each route's mean utterance, threshold fitted on val.
``--peer`` also runs PyPI's semantic-router (aurelio) in /work/venv-bench on the same routes and test set (see
`_semantic_router_peer.py`) and reports its accuracy and per-query latency next to ours.
Prints a rich table and writes benchmarks/results/router_<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _routing_data import DATA, OOS, REPO, embed_cached, load_banking, load_clinc, write_result  # noqa: E402
from indexer.encoder import get_encoder  # noqa: E402
from mcp_router.routing import scoring  # noqa: E402
from mcp_router.routing.registry import label_utterances  # noqa: E402

console = Console()
PEER_PYTHON = Path("/work/venv-bench/bin/python")
KNN = False  # --knn: also offer the kNN vote to the blend (not shipped: too slow on large registries)


def metrics(pred: np.ndarray, labels: np.ndarray) -> dict:
    ins = labels >= 0
    oos_pred = pred == -1
    tp_oos = int((oos_pred & ~ins).sum())
    return {
        "in_scope_accuracy": float((pred[ins] == labels[ins]).mean()),
        "oos_recall": float(tp_oos / max(int((~ins).sum()), 1)),
        "oos_precision": float(tp_oos / max(int(oos_pred.sum()), 1)),
        "overall_accuracy": float((pred == labels).mean()),
    }


def fit_ours(xtr, ytr, names, xva, yva, c: float, texts, per_route: bool = False) -> scoring.RouteModel:
    """The shipped scorer; ``texts = (train, val)`` texts, or None for the embedding-only model (``--no-lexical``:
    the previous method)."""
    tr_t, va_t = texts if texts is not None else (None, None)
    return scoring.fit_route_model(xtr, ytr, names, val_x=xva, val_y=yva, c=c, per_route=per_route,
                                   texts=tr_t, val_texts=va_t, knn=KNN and texts is not None)


def with_route_thresholds(model: scoring.RouteModel, xva, yva, va_texts) -> dict[int, float]:
    """Per-route thresholds fitted on val for an already fitted model (what ``per_route=True`` would fit)."""
    probs, feats = scoring.model_scores(model, xva, va_texts if model.lex is not None else None)
    return scoring.fit_route_thresholds(probs.argmax(1), model.acceptor.score(feats), np.asarray(yva),
                                        model.threshold)


def ours(model: scoring.RouteModel, fit_s: float, xte, yte, te_texts, route_thresholds=None) -> dict:
    probs, feats = scoring.model_scores(model, xte, te_texts if model.lex is not None else None)
    pred = scoring.apply_threshold(probs.argmax(1), model.acceptor.score(feats), model.threshold,
                                   route_thresholds or {})
    return metrics(pred, yte) | {"fit_seconds": round(fit_s, 1), "threshold": model.threshold,
                                 "lexical_weight": model.alpha, "knn_weight": model.beta}


def centroid(xtr, ytr, k, xva, yva, xte, yte) -> dict:
    cents = scoring.centroids(xtr, ytr, k)
    sv, st = xva @ cents.T, xte @ cents.T
    thr = scoring.fit_threshold(sv.argmax(1), sv.max(1), yva)
    return metrics(scoring.apply_threshold(st.argmax(1), st.max(1), thr), yte) | {"threshold": thr}


def srouter_style(xtr, ytr, k, xva, yva, xte, yte) -> dict:
    """Top-5 sum aggregation as in aurelio semantic-router; threshold 0.5 (default) and fitted on val."""
    sv = scoring.topk_route_scores(xva, xtr, ytr, k, 5, "sum")
    st = scoring.topk_route_scores(xte, xtr, ytr, k, 5, "sum")
    # semantic-router compares the top route's *mean* similarity with the threshold; the route is chosen by sum.
    mv = scoring.topk_route_scores(xva, xtr, ytr, k, 5, "mean")
    mt = scoring.topk_route_scores(xte, xtr, ytr, k, 5, "mean")
    rows_v, rows_t = np.arange(len(xva)), np.arange(len(xte))
    pv, pt = sv.argmax(1), st.argmax(1)
    default = metrics(scoring.apply_threshold(pt, mt[rows_t, pt], 0.5), yte)
    thr = scoring.fit_threshold(pv, mv[rows_v, pv], yva)
    fitted = metrics(scoring.apply_threshold(pt, mt[rows_t, pt], thr), yte) | {"threshold": thr}
    return {"default_threshold": default, "fitted_threshold": fitted}


def peer(train_texts, train_labels, test_texts, test_labels, names) -> dict | None:
    """Run aurelio semantic-router in its own venv on the same routes/test set (latency includes its encoder)."""
    if not PEER_PYTHON.exists():
        console.print("[yellow]peer skipped: /work/venv-bench not found[/]")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"routes": {n: [t for t, l in zip(train_texts, train_labels) if l == n]
                                               for n in names},
                                    "queries": test_texts}))
        out = Path(tmp) / "out.json"
        cmd = [str(PEER_PYTHON), str(REPO / "benchmarks" / "_semantic_router_peer.py"), str(spec), str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            console.print(f"[red]peer failed[/]: {res.stderr[-2000:]}")
            return None
        data = json.loads(out.read_text())
    idx = {n: i for i, n in enumerate(names)}
    pred = np.array([idx.get(p, -1) if p else -1 for p in data["predictions"]])
    labels = np.array([idx.get(l, -1) for l in test_labels])
    return metrics(pred, labels) | {"latency_ms_p50": data["latency_ms_p50"], "encode_ms_p50": data.get("encode_ms_p50"),
                                    "version": data.get("version"), "queries_timed": data.get("queries_timed")}


def latency(model: scoring.RouteModel, encoder, queries: list[str]) -> dict:
    """Per-query decision latency with the real encoder: encode + score, medians."""
    enc_t, score_t, total_t = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        x = encoder.encode([q])[0]
        t1 = time.perf_counter()
        scoring.decide(model, x, text=q if model.lex is not None else None)
        t2 = time.perf_counter()
        enc_t.append(t1 - t0)
        score_t.append(t2 - t1)
        total_t.append(t2 - t0)
    med = lambda v: round(statistics.median(v) * 1000, 3)  # noqa: E731
    return {"encode_ms_p50": med(enc_t), "score_ms_p50": med(score_t), "decision_ms_p50": med(total_t),
            "score_overhead_share": round(statistics.median(score_t) / statistics.median(enc_t), 4),
            "queries_timed": len(queries)}


def run(dataset: str, data_path: str | None, run_peer: bool, peer_n: int, lexical: bool = True,
        names_as_rows: bool = True) -> dict:
    enc = get_encoder()
    if dataset == "clinc":
        d = load_clinc(Path(data_path) if data_path else None)
        train, val, test = d["train"], d["val"] + d["oos_val"], d["test"] + d["oos_test"]
        tests = {"test": test}
        src = str(Path(data_path or DATA / "clinc150" / "data_full.json"))
    else:
        d = load_banking(Path(data_path) if data_path else None)
        train = d["train"]
        val = d["valid"] + d["id-oos/valid"] + d["ood-oos/valid"]
        tests = {"test+id-oos": d["test"] + d["id-oos/test"], "test+ood-oos": d["test"] + d["ood-oos/test"]}
        src = str(Path(data_path or DATA / "banking77_oos"))
    names = sorted({l for _, l in train if l != OOS})
    idx = {n: i for i, n in enumerate(names)}
    lab = lambda rows: np.array([idx.get(l, -1) for _, l in rows])  # noqa: E731
    emb = lambda rows: embed_cached([t for t, _ in rows], enc)  # noqa: E731
    xtr, ytr = emb(train), lab(train)
    keep = ytr >= 0
    xtr, ytr = xtr[keep], ytr[keep]
    train_in = [r for r in train if r[1] != OOS]
    xva, yva = emb(val), lab(val)
    va_texts = [t for t, _ in val]
    k = len(names)
    # each route's name in words joins its utterances, as the product's registry does (`label_utterances`);
    # the reference methods (centroid, semantic-router) use the utterances only, as the issue defines them
    lab_t = [(u, i) for i, n in enumerate(names) for u in label_utterances(n)] if names_as_rows else []
    xl = embed_cached([u for u, _ in lab_t], enc) if lab_t else np.zeros((0, xtr.shape[1]), np.float32)
    yl = np.array([i for _, i in lab_t], dtype=int)
    routes = lambda sel: scoring.Labelled(np.vstack([xtr[sel], xl]), np.concatenate([ytr[sel], yl]),  # noqa: E731
                                          [train_in[i][0] for i in sel] + [u for u, _ in lab_t])
    first10 = np.concatenate([np.where(ytr == i)[0][:10] for i in range(k)])
    settings: dict[str, list[np.ndarray]] = {"full": [np.arange(len(ytr))], "first10": [first10],
                                             "random10": [np.concatenate([np.random.default_rng(s).choice(
                                                 np.where(ytr == i)[0], 10, replace=False) for i in range(k)])
                                                 for s in (0, 1, 2)]}
    c_for = {"full": 10.0, "first10": 30.0, "random10": 30.0}
    result: dict = {"dataset": dataset, "data": src, "date": time.strftime("%Y-%m-%d"), "encoder": enc.model_id,
                    "routes": k, "lexical": lexical, "route_names_as_utterances": names_as_rows, "settings": {}}
    # one fit per routes setting (and seed), shared by the test sets; per-route thresholds reuse the same model
    fits: dict[tuple[str, int], tuple] = {}
    fits_val: dict[tuple[str, int], tuple] = {}
    for setting, sels in settings.items():
        for j, sel in enumerate(sels):
            t = time.perf_counter()
            reg = routes(sel)
            m = fit_ours(reg.x, reg.y, names, xva, yva, c_for[setting], (reg.texts, va_texts) if lexical else None)
            fit_s = time.perf_counter() - t
            per = with_route_thresholds(m, xva, yva, va_texts) if setting == "full" else {}
            fits[(setting, j)] = (m, fit_s, per)
            console.print(f"fitted {setting}[{j}] in {fit_s:.1f} s (lexical weight {m.alpha}, kNN weight {m.beta})")
            if lexical:
                # `mcp-router fit --data val`: classifier retrained on the routes + val, calibrated out-of-fold on val.
                # In the 10-per-route settings only val's out-of-scope rows may join training (routes stay 10-shot).
                t = time.perf_counter()
                mf, _, _ = scoring.retrain_route_model(
                    reg, scoring.Labelled(xva, yva, va_texts), names, c=c_for[setting], per_route=setting == "full",
                    trainable=None if setting == "full" else yva < 0)
                fits_val[(setting, j)] = (mf, time.perf_counter() - t)
                console.print(f"fit-on-val {setting}[{j}] in {fits_val[(setting, j)][1]:.1f} s")
    for test_name, test_rows in tests.items():
        xte, yte = emb(test_rows), lab(test_rows)
        te_texts = [t for t, _ in test_rows]
        for setting, sels in settings.items():
            runs = {"ours": [], "ours_per_route": [], "ours_fit_val": [], "ours_fit_val_per_route": [], "centroid": [],
                    "srouter_default": [], "srouter_fitted": []}
            for j, sel in enumerate(sels):
                a = (xtr[sel], ytr[sel])
                m, fit_s, per = fits[(setting, j)]
                runs["ours"].append(ours(m, fit_s, xte, yte, te_texts))
                if setting == "full":
                    runs["ours_per_route"].append(ours(m, fit_s, xte, yte, te_texts, per))
                if (setting, j) in fits_val:
                    mf, fs = fits_val[(setting, j)]
                    runs["ours_fit_val"].append(ours(mf, fs, xte, yte, te_texts))
                    if mf.route_thresholds:
                        runs["ours_fit_val_per_route"].append(ours(mf, fs, xte, yte, te_texts, mf.route_thresholds))
                runs["centroid"].append(centroid(*a, k, xva, yva, xte, yte))
                sr = srouter_style(*a, k, xva, yva, xte, yte)
                runs["srouter_default"].append(sr["default_threshold"])
                runs["srouter_fitted"].append(sr["fitted_threshold"])
            agg = {m: _mean(v) for m, v in runs.items() if v}
            result["settings"][f"{test_name}/{setting}"] = agg
            console.print(f"{test_name}/{setting}: ours overall {agg['ours']['overall_accuracy']:.4f}")
    write_result("router_" + dataset + ("" if lexical else "_embedding_only"), result)  # partial: accuracy first
    # latency + the peer, on the full-train routes
    first_test = next(iter(tests.values()))
    model = fits[("full", 0)][0]
    rng = np.random.default_rng(0)
    sample = [first_test[i][0] for i in rng.choice(len(first_test), min(peer_n, len(first_test)), replace=False)]
    enc.encode(["warm up"])
    result["latency_ours_full_routes"] = latency(model, enc, sample)
    if run_peer:
        for setting in ("full", "first10"):
            sel = settings[setting][0]
            tr_t = [train_in[i][0] for i in sel] + [u for u, _ in lab_t]  # the same routes as ours
            tr_l = [names[ytr[i]] for i in sel] + [names[i] for _, i in lab_t]
            pick = np.random.default_rng(1).choice(len(first_test), min(peer_n, len(first_test)), replace=False)
            peer_rows = [first_test[i] for i in pick]
            pr = peer(tr_t, tr_l, [t for t, _ in peer_rows], [l for _, l in peer_rows], names)
            if pr:
                # ours on exactly the same rows, for the latency ratio
                m = fits[(setting, 0)][0]
                lat = latency(m, enc, [t for t, _ in peer_rows[:300]])
                xs, ys = emb(peer_rows), lab(peer_rows)
                probs, feats = scoring.model_scores(m, xs, [t for t, _ in peer_rows] if m.lex is not None else None)
                pr["ours_same_rows"] = metrics(scoring.apply_threshold(probs.argmax(1), m.acceptor.score(feats),
                                                                       m.threshold), ys)
                pr["ours_latency_same_run"] = lat
                pr["latency_ratio_ours_over_peer"] = round(lat["decision_ms_p50"] / pr["latency_ms_p50"], 3)
                result[f"peer_semantic_router/{setting}"] = pr
    return result


def _mean(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    out = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in keys}
    if len(runs) > 1:
        out["overall_accuracy_std"] = round(float(np.std([r["overall_accuracy"] for r in runs])), 4)
        out["runs"] = len(runs)
    return out


def render(result: dict) -> None:
    t = Table(title=f"router on {result['dataset']} ({result['routes']} routes, {result['encoder']})")
    for col in ("setting", "method", "in-scope acc", "OOS recall", "OOS precision", "overall"):
        t.add_column(col)
    for setting, methods in result["settings"].items():
        for m, v in methods.items():
            t.add_row(setting, m, f"{v['in_scope_accuracy']:.1%}", f"{v['oos_recall']:.1%}",
                      f"{v['oos_precision']:.1%}", f"{v['overall_accuracy']:.1%}")
    for key, v in result.items():
        if key.startswith("peer_semantic_router"):
            t.add_row(key.split("/")[1], f"aurelio semantic-router {v.get('version')}", f"{v['in_scope_accuracy']:.1%}",
                      f"{v['oos_recall']:.1%}", f"{v['oos_precision']:.1%}", f"{v['overall_accuracy']:.1%}")
    console.print(t)
    lat = result.get("latency_ours_full_routes")
    if lat:
        console.print(f"ours, full routes: encode p50 {lat['encode_ms_p50']} ms, scoring p50 {lat['score_ms_p50']} ms "
                      f"({lat['score_overhead_share']:.1%} of the encode), decision p50 {lat['decision_ms_p50']} ms")
    for key, v in result.items():
        if key.startswith("peer_semantic_router"):
            o = v["ours_latency_same_run"]
            console.print(f"{key}: semantic-router p50 {v['latency_ms_p50']} ms vs ours {o['decision_ms_p50']} ms "
                          f"(ratio {v['latency_ratio_ours_over_peer']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=["clinc", "banking"])
    ap.add_argument("--data", default=None, help="data path (default: ../shared/data/...)")
    ap.add_argument("--peer", action="store_true", help="also run aurelio semantic-router from /work/venv-bench")
    ap.add_argument("--knn", action="store_true", help="also offer a kNN vote over the utterances to the blend")
    ap.add_argument("--no-lexical", action="store_true",
                    help="embedding classifier only (no TF-IDF blend, no kNN vote): the previous method")
    ap.add_argument("--no-route-names", action="store_true",
                    help="do not add each route's name to its utterances (the product does; see label_utterances)")
    ap.add_argument("--peer-queries", type=int, default=1000, help="random test queries the peer is scored on "
                    "(the first 300 are timed)")
    args = ap.parse_args()
    global KNN
    KNN = args.knn
    result = run(args.dataset, args.data, args.peer, args.peer_queries, lexical=not args.no_lexical,
                 names_as_rows=not args.no_route_names)
    render(result)
    suffix = "" if result["lexical"] else "_embedding_only"
    console.print(f"wrote {write_result('router_' + args.dataset + suffix, result)}")


if __name__ == "__main__":
    main()

"""Experiment: does contrastive fine-tuning of the embedded encoder on the route utterances help the router?

    python benchmarks/exp_router_finetune.py clinc     # routes = first 10 / 10 random (3 seeds) per intent
    python benchmarks/exp_router_finetune.py banking   # routes = the verified train split (all of it)
    python benchmarks/exp_router_finetune.py all

Three vector sources feed the *same* scorer as `bench_router_intents.py` ("ours": embedding + TF-IDF logistic
regression fitted on the train routes; blend weight, acceptor and threshold fitted on val incl. OOS val):

- ``baseline``: the embedded all-MiniLM-L6-v2 (ONNX, the shipped encoder; cached vectors).
- ``finetune``: the encoder fine-tuned SetFit-style on the route utterances only: MultipleNegativesRankingLoss
  (symmetric, scale 20) on (utterance, another utterance of the same route) pairs, each route at most once per batch
  (so no in-batch false negatives). Out-of-scope train rows (CLINC has 100) are NOT used, as in the baseline.
  Checkpoints go to /work/scratch/ft/ (outside the repo).
- ``adapter``: a residual adapter on frozen vectors, ``normalise(x + x A)`` (linear) or ``normalise(x + W2 gelu(W1 x))``
  (MLP), trained with the same in-batch contrastive loss on the route vectors; what could ship without torch.

Training uses the selected train utterances only; configuration choices (epochs, lr, adapter kind) are made on val
(overall accuracy of the fitted scorer on val); every reported number is on test.
Prints a rich table and writes benchmarks/results/router_finetune.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _routing_data import OOS, embed_cached, load_banking, load_clinc, write_result  # noqa: E402
from bench_router_intents import fit_ours, metrics  # noqa: E402
from indexer.encoder import Encoder, get_encoder  # noqa: E402
from mcp_router.routing import scoring  # noqa: E402
from mcp_router.routing.tune import fine_tune_model, pair_batches  # noqa: E402

console = Console(width=170)
SCRATCH = Path(os.environ.get("FT_SCRATCH", "/work/scratch/ft"))


# -- data (exactly the splits and route selections of bench_router_intents.py) --------------------------------------

def load(dataset: str) -> dict:
    if dataset == "clinc":
        d = load_clinc()
        train, val = d["train"], d["val"] + d["oos_val"]
        tests = {"test": d["test"] + d["oos_test"]}
        settings = ["first10", "random10"]
        c_for = {"first10": 30.0, "random10": 30.0, "full": 10.0}
    else:
        d = load_banking()
        train = d["train"]
        val = d["valid"] + d["id-oos/valid"] + d["ood-oos/valid"]
        tests = {"test+id-oos": d["test"] + d["id-oos/test"], "test+ood-oos": d["test"] + d["ood-oos/test"]}
        settings = ["full"]
        c_for = {"full": 10.0}
    names = sorted({l for _, l in train if l != OOS})
    idx = {n: i for i, n in enumerate(names)}
    train_in = [r for r in train if r[1] != OOS]  # OOS train rows dropped, as in the benchmark
    ytr = np.array([idx[l] for _, l in train_in])
    k = len(names)
    sels: dict[str, list[np.ndarray]] = {}
    if "first10" in settings:
        sels["first10"] = [np.concatenate([np.where(ytr == i)[0][:10] for i in range(k)])]
    if "random10" in settings:
        sels["random10"] = [np.concatenate([np.random.default_rng(s).choice(np.where(ytr == i)[0], 10, replace=False)
                                            for i in range(k)]) for s in (0, 1, 2)]
    if "full" in settings:
        sels["full"] = [np.arange(len(ytr))]
    lab = lambda rows: np.array([idx.get(l, -1) for _, l in rows])  # noqa: E731
    return {"names": names, "train_texts": [t for t, _ in train_in], "ytr": ytr, "val_texts": [t for t, _ in val],
            "yva": lab(val), "tests": {n: ([t for t, _ in r], lab(r)) for n, r in tests.items()}, "sels": sels,
            "c_for": c_for}


# -- scorer on a given vector source --------------------------------------------------------------------------------

def evaluate(D: dict, c: float, sel: np.ndarray, vec) -> dict:
    """Fit "ours" on the selected routes with vectors from ``vec(texts)`` and score val (for choices) and test."""
    tr_t = [D["train_texts"][i] for i in sel]
    xtr, ytr = vec(tr_t), D["ytr"][sel]
    xva = vec(D["val_texts"])
    t = time.perf_counter()
    m = fit_ours(xtr, ytr, D["names"], xva, D["yva"], c, (tr_t, D["val_texts"]))
    fit_s = time.perf_counter() - t

    def score(x, texts, y):
        probs, feats = scoring.model_scores(m, x, texts)
        return metrics(scoring.apply_threshold(probs.argmax(1), m.acceptor.score(feats), m.threshold), y)

    out = {"val": score(xva, D["val_texts"], D["yva"]), "fit_seconds": round(fit_s, 1),
           "lexical_weight": m.alpha, "threshold": m.threshold}
    for name, (texts, y) in D["tests"].items():
        out[name] = score(vec(texts), texts, y)
    return out


# -- full fine-tune (the product's training loop, `mcp_router.routing.tune`) ------------------------------------------

def finetune(texts: list[str], labels: np.ndarray, out: Path, epochs: int, lr: float, batch: int = 64,
             seed: int = 0) -> float:
    """SetFit-style contrastive fine-tune of the embedded model; saves a torch checkpoint to ``out``; returns wall
    seconds."""
    model, info = fine_tune_model(texts, labels, epochs=epochs, lr=lr, batch=batch, seed=seed)
    console.print(f"  {info['steps']} steps, loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}, "
                  f"{info['train_seconds']:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return info["train_seconds"]


class TunedVectors:
    """Encode with a tuned checkpoint (torch), caching vectors per text list under the checkpoint folder."""

    def __init__(self, path: Path) -> None:
        from sentence_transformers import SentenceTransformer

        self.path = path
        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.eval()
        self._mem: dict[int, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        import hashlib

        h = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        f = self.path / "vecs" / f"{h}.npy"
        if f.exists():
            return np.load(f)
        arr = self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False).astype(np.float32)
        f.parent.mkdir(exist_ok=True)
        np.save(f, arr)
        return arr


# -- adapter on frozen vectors --------------------------------------------------------------------------------------

def train_adapter(x: np.ndarray, y: np.ndarray, kind: str, epochs: int, lr: float = 1e-3, batch: int = 64,
                  seed: int = 0, wd: float = 1e-2) -> tuple[dict, float]:
    """Residual adapter trained with the in-batch contrastive loss on frozen route vectors (numpy weights out)."""
    import torch

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    d = x.shape[1]
    X = torch.tensor(x)
    if kind == "linear":
        A = torch.nn.Parameter(torch.zeros(d, d))
        params = [A]
        f = lambda v: v + v @ A  # noqa: E731
    else:
        W1 = torch.nn.Linear(d, d)
        W2 = torch.nn.Linear(d, d)
        torch.nn.init.zeros_(W2.weight)
        torch.nn.init.zeros_(W2.bias)
        params = list(W1.parameters()) + list(W2.parameters())
        f = lambda v: v + W2(torch.nn.functional.gelu(W1(v)))  # noqa: E731
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for b in pair_batches(y, batch, rng):
            a = torch.nn.functional.normalize(f(X[[i for i, _ in b]]), dim=-1)
            p = torch.nn.functional.normalize(f(X[[j for _, j in b]]), dim=-1)
            s = 20.0 * a @ p.T
            tgt = torch.arange(len(b))
            loss = (torch.nn.functional.cross_entropy(s, tgt) + torch.nn.functional.cross_entropy(s.T, tgt)) / 2
            loss.backward()
            opt.step()
            opt.zero_grad()
    secs = time.perf_counter() - t0
    if kind == "linear":
        w = {"kind": kind, "A": A.detach().numpy().copy()}
    else:
        w = {"kind": kind, "W1": W1.weight.detach().numpy().T.copy(), "b1": W1.bias.detach().numpy().copy(),
             "W2": W2.weight.detach().numpy().T.copy(), "b2": W2.bias.detach().numpy().copy()}
    return w, secs


def apply_adapter(w: dict, x: np.ndarray) -> np.ndarray:
    """Numpy-only query-time transform (what would ship)."""
    if w["kind"] == "linear":
        z = x + x @ w["A"]
    else:
        h = x @ w["W1"] + w["b1"]
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))  # gelu (tanh approx.)
        z = x + h @ w["W2"] + w["b2"]
    return scoring.normalise(z).astype(np.float32)


# -- the experiment -------------------------------------------------------------------------------------------------

# (epochs, lr). Kept small: on the shared 2-core machine one step (64 pairs = 128 utterances, forward + backward)
# takes ~7 s, i.e. ~3 min per epoch of 1,500 utterances.
FT_GRID = {"few": [(4, 3e-5)], "full": [(1, 3e-5)]}
AD_GRID = [("linear", 5), ("linear", 10), ("linear", 20), ("mlp", 10)]


def run_dataset(dataset: str, ft_grid: dict, quick: bool, ft_seeds: int = 3) -> dict:
    D = load(dataset)
    enc = get_encoder()
    base = lambda texts: embed_cached(texts, enc)  # noqa: E731
    res: dict = {}
    for setting, sels in D["sels"].items():
        c = D["c_for"][setting]
        grid = ft_grid["full" if setting == "full" else "few"]
        runs: dict[str, list] = {"baseline": [], "finetune": [], "adapter": []}
        choices: dict[str, list] = {"finetune": [], "adapter": []}
        for j, sel in enumerate(sels):
            if quick and j > 0:
                break
            tag = f"{dataset}-{setting}-{j}"
            tr_t = [D["train_texts"][i] for i in sel]
            ytr = D["ytr"][sel]
            b = evaluate(D, c, sel, base)
            runs["baseline"].append(b)
            console.print(f"{tag} baseline: val {b['val']['overall_accuracy']:.4f} "
                          + " ".join(f"{n} {b[n]['overall_accuracy']:.4f}" for n in D["tests"]))
            # adapter: grid chosen on val
            xtr = base(tr_t)
            best = None
            for kind, ep in AD_GRID:
                w, secs = train_adapter(xtr, ytr, kind, ep)
                r = evaluate(D, c, sel, lambda texts, w=w: apply_adapter(w, base(texts)))
                r |= {"train_seconds": round(secs, 1), "config": f"{kind} x{ep} epochs"}
                console.print(f"{tag} adapter {kind} x{ep}: val {r['val']['overall_accuracy']:.4f} "
                              + " ".join(f"{n} {r[n]['overall_accuracy']:.4f}" for n in D["tests"])
                              + f" ({secs:.1f} s)")
                choices["adapter"].append({"config": r["config"], "val": r["val"]["overall_accuracy"]})
                if best is None or r["val"]["overall_accuracy"] > best["val"]["overall_accuracy"]:
                    best = r
            runs["adapter"].append(best)
            if j >= ft_seeds:
                continue
            # full fine-tune: grid chosen on val
            best = None
            for ep, lr in grid:
                out = SCRATCH / f"{tag}-e{ep}-lr{lr:g}"
                meta = out / "ft_meta.json"
                if meta.exists():
                    secs = json.loads(meta.read_text())["train_seconds"]
                else:
                    console.print(f"{tag}: fine-tuning {ep} epochs lr {lr:g} on {len(tr_t)} utterances")
                    secs = finetune(tr_t, ytr, out, ep, lr)
                    meta.write_text(json.dumps({"train_seconds": secs, "utterances": len(tr_t)}))
                r = evaluate(D, c, sel, TunedVectors(out))
                r |= {"train_seconds": round(secs, 1), "config": f"{ep} epochs lr {lr:g}", "checkpoint": str(out)}
                console.print(f"{tag} finetune e{ep} lr{lr:g}: val {r['val']['overall_accuracy']:.4f} "
                              + " ".join(f"{n} {r[n]['overall_accuracy']:.4f}" for n in D["tests"])
                              + f" ({secs:.0f} s)")
                choices["finetune"].append({"config": r["config"], "val": r["val"]["overall_accuracy"]})
                if best is None or r["val"]["overall_accuracy"] > best["val"]["overall_accuracy"]:
                    best = r
            runs["finetune"].append(best)
        res[setting] = {"runs": runs, "choices": choices}
        res[setting]["summary"] = {m: summarise(v, list(D["tests"])) for m, v in runs.items() if v}
        if len(runs["finetune"]) < len(runs["baseline"]):  # like-for-like: the seeds the fine-tune ran on
            n = len(runs["finetune"])
            for m in ("baseline", "adapter"):
                res[setting]["summary"][f"{m} (first {n} seed)"] = summarise(runs[m][:n], list(D["tests"]))
    return res


def summarise(runs: list[dict], tests: list[str]) -> dict:
    out = {}
    for t in ["val"] + tests:
        out[t] = {k: round(float(np.mean([r[t][k] for r in runs])), 4) for k in runs[0][t]}
        if len(runs) > 1:
            out[t]["overall_accuracy_std"] = round(float(np.std([r[t]["overall_accuracy"] for r in runs])), 4)
    if "train_seconds" in runs[0]:
        out["train_seconds"] = round(float(np.mean([r["train_seconds"] for r in runs])), 1)
    out["configs"] = [r.get("config", "-") for r in runs]
    out["runs"] = len(runs)
    return out


def latency(checkpoint: Path, n: int = 200) -> dict:
    """Per-query encode time (median) of the base and a tuned model, torch and ONNX (the shipped backend)."""
    from sentence_transformers import SentenceTransformer

    D = load("clinc")
    qs = D["tests"]["test"][0][:n]
    out = {}
    onnx_dir = checkpoint.parent / (checkpoint.name + "-onnx")
    if not (onnx_dir / "onnx" / "model.onnx").exists():
        t = time.perf_counter()
        SentenceTransformer(str(checkpoint), backend="onnx", device="cpu").save(str(onnx_dir))
        out["onnx_export_seconds"] = round(time.perf_counter() - t, 1)
    for label, enc in (("base_onnx", get_encoder()), ("tuned_onnx", Encoder(str(onnx_dir), "onnx")),
                       ("base_torch", Encoder("all-MiniLM-L6-v2", "torch")), ("tuned_torch", Encoder(str(checkpoint), "torch"))):
        enc.encode(["warm up"])
        ts = []
        for q in qs:
            t = time.perf_counter()
            enc.encode([q])
            ts.append(time.perf_counter() - t)
        out[f"{label}_encode_ms_p50"] = round(statistics.median(ts) * 1000, 2)
    tv = TunedVectors(checkpoint)
    a = tv.model.encode(qs[:50], normalize_embeddings=True)
    b = Encoder(str(onnx_dir), "onnx").encode(qs[:50])
    out["tuned_onnx_vs_torch_min_cosine"] = round(float((a * b).sum(1).min()), 5)
    return out


def render(result: dict) -> None:
    t = Table(title="router: baseline vs fine-tuned encoder vs adapter (scorer 'ours', numbers on test)")
    for col in ("dataset/setting", "test set", "method", "in-scope acc", "OOS recall", "overall", "val overall",
                "train s", "config"):
        t.add_column(col)
    for ds, settings in result["datasets"].items():
        for setting, r in settings.items():
            for m, s in r["summary"].items():
                for test in [k for k in s if k not in ("val", "train_seconds", "configs", "runs")]:
                    v = s[test]
                    std = f" ±{v['overall_accuracy_std']:.1%}" if "overall_accuracy_std" in v else ""
                    t.add_row(f"{ds}/{setting}", test, m, f"{v['in_scope_accuracy']:.1%}", f"{v['oos_recall']:.1%}",
                              f"{v['overall_accuracy']:.1%}{std}", f"{s['val']['overall_accuracy']:.1%}",
                              str(s.get("train_seconds", "-")), ", ".join(sorted(set(s["configs"]))))
    console.print(t)
    if "latency" in result:
        console.print("encode per query (p50 ms): " + json.dumps(result["latency"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=["clinc", "banking", "all"])
    ap.add_argument("--quick", action="store_true", help="first seed only")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--ft-seeds", type=int, default=3, help="fine-tune only the first N route selections "
                    "(baseline and adapter run on all)")
    ap.add_argument("--ft-epochs-few", type=int, default=None, help="override the few-shot fine-tune epochs")
    ap.add_argument("--render", action="store_true", help="print the table of the last results JSON and exit")
    args = ap.parse_args()
    if args.render:
        render(json.loads((Path(__file__).resolve().parent / "results" / "router_finetune.json").read_text()))
        return
    import torch

    torch.set_num_threads(2)
    out_name = "router_finetune"
    path = Path(__file__).resolve().parent / "results" / f"{out_name}.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result.setdefault("datasets", {})
    result |= {"date": time.strftime("%Y-%m-%d"), "encoder": "all-MiniLM-L6-v2", "scorer": "ours (bench_router_intents)",
               "oos_train_rows_used": False, "ft_grid": FT_GRID, "adapter_grid": AD_GRID}
    for ds in (["clinc", "banking"] if args.dataset == "all" else [args.dataset]):
        grid = dict(FT_GRID)
        if args.ft_epochs_few:
            grid["few"] = [(args.ft_epochs_few, 3e-5)]
        result["datasets"][ds] = run_dataset(ds, grid, args.quick, args.ft_seeds)
        write_result(out_name, result)
    if not args.no_latency:
        cks = sorted(SCRATCH.glob("clinc-first10-0-*"))
        cks = [c for c in cks if c.is_dir() and not c.name.endswith("-onnx")]
        if cks:
            result["latency"] = latency(cks[0])
    render(result)
    console.print(f"wrote {write_result(out_name, result)}")


if __name__ == "__main__":
    main()

"""Experiment: a verification stage after the nearest-neighbour search, measured on QQP (not shipped; see docs/cache.md).

Question: can word-level alignment of the two questions, computed with the per-token vectors of the same model
(`Encoder.encode_tokens`), lift the QQP hit rate at <= 1% false hits (issue 7's target: >= 30%) while the coding-pairs
benchmark keeps zero false hits and >= 80% paraphrase hits?

Features of a pair (`pair_features`): sentence cosine; a BERTScore-like F1 of greedy word matching; the worst-aligned
content word; IDF-weighted alignment gap and unmatched-word mass (suffix-stripped lemmas, a contextual cosine >= 0.8
counting as a synonym), the rarest unmatched word, a substitution score (both sides have a rare word the other lacks),
per-side extra mass, content-word Jaccard, character sequence ratio, word-order discordance of the shared words,
length difference, question-word difference. IDF comes from the fit split's questions only.

Protocol: QQP shuffled with ``--seed``; the first ``--n`` pairs are the REPORTED split (the same 10,000 pairs as
bench_cache_qqp.py), the next ``--fit-n`` pairs the FIT split (disjoint). A logistic model is fitted on fit-split pairs
that pass the cosine gate and the guard; for each target false-hit rate the probability threshold is chosen on the fit
split; the table reports the held-out split with Wilson 95% CIs, next to the plain gate + guard at the cosine
threshold chosen the same way. The coding pairs are scored at the same thresholds.

    python benchmarks/bench_cache_verifier.py [--n 10000] [--fit-n 30000] [--gate 0.80] [--token-cache DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import pickle
import re
import sys
import time
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mcp_router.cache.guard import STOPWORDS, check_pair  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cache_qqp import shuffled_order, wilson  # noqa: E402  # one Wilson interval for both QQP scripts

# Question words decide what kind of answer is wanted ("why X" vs "how X"); they are kept out of the content words and
# compared on their own.
_WH = ("what", "how", "why", "which", "who", "whom", "whose", "where", "when", "is", "are", "can", "should", "do",
       "does", "will", "would", "could")
_SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>"}
_ALNUM = re.compile(r"[a-z0-9]")


@dataclass(frozen=True)
class Word:
    """One word of a question: its text, its lemma-lite form and its contextual vector (unit length)."""

    text: str
    lemma: str
    vector: np.ndarray
    content: bool


def lemma(word: str) -> str:
    """A crude, deterministic stem so that "sorted"/"sorting"/"sorts" and "libraries"/"library" compare equal.

    Both questions go through the same function, so over-stemming only matters if it merges two different words.
    """
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("ly", 4), ("s", 3)):
        if w.endswith(suffix) and len(w) - len(suffix) >= keep - 1 and not w.endswith("ss"):
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiousl":  # "stopp(ed)" → "stop"
        w = w[:-1]
    return w


def words_of(tokens: Sequence[str], word_ids: Sequence[int], vectors: np.ndarray) -> list[Word]:
    """Group word pieces into words (vector = mean of its pieces, normalised); special tokens are dropped."""
    groups: dict[int, list[int]] = {}
    for i, (tok, wid) in enumerate(zip(tokens, word_ids)):
        if wid < 0 or tok in _SPECIAL:
            continue
        groups.setdefault(wid, []).append(i)
    out = []
    for wid in sorted(groups):
        idx = groups[wid]
        text = "".join(tokens[i][2:] if tokens[i].startswith("##") else tokens[i] for i in idx).lower()
        if not _ALNUM.search(text):
            continue  # punctuation carries no content and aligns with anything
        v = vectors[idx].astype(np.float32).mean(axis=0)
        v = v / max(float(np.linalg.norm(v)), 1e-9)
        out.append(Word(text, lemma(text), v, text not in STOPWORDS and text not in _WH))
    return out


def _best_matches(x: list[Word], y: list[Word]) -> np.ndarray:
    """For every word of ``x``, the cosine of its best match among the words of ``y`` (0 when ``y`` is empty)."""
    if not x or not y:
        return np.zeros(len(x), dtype=np.float32)
    sims = np.stack([w.vector for w in x]) @ np.stack([w.vector for w in y]).T
    return sims.max(axis=1)


def discordance(a: Sequence[str], b: Sequence[str]) -> float:
    """Fraction of the pairs of shared words whose order is reversed between ``a`` and ``b`` (0 = same order).

    "Apple better than Samsung" vs "Samsung better than Apple" → 1.0; a paraphrase that keeps the words in order → 0.
    """
    pos_a = {w: i for i, w in reversed(list(enumerate(a)))}
    pos_b = {w: i for i, w in reversed(list(enumerate(b)))}
    shared = [w for w in dict.fromkeys(a) if w in pos_b]
    pairs = discordant = 0
    for i in range(len(shared)):
        for j in range(i + 1, len(shared)):
            x, z = shared[i], shared[j]
            pairs += 1
            discordant += (pos_a[x] - pos_a[z]) * (pos_b[x] - pos_b[z]) < 0
    return discordant / pairs if pairs else 0.0


def _wh(ws: list[Word]) -> str:
    return next((w.text for w in ws if w.text in _WH), "")


def pair_features(a: list[Word], b: list[Word], cosine: float, idf: Callable[[str], float],
                  synonym_sim: float = 0.80) -> dict[str, float]:
    """The verifier's features for two questions given as `words_of` lists (symmetric in ``a`` and ``b``).

    ``idf`` maps a lemma to its inverse document frequency (rare words high); ``synonym_sim`` is the contextual
    cosine at which a word of the other side counts as the same word ("quickly" ~ "fast").
    """
    feats: dict[str, float] = {"cosine": float(cosine)}
    ra, rb = _best_matches(a, b), _best_matches(b, a)
    # BERTScore-like F1 over all words (stop words included: they carry the question's shape).
    p = float(ra.mean()) if len(ra) else 0.0
    r = float(rb.mean()) if len(rb) else 0.0
    feats["align_f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    ca = [i for i, w in enumerate(a) if w.content]
    cb = [i for i, w in enumerate(b) if w.content]
    content_best = [float(ra[i]) for i in ca] + [float(rb[i]) for i in cb]
    feats["align_min"] = min(content_best) if content_best else 1.0
    weights = [idf(a[i].lemma) for i in ca] + [idf(b[i].lemma) for i in cb]
    total = sum(weights) or 1.0
    feats["align_gap_idf"] = sum(wt * (1.0 - s) for wt, s in zip(weights, content_best)) / total
    # Unmatched content words: not the same lemma on the other side, and no close contextual match either.
    la, lb = {w.lemma for w in a}, {w.lemma for w in b}
    lex_a = [i for i in ca if a[i].lemma not in lb]
    lex_b = [i for i in cb if b[i].lemma not in la]
    lex_mass = sum(idf(a[i].lemma) for i in lex_a) + sum(idf(b[i].lemma) for i in lex_b)
    feats["unmatched_idf"] = lex_mass / total
    soft = [a[i].lemma for i in lex_a if ra[i] < synonym_sim] + [b[i].lemma for i in lex_b if rb[i] < synonym_sim]
    soft_side_a = [a[i].lemma for i in lex_a if ra[i] < synonym_sim]
    soft_side_b = [b[i].lemma for i in lex_b if rb[i] < synonym_sim]
    feats["soft_unmatched_idf"] = sum(idf(x) for x in soft) / total
    feats["soft_unmatched_max_idf"] = max((idf(x) for x in soft), default=0.0)
    # Both sides having a word the other lacks (a substitution: Python ↔ Java) is worse than one side adding detail.
    feats["substitution_idf"] = min(max((idf(x) for x in soft_side_a), default=0.0),
                                    max((idf(x) for x in soft_side_b), default=0.0))
    mass_a, mass_b = sum(idf(x) for x in soft_side_a) / total, sum(idf(x) for x in soft_side_b) / total
    feats["extra_max_side"] = max(mass_a, mass_b)
    feats["extra_min_side"] = min(mass_a, mass_b)
    sa, sb = {a[i].lemma for i in ca}, {b[i].lemma for i in cb}
    feats["content_jaccard"] = len(sa & sb) / max(len(sa | sb), 1)
    feats["seq_ratio"] = SequenceMatcher(None, " ".join(w.lemma for w in a), " ".join(w.lemma for w in b)).ratio()
    feats["order_swap"] = discordance([a[i].lemma for i in ca], [b[i].lemma for i in cb])
    na, nb = len(ca), len(cb)
    feats["content_words"] = float(min(na, nb))
    feats["length_ratio"] = abs(na - nb) / max(na, nb, 1)
    feats["wh_differs"] = float(_wh(a) != _wh(b))
    return feats




# --------------------------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------------------------

TARGET_FALSE_RATES = (0.01, 0.02, 0.03, 0.04)
GATE_CHUNK = 1000




def idf_table(texts: list[str]) -> tuple[dict[str, float], float]:
    """Smoothed IDF of lemmas over distinct questions; unseen words get the maximum (they are rare)."""
    df: collections.Counter[str] = collections.Counter()
    seen = set()
    for t in texts:
        k = t.strip().lower()
        if k not in seen:
            seen.add(k)
            df.update({lemma(w) for w in re.findall(r"[a-z0-9]+", k)})
    n = len(seen)
    return {w: math.log((n + 1) / (c + 1)) + 1 for w, c in df.items()}, math.log(n + 1) + 1


def encode_split(name: str, pairs: list[tuple[int, str, str]], cache: Path, gate: float) -> dict:
    """Sentence cosine of every pair, and token vectors (float16) of the pairs at or above ``gate``; cached by chunk."""
    from indexer.encoder import get_encoder

    cos: dict[int, float] = {}
    tok: dict[int, tuple] = {}
    cache.mkdir(parents=True, exist_ok=True)
    for c in range(0, len(pairs), GATE_CHUNK):
        f = cache / f"{name}{c // GATE_CHUNK:02d}.pkl"
        chunk = pairs[c : c + GATE_CHUNK]
        if not f.exists():
            enc = get_encoder()
            tv = enc.encode_tokens([a for _, a, _ in chunk] + [b for _, _, b in chunk], batch_size=64)
            n = len(chunk)

            def pooled(v: np.ndarray) -> np.ndarray:
                m = v.mean(0)
                return m / np.linalg.norm(m)

            ccos = np.array([float(pooled(tv[k].vectors) @ pooled(tv[n + k].vectors)) for k in range(n)])
            keep = {chunk[k][0]: (tv[k].tokens, tv[k].word_ids, tv[k].vectors.astype(np.float16), tv[n + k].tokens,
                                  tv[n + k].word_ids, tv[n + k].vectors.astype(np.float16))
                    for k in range(n) if ccos[k] >= gate - 0.005}
            with f.open("wb") as fh:
                pickle.dump({"idx": [i for i, _, _ in chunk], "cos": ccos, "tok": keep}, fh)
        with f.open("rb") as fh:
            d = pickle.load(fh)
        cos.update({i: float(x) for i, x in zip(d["idx"], d["cos"])})
        tok.update(d["tok"])
    return {"cos": cos, "tok": tok}


def feature_matrix(ids: list[int], split: dict, idf: Callable[[str], float], texts: dict[int, tuple[str, str]],
                   gate: float) -> tuple[list[int], list[str], np.ndarray, np.ndarray]:
    """Features of the pairs that pass the gate and the guard (the only pairs a verifier ever sees)."""
    rows, kept = [], []
    for i in ids:
        c = split["cos"][i]
        if c < gate or i not in split["tok"] or not check_pair(*texts[i]).allowed:
            continue
        ta, wa, va, tb, wb, vb = split["tok"][i]
        rows.append(pair_features(words_of(ta, wa, va), words_of(tb, wb, vb), c, idf))
        kept.append(i)
    names = list(rows[0])
    return kept, names, np.array([[r[k] for k in names] for r in rows]), np.array([split["cos"][i] for i in kept])


def threshold_for(scores: np.ndarray, y: np.ndarray, n_neg: int, rate: float) -> float:
    """The lowest score threshold whose false hits (over all ``n_neg`` non-duplicates) stay <= ``rate``."""
    neg = np.sort(scores[y == 0])[::-1]
    k = int(math.floor(rate * n_neg))
    return float(neg[k]) + 1e-9 if k < len(neg) else -np.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str((REPO / "../shared/data/qqp/similiar_qqp_full.json").resolve()))
    ap.add_argument("--pairs", default=str(REPO / "fixtures/cache/coding_pairs.jsonl"))
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--fit-n", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gate", type=float, default=0.80, help="cosine a pair needs before the verifier looks at it")
    ap.add_argument("--token-cache", default=str(REPO / "benchmarks/results/qqp_tokens"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/bench_cache_verifier.json"))
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    console = Console(width=160)
    data = json.loads(Path(args.data).read_text())
    order = shuffled_order(len(data), args.seed)  # the same split as bench_cache_qqp.py, so fit and report stay disjoint
    rep, fit = order[: args.n], order[args.n : args.n + args.fit_n]
    assert not set(rep) & set(fit)
    texts = {i: (data[i]["text_a"], data[i]["text_b"]) for i in rep + fit}
    label = {i: int(data[i]["label"]) for i in rep + fit}
    t0 = time.perf_counter()
    cache = Path(args.token_cache)
    fit_split = encode_split("fit", [(i, *texts[i]) for i in fit], cache, args.gate)
    rep_split = encode_split("rep", [(i, *texts[i]) for i in rep], cache, args.gate)
    idf_map, idf_max = idf_table([t for i in fit for t in texts[i]])

    def idf(w: str) -> float:
        return idf_map.get(w, idf_max)

    f_ids, names, fx, fcos = feature_matrix(fit, fit_split, idf, texts, args.gate)
    r_ids, _, rx, rcos = feature_matrix(rep, rep_split, idf, texts, args.gate)
    fy, ry = np.array([label[i] for i in f_ids]), np.array([label[i] for i in r_ids])
    fit_neg = sum(1 - label[i] for i in fit)
    rep_neg, rep_pos = sum(1 - label[i] for i in rep), sum(label[i] for i in rep)
    mu, sd = fx.mean(0), fx.std(0) + 1e-9
    model = LogisticRegression(max_iter=5000).fit((fx - mu) / sd, fy)
    f_score, r_score = model.decision_function((fx - mu) / sd), model.decision_function((rx - mu) / sd)
    console.print(f"fit split {len(fit):,} pairs ({len(f_ids):,} past gate {args.gate} + guard), reported split "
                  f"{len(rep):,} pairs ({len(r_ids):,} past gate + guard); {time.perf_counter() - t0:.0f} s")

    # Coding pairs, same features and IDF.
    from indexer.encoder import get_encoder

    enc = get_encoder()
    pairs = [json.loads(line) for line in Path(args.pairs).read_text().splitlines() if line.strip()]
    tv = enc.encode_tokens([p["a"] for p in pairs] + [p["b"] for p in pairs])
    ccos = (enc.encode([p["a"] for p in pairs]) * enc.encode([p["b"] for p in pairs])).sum(1)
    n = len(pairs)
    c_ok = np.array([ccos[k] >= args.gate and check_pair(p["a"], p["b"]).allowed for k, p in enumerate(pairs)])
    c_feats = np.array([[pair_features(words_of(tv[k].tokens, tv[k].word_ids, tv[k].vectors),
                                       words_of(tv[n + k].tokens, tv[n + k].word_ids, tv[n + k].vectors),
                                       float(ccos[k]), idf)[m] for m in names] for k in range(n)])
    c_score = model.decision_function((c_feats - mu) / sd)
    c_y = np.array([int(p["label"] == "hit") for p in pairs])
    # Latency of the verification step itself (token vectors of both questions + features), single pairs.
    ms = []
    for p in pairs[:60]:
        t1 = time.perf_counter()
        a, b = enc.encode_tokens([p["a"], p["b"]])
        pair_features(words_of(a.tokens, a.word_ids, a.vectors), words_of(b.tokens, b.word_ids, b.vectors), 0.9, idf)
        ms.append((time.perf_counter() - t1) * 1000)

    def held_out(hit: np.ndarray) -> dict:
        tp, fp = int((hit & (ry == 1)).sum()), int((hit & (ry == 0)).sum())
        lo, hi = wilson(fp, rep_neg)
        return {"hit_rate": tp / rep_pos, "false_hit_rate": fp / rep_neg, "false_ci95": [lo, hi],
                "precision": tp / (tp + fp) if tp + fp else 1.0}

    def coding(hit: np.ndarray) -> dict:
        return {"paraphrase_hit_rate": float((hit & (c_y == 1)).sum() / (c_y == 1).sum()),
                "false_hits": int((hit & (c_y == 0)).sum())}

    rows = []
    for rate in TARGET_FALSE_RATES:
        # Plain gate + guard: the cosine threshold chosen on the fit split for this false-hit rate.
        t_cos = max(args.gate, threshold_for(fcos, fy, fit_neg, rate))
        t_ver = threshold_for(f_score, fy, fit_neg, rate)
        rows.append({"fit_false_rate": rate, "cosine_threshold": t_cos, "verifier_threshold": t_ver,
                     "guard": held_out(rcos >= t_cos), "verifier": held_out(r_score >= t_ver),
                     "coding_guard": coding(c_ok & (ccos >= t_cos)), "coding_verifier": coding(c_ok & (c_score >= t_ver))})
    table = Table(title=f"QQP held-out {len(rep):,} pairs (seed {args.seed}); thresholds chosen on a disjoint "
                        f"{len(fit):,}-pair fit split")
    for col in ("fit false-hit target", "cosine thr", "gate+guard: hit / false [95% CI] / prec",
                "+ verifier: hit / false [95% CI] / prec", "coding para / false (guard)",
                "coding para / false (+verifier)"):
        table.add_column(col, justify="right")
    for r in rows:
        g, v = r["guard"], r["verifier"]
        table.add_row(
            f"{r['fit_false_rate']:.0%}", f"{r['cosine_threshold']:.3f}",
            f"{g['hit_rate']:.1%} / {g['false_hit_rate']:.2%} [{g['false_ci95'][0]:.2%}, {g['false_ci95'][1]:.2%}] / "
            f"{g['precision']:.1%}",
            f"{v['hit_rate']:.1%} / {v['false_hit_rate']:.2%} [{v['false_ci95'][0]:.2%}, {v['false_ci95'][1]:.2%}] / "
            f"{v['precision']:.1%}",
            f"{r['coding_guard']['paraphrase_hit_rate']:.0%} / {r['coding_guard']['false_hits']}",
            f"{r['coding_verifier']['paraphrase_hit_rate']:.0%} / {r['coding_verifier']['false_hits']}")
    console.print(table)
    coefs = dict(zip(names, (float(c) for c in model.coef_[0])))
    console.print("logistic coefficients (standardised features): "
                  + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(coefs.items(), key=lambda kv: -abs(kv[1]))))
    console.print(f"verification step latency (token vectors of 2 questions + features), median "
                  f"{float(np.median(ms)):.1f} ms over {len(ms)} pairs")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reported_pairs": len(rep), "fit_pairs": len(fit), "seed": args.seed,
                               "gate": args.gate, "rows": rows, "coefficients": coefs,
                               "verify_ms_median": float(np.median(ms))}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The learned tier model: which tier a query needs, learned from labelled examples (pure functions over arrays).

The rules in `signals.py` move a route's default tier by scope, paste length and reasoning cues. Measured against
17 labelled sets by separate authors, route default plus rules matched the labelled tier on 68% of rows and sent
27% of them to a more expensive tier than their author judged necessary. Tier judgements depend on the whole message
(how much work it asks for, how subtle the code is) in ways no short list of regexes captures, but they are
learnable from examples.

The model is a multinomial logistic regression over the query's sentence vector, a few counts (length, pasted code
and trace lines, listed requirements, paths, cue words) and the two tiers the rules give (the route's default and
the default moved by the rules), trained on every labelled example of the registry that carries a tier. It predicts
a probability per tier; the decision is the tier with the lowest expected cost, where sending a query to a tier below
the one it needs costs ``under_cost`` times as much per step as sending it one step too high (a failed answer and a
retry cost more than a dearer model). Leave one author's set out, over the 17 shipped sets
(`python benchmarks/bench_router_coding.py --tier-cv`): tier accuracy 67.7% -> 75.7%, under-routing 6.1% -> 3.9%,
over-routing 26.3% -> 20.3% against the rules alone.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mcp_router.routing.scoring import fit_linear_classifier
from mcp_router.routing.signals import (_BIG, _PATH, _PLANNING, _REASONING, _SCOPE, _SIMPLE, ComplexitySignal,
                                        complexity_signal, requirement_count)

VERSION = 2  # bump when the features change, so cached tier models are rebuilt
UNDER_COST = 4.0  # one step under the needed tier costs as much as four steps over it
TIER_C = 1.0  # inverse L2 strength of the logistic regression (chosen leave-one-author-out on nine sets)
MIN_EXAMPLES = 100  # fewer tier-labelled examples than this: the rules alone decide
N_COUNTS = 16


def rule_tier(default: int, cx: ComplexitySignal, n_tiers: int) -> int:
    """The route's default tier moved by the complexity rules and kept at or above the pasted-code floor."""
    return int(np.clip(max(default + cx.delta, cx.floor), 0, n_tiers - 1))


def counts(text: str, cx: ComplexitySignal | None = None) -> np.ndarray:
    """Cheap counts that say how much work a query asks for (log-scaled so long pastes do not dominate)."""
    cx = cx if cx is not None else complexity_signal(text)
    items, prose_words = requirement_count(text)
    paths = {m.group(0) for m in _PATH.finditer(text)}
    return np.array([
        np.log1p(len(text.split())), np.log1p(cx.code_lines), np.log1p(cx.trace_lines), cx.floor, cx.delta,
        bool(_SCOPE.search(text)), bool(_BIG.search(text)), min(len(paths), 5) / 5,
        len({m.group(0).lower() for m in _REASONING.finditer(text)}),
        len({m.group(0).lower() for m in _PLANNING.finditer(text)}),
        bool(_SIMPLE.search(text)), np.log1p(items), np.log1p(prose_words), "\n" in text,
        text.count(",") / 5, text.count(".") / 5,
    ], dtype=np.float32)


def features(x: np.ndarray, text: str, default: int, rule: int, n_tiers: int,
             cx: ComplexitySignal | None = None) -> np.ndarray:
    """One feature row: sentence vector, counts, and one-hot route default and rule tiers (scaled by 2 so the
    regulariser lets them carry weight next to 384 vector dimensions)."""
    hot = np.zeros(2 * n_tiers, dtype=np.float32)
    hot[default] = 2.0
    hot[n_tiers + rule] = 2.0
    return np.concatenate([np.asarray(x, dtype=np.float32), counts(text, cx), hot])


@dataclass
class TierModel:
    """Linear softmax over tier indices ``classes`` (the tiers seen in training)."""

    w: np.ndarray  # (n_classes, n_features)
    b: np.ndarray  # (n_classes,)
    classes: np.ndarray  # tier index of each row of w
    n_tiers: int

    def probs(self, feats: np.ndarray) -> np.ndarray:
        """Probability of each tier (columns = all ``n_tiers`` tiers; unseen tiers get 0)."""
        feats = np.atleast_2d(feats)
        z = feats @ self.w.T + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        out = np.zeros((len(feats), self.n_tiers), dtype=np.float64)
        out[:, self.classes] = p
        return out


def cost_matrix(n_tiers: int, under_cost: float = UNDER_COST) -> np.ndarray:
    """``cost[chosen, needed]``: ``under_cost`` per step below the needed tier, 1 per step above it."""
    i = np.arange(n_tiers)[:, None]
    j = np.arange(n_tiers)[None, :]
    return np.where(i < j, under_cost * (j - i), i - j).astype(np.float64)


def choose_tier(probs: np.ndarray, under_cost: float = UNDER_COST) -> np.ndarray:
    """The tier of least expected cost for each row of ``probs``."""
    probs = np.atleast_2d(probs)
    return (probs @ cost_matrix(probs.shape[1], under_cost).T).argmin(axis=1)


def fit_tier_model(feats: np.ndarray, tiers: np.ndarray, n_tiers: int, c: float = TIER_C) -> TierModel | None:
    """Train on labelled rows; ``None`` when there are too few rows or only one tier (the rules then decide)."""
    tiers = np.asarray(tiers)
    present = np.unique(tiers)
    if len(tiers) < MIN_EXAMPLES or len(present) < 2:
        return None
    w, b = fit_linear_classifier(feats, tiers, n_tiers, c=c)  # tiers never seen get a -1e4 bias
    return TierModel(w[present], b[present], present.astype(int), n_tiers)


def training_matrix(vectors: np.ndarray, texts: Sequence[str], defaults: Sequence[int], n_tiers: int) -> np.ndarray:
    """Feature rows of labelled examples, each with the default tier of its labelled route."""
    rows = []
    for x, text, default in zip(vectors, texts, defaults):
        cx = complexity_signal(text)
        rows.append(features(x, text, default, rule_tier(default, cx, n_tiers), n_tiers, cx))
    return np.vstack(rows) if rows else np.zeros((0, vectors.shape[1] + N_COUNTS + 2 * n_tiers), np.float32)



def save(path: Path, model: TierModel) -> None:
    """Write atomically (a torn file is never read: `load` returns None and the model is rebuilt)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, w=model.w, b=model.b, classes=model.classes, n_tiers=np.array(model.n_tiers),
             meta=np.array(json.dumps({"version": VERSION})))
    tmp.replace(path)


def load(path: Path, n_tiers: int) -> TierModel | None:
    """The cached model at ``path``, or None when it is missing, unreadable or for another tier count."""
    try:
        with np.load(path) as z:
            if int(z["n_tiers"]) != n_tiers:
                return None
            return TierModel(z["w"], z["b"], z["classes"].astype(int), n_tiers)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # missing, foreign or torn: rebuild it
        return None

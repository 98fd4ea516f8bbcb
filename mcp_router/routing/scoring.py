"""The maths of the router: pure functions over numpy arrays (no I/O, no model, no globals).

The scorer has two stages, both cheap at query time (two small matrix-vector products and a sparse dot product):

1. *Which route*: a linear softmax classifier (multinomial logistic regression) trained on the route utterances.
   It separates routes that share vocabulary better than nearest-utterance or centroid similarity (measured on
   CLINC150: 95.5% vs 91.7% for centroids with the full train split; equal with 10 per intent).
   Optionally blended with a lexical classifier (TF-IDF over word and character n-grams, `lexical.py`): the blend is
   a weighted mean of the two models' log-probabilities, with the weight ``alpha`` chosen on validation data or on
   out-of-fold scores of the utterances (never on test data).
2. *Is it in scope at all*: an "acceptor", a logistic model over a handful of confidence features of the query
   (top probability, margin, cosine to the chosen centroid and to the nearest centroid, top logit, energy, and the
   reject-class probability when out-of-scope examples exist). It is fitted on labelled validation data, or on
   out-of-fold scores of the utterances themselves, with in-scope and out-of-scope weighted equally. A query is
   accepted when the acceptor's score clears the (global or per-route) threshold.

Everything here is deterministic given its inputs, so it is tested without a model or a disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mcp_router.routing.lexical import LexicalModel, fit_lexical

FEATURES = ("p_top", "margin", "cos_chosen", "cos_max", "logit_top", "energy", "p_in_scope", "p_lex_chosen",
            "word_coverage")
ALPHA_GRID = tuple(round(a, 2) for a in np.linspace(0.0, 0.9, 10))
BETA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def normalise(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.clip(n, 1e-12, None)


def centroids(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Unit-length mean vector of each class ``0..n_classes-1`` (a class with no rows gets a zero vector)."""
    out = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    for c in range(n_classes):
        rows = x[y == c]
        if len(rows):
            out[c] = rows.mean(axis=0)
    return normalise(out).astype(np.float32)


def fit_linear_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, c: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression; returns ``(W (n_classes, d), b (n_classes,))``.

    Classes absent from ``y`` get a very negative bias so they are never predicted. (scikit-learn is imported here
    only: fitting happens once per registry change, never on the query path.)
    """
    from sklearn.linear_model import LogisticRegression

    present = np.unique(y)
    w = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    b = np.full(n_classes, -1e4, dtype=np.float32)
    if len(present) == 1:
        b[present[0]] = 0.0
        return w, b
    clf = LogisticRegression(C=c, max_iter=1000)
    clf.fit(x, y)
    coef, icpt = clf.coef_, clf.intercept_
    if len(present) == 2:  # sklearn returns one row for two classes
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
    w[clf.classes_] = coef
    b[clf.classes_] = icpt
    return w, b


@dataclass
class Acceptor:
    """Logistic model over `FEATURES` scoring whether a prediction should be trusted (in scope and right)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def score(self, feats: np.ndarray) -> np.ndarray:
        z = ((feats - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": float(self.intercept)}

    @classmethod
    def from_dict(cls, d: dict) -> "Acceptor":
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64),
                   np.asarray(d["coef"], np.float64), float(d["intercept"]))


@dataclass
class RouteModel:
    """Everything the query path needs: classifier weights, centroids, the acceptor and thresholds.

    ``w``/``b`` have ``n_routes`` rows, plus one last row for the reject class when ``has_reject`` is true. ``lex``
    (same classes) is blended in with weight ``alpha`` when set.
    """

    names: list[str]
    w: np.ndarray
    b: np.ndarray
    cents: np.ndarray
    has_reject: bool
    acceptor: Acceptor
    threshold: float = 0.5
    route_thresholds: dict[int, float] = field(default_factory=dict)
    lex: LexicalModel | None = None
    alpha: float = 0.0
    utt: np.ndarray | None = None      # (m, d) utterance vectors for the kNN vote (``beta > 0`` only)
    utt_y: np.ndarray | None = None    # (m,) their class (the reject class for out-of-scope examples)
    beta: float = 0.0

    @property
    def n_routes(self) -> int:
        return len(self.names)

    def threshold_for(self, route: int) -> float:
        return self.route_thresholds.get(int(route), self.threshold)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable log of `softmax` over the last axis."""
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def blend_log_probs(logp_emb: np.ndarray, logp_lex: np.ndarray | None, alpha: float,
                    logp_knn: np.ndarray | None = None, beta: float = 0.0) -> np.ndarray:
    """Log-linear blend ``(1 - alpha - beta) log p_emb + alpha log p_lex + beta log p_knn`` (unnormalised; feed it
    to `softmax`).

    A product of experts: a route both models find likely beats one only a single model is sure of. Zero weights (or
    missing parts) give the embedding model alone.
    """
    out = logp_emb
    a = alpha if logp_lex is not None and alpha > 0 else 0.0
    bk = beta if logp_knn is not None and beta > 0 else 0.0
    if a == 0.0 and bk == 0.0:
        return out
    out = (1.0 - a - bk) * logp_emb
    if a:
        out = out + a * logp_lex
    if bk:
        out = out + bk * logp_knn
    return out


def knn_log_probs(x: np.ndarray, utt: np.ndarray, utt_y: np.ndarray, n_classes: int, k: int = 10,
                  temperature: float = 0.05, floor: float = 1e-3) -> np.ndarray:
    """Log-probabilities from a similarity-weighted vote of the ``k`` most similar utterances.

    Each neighbour votes ``exp((sim - best_sim) / temperature)`` for its class; a small ``floor`` keeps classes with no
    vote finite in the log-linear blend.
    """
    if len(x) > 1024:  # bound the (n, m) similarity matrix on big evaluation batches
        return np.vstack([knn_log_probs(x[i:i + 1024], utt, utt_y, n_classes, k, temperature, floor)
                          for i in range(0, len(x), 1024)])
    n = len(x)
    sims = x @ utt.T
    kk = min(k, sims.shape[1])
    top = np.argpartition(-sims, kth=kk - 1, axis=1)[:, :kk] if kk < sims.shape[1] else np.tile(
        np.arange(sims.shape[1]), (n, 1))
    rows = np.arange(n)[:, None]
    s = sims[rows, top]
    wts = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)
    votes = np.zeros((n, n_classes))
    np.add.at(votes, (np.broadcast_to(rows, top.shape), utt_y[top]), wts)
    votes = votes / votes.sum(axis=1, keepdims=True) + floor
    return np.log(votes / votes.sum(axis=1, keepdims=True))


@dataclass
class Components:
    """Per-query raw scores from which probabilities and acceptor features are derived (cheap to re-blend)."""

    logits: np.ndarray            # (n, n_cls) embedding classifier logits
    cos: np.ndarray               # (n, k) cosine to each route centroid
    logp_lex: np.ndarray | None   # (n, n_cls) lexical log-probabilities
    coverage: np.ndarray          # (n,) share of the query's words in the lexical vocabulary (1 without one)
    logp_knn: np.ndarray | None = None  # (n, n_cls) kNN-vote log-probabilities

    @staticmethod
    def stack(parts: Sequence["Components"], order: np.ndarray) -> "Components":
        """Concatenate fold-wise components and put rows back in ``order`` (row i of the result = ``order[i]``)."""
        inv = np.argsort(order)
        cat = lambda xs: np.concatenate(xs)[inv]  # noqa: E731
        lex = cat([p.logp_lex for p in parts]) if all(p.logp_lex is not None for p in parts) else None
        knn = cat([p.logp_knn for p in parts]) if all(p.logp_knn is not None for p in parts) else None
        return Components(cat([p.logits for p in parts]), cat([p.cos for p in parts]), lex,
                          cat([p.coverage for p in parts]), knn)


def components(x: np.ndarray, w: np.ndarray, b: np.ndarray, cents: np.ndarray, lex: LexicalModel | None = None,
               texts: Sequence[str] | None = None, utt: np.ndarray | None = None,
               utt_y: np.ndarray | None = None) -> Components:
    """Embedding logits, centroid cosines and (with ``lex`` and ``texts``) lexical log-probabilities of queries;
    with ``utt``/``utt_y`` also the kNN vote."""
    logits = x @ w.T + b
    cos = x @ cents.T
    knn = knn_log_probs(x, utt, utt_y, len(b)) if utt is not None and utt_y is not None and len(utt) else None
    if lex is not None and texts is not None:
        zl, cover = lex.logits(texts)
        return Components(logits, cos, log_softmax(zl), cover, knn)
    return Components(logits, cos, None, np.ones(len(x)), knn)


def features(comp: Components, k: int, has_reject: bool, alpha: float = 0.0, beta: float = 0.0,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Blended route probabilities ``(n, k)`` over in-scope routes and the acceptor's features for the top route."""
    n = len(comp.logits)
    logp = blend_log_probs(log_softmax(comp.logits), comp.logp_lex, alpha, comp.logp_knn, beta)
    p_all = softmax(logp)
    p_in_scope = 1.0 - p_all[:, k] if has_reject else np.ones(n)
    probs = softmax(logp[:, :k])
    z = comp.logits[:, :k]
    cos = comp.cos
    top2 = np.argsort(-probs, axis=1)[:, :2] if k > 1 else np.zeros((n, 2), dtype=int)
    rows = np.arange(n)
    p1 = probs[rows, top2[:, 0]]
    p2 = probs[rows, top2[:, 1]] if k > 1 else np.zeros(n)
    zmax = z.max(axis=1)
    energy = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))
    if comp.logp_lex is not None:
        p_lex = np.exp(comp.logp_lex[rows, top2[:, 0]])
    else:
        p_lex = p1
    feats = np.column_stack([p1, p1 - p2, cos[rows, top2[:, 0]], cos.max(axis=1), zmax, energy, p_in_scope, p_lex,
                             comp.coverage])
    return probs, feats


def route_scores(x: np.ndarray, w: np.ndarray, b: np.ndarray, cents: np.ndarray, has_reject: bool,
                 lex: LexicalModel | None = None, texts: Sequence[str] | None = None, alpha: float = 0.0,
                 utt: np.ndarray | None = None, utt_y: np.ndarray | None = None, beta: float = 0.0,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Score queries ``x (n, d)`` (and their ``texts``, for the lexical model) against every route.

    Returns ``(probs (n, K), feats (n, len(FEATURES)))``: blended route probabilities over in-scope routes, and the
    acceptor's features for the top route.
    """
    if beta <= 0:
        utt = utt_y = None  # no vote needed: skip the utterance similarities
    return features(components(x, w, b, cents, lex, texts, utt, utt_y), cents.shape[0], has_reject, alpha, beta)


def model_scores(model: RouteModel, x: np.ndarray, texts: Sequence[str] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`route_scores` with everything taken from ``model`` (texts are needed when it has a lexical part)."""
    return route_scores(x, model.w, model.b, model.cents, model.has_reject, model.lex, texts, model.alpha,
                        model.utt, model.utt_y, model.beta)


def choose_alpha(comp: Components, labels: np.ndarray, k: int, grid: Sequence[float] = ALPHA_GRID) -> float:
    """The lexical blend weight with the best in-scope accuracy of the top route on labelled rows (ties: the smaller).

    Called with validation rows or out-of-fold scores of the utterances, never with the data being reported on.
    """
    return choose_blend(comp, labels, k, grid, (0.0,))[0]


def choose_blend(comp: Components, labels: np.ndarray, k: int, alphas: Sequence[float] = ALPHA_GRID,
                 betas: Sequence[float] = BETA_GRID) -> tuple[float, float]:
    """Lexical and kNN weights ``(alpha, beta)`` (``alpha + beta < 1``) with the best in-scope top-route accuracy on
    labelled rows; ties go to smaller weights (the embedding model alone when nothing helps)."""
    ins = labels >= 0
    if not ins.any():
        return 0.0, 0.0
    alphas = alphas if comp.logp_lex is not None else (0.0,)
    betas = betas if comp.logp_knn is not None else (0.0,)
    le = log_softmax(comp.logits[ins])
    ll = comp.logp_lex[ins] if comp.logp_lex is not None else None
    lk = comp.logp_knn[ins] if comp.logp_knn is not None else None
    best_ab, best = (0.0, 0.0), -1.0
    for a in alphas:
        for bk in betas:
            if a + bk > 0.95:
                continue
            acc = float((blend_log_probs(le, ll, a, lk, bk)[:, :k].argmax(1) == labels[ins]).mean())
            if acc > best + 1e-9:
                best_ab, best = (float(a), float(bk)), acc
    return best_ab


def fit_acceptor(feats: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, c: float = 1.0) -> Acceptor:
    """Fit the acceptor: P(prediction is right) from the features, with in-scope and OOS rows weighted equally.

    ``correct`` marks in-scope rows whose predicted route equals the label; OOS rows are always "not correct".
    """
    from sklearn.linear_model import LogisticRegression

    mean = feats.mean(axis=0)
    scale = feats.std(axis=0)
    scale = np.where(scale < 1e-9, 1.0, scale)
    z = (feats - mean) / scale
    n_in, n_out = int((~is_oos).sum()), int(is_oos.sum())
    weight = np.where(is_oos, n_in / max(n_out, 1), 1.0) if n_out else np.ones(len(feats))
    target = correct.astype(int)
    if target.min() == target.max():  # degenerate: everything right (or wrong); trust the top probability
        coef = np.zeros(feats.shape[1])
        coef[0] = 1.0
        return Acceptor(mean, scale, coef, 0.0)
    clf = LogisticRegression(C=c, max_iter=1000)
    clf.fit(z, target, sample_weight=weight)
    return Acceptor(mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))


def balanced_accuracy(pred: np.ndarray, labels: np.ndarray, oos_weight: float = 0.5) -> float:
    """Weighted mean of in-scope accuracy and out-of-scope recall (label -1 = out of scope); equal weights by default.

    Validation sets carry an arbitrary share of OOS rows (3% in CLINC150 val, 18% in test), so the plain accuracy on
    val would push thresholds towards accepting everything; weighting both halves equally does not depend on the mix.
    """
    ins = labels >= 0
    if ins.any() and (~ins).any():
        return float((1 - oos_weight) * (pred[ins] == labels[ins]).mean() + oos_weight * (pred[~ins] == -1).mean())
    if ins.any():
        return float((pred[ins] == labels[ins]).mean())
    return float((pred[~ins] == -1).mean()) if len(pred) else 0.0


def apply_threshold(pred: np.ndarray, accept: np.ndarray, threshold: float,
                    route_thresholds: dict[int, float] | None = None) -> np.ndarray:
    """Predicted route, or -1 where the acceptance score is below the route's threshold."""
    thr = np.full(len(pred), threshold, dtype=np.float64)
    for r, t in (route_thresholds or {}).items():
        thr[pred == r] = t
    return np.where(accept >= thr, pred, -1)


def fit_threshold(pred: np.ndarray, accept: np.ndarray, labels: np.ndarray, oos_weight: float = 0.5) -> float:
    """The global acceptance threshold maximising `balanced_accuracy` on labelled data."""
    grid = np.unique(np.concatenate([np.linspace(0.01, 0.99, 99), np.quantile(accept, np.linspace(0, 1, 101))]))
    best_t, best = 0.5, -1.0
    for t in grid:
        acc = balanced_accuracy(apply_threshold(pred, accept, t), labels, oos_weight)
        if acc > best + 1e-12:
            best_t, best = float(t), acc
    return best_t


def fit_route_thresholds(pred: np.ndarray, accept: np.ndarray, labels: np.ndarray, threshold: float,
                         min_rows: int = 20, max_shift: float = 0.2) -> dict[int, float]:
    """Per-route thresholds, only for routes with enough labelled rows and only where they improve the objective.

    Routes with few examples keep the global threshold (a per-route threshold fitted on five rows is noise).
    """
    out: dict[int, float] = {}
    base = balanced_accuracy(apply_threshold(pred, accept, threshold), labels)
    for r in np.unique(pred[labels >= 0]) if (labels >= 0).any() else []:
        if int(((pred == r)).sum()) < min_rows:
            continue
        best_t, best = threshold, base
        for t in np.linspace(max(0.0, threshold - max_shift), min(1.0, threshold + max_shift), 21):
            trial = {**out, int(r): float(t)}
            acc = balanced_accuracy(apply_threshold(pred, accept, threshold, trial), labels)
            if acc > best + 1e-4:
                best_t, best = float(t), acc
        if best_t != threshold:
            out[int(r)] = best_t
            base = best
    return out


def calibrate(feats: np.ndarray, pred: np.ndarray, labels: np.ndarray, *, per_route: bool, oos_weight: float = 0.5,
              min_rows: int = 20, default_threshold: float | None = None) -> tuple[Acceptor, float, dict[int, float]]:
    """Acceptor, global threshold and (with ``per_route``) per-route thresholds from scored, labelled rows.

    Without out-of-scope rows there is nothing to separate: the threshold is ``default_threshold``, or else one that
    accepts 98% of the rows, and no per-route thresholds are fitted.
    """
    is_oos = labels < 0
    acceptor = fit_acceptor(feats, (pred == labels) & ~is_oos, is_oos)
    accept = acceptor.score(feats)
    if not is_oos.any():
        thr = default_threshold if default_threshold is not None else float(np.quantile(accept, 0.02))
        return acceptor, thr, {}
    thr = fit_threshold(pred, accept, labels, oos_weight)
    per = fit_route_thresholds(pred, accept, labels, thr, min_rows=min_rows) if per_route else {}
    return acceptor, thr, per


def _train_parts(x: np.ndarray, ys: np.ndarray, texts: Sequence[str] | None, k: int, n_cls: int, c: float,
                 lexical_c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, LexicalModel | None]:
    """Classifier weights, route centroids and (with ``texts``) the lexical model of one training pool; ``ys`` uses
    class ``k`` for the reject class."""
    w, b = fit_linear_classifier(x, ys, n_cls, c)
    ins = ys < k
    cents = centroids(x[ins], ys[ins], k)
    lex = fit_lexical(list(texts), ys, n_cls, lexical_c) if texts is not None else None
    return w, b, cents, lex


def fit_route_model(x: np.ndarray, y: np.ndarray, names: Sequence[str], *, neg: np.ndarray | None = None,
                    val_x: np.ndarray | None = None, val_y: np.ndarray | None = None, c: float = 20.0,
                    folds: int = 5, per_route: bool = False, seed: int = 0,
                    self_calibration_oos_weight: float = 0.25, texts: Sequence[str] | None = None,
                    neg_texts: Sequence[str] | None = None, val_texts: Sequence[str] | None = None,
                    lexical_c: float = 10.0, alpha: float | None = None, knn: bool = False) -> RouteModel:
    """Train the classifier on utterances ``x, y`` (and optional out-of-scope examples ``neg``), then fit the acceptor.

    With ``texts`` (the utterances; plus ``neg_texts`` when ``neg`` is given, and ``val_texts`` with validation data) a
    lexical TF-IDF classifier is trained too and blended in; with ``knn`` (off by default: on BANKING77's 9,000
    utterances the vote cost half the encode time per query) a similarity-weighted vote of the nearest utterances is a
    third candidate. Blend weights are chosen where the acceptor is fitted (``alpha`` fixes the
    lexical one instead); the kNN part is dropped from the model when its weight comes out 0.
    With ``val_x/val_y`` (label -1 = out of scope) the acceptor and thresholds are fitted there. Without, they are fitted
    on out-of-fold scores of the utterances and ``neg`` themselves (k-fold), so a registry calibrates itself; then
    in-scope accuracy weighs 3:1 over OOS recall, because out-of-fold models are weaker than the final one (they
    under-estimate confidence) and off-topic requests are rare in a coding assistant.
    """
    k = len(names)
    has_reject = neg is not None and len(neg) > 0
    xs = np.vstack([x, neg]) if has_reject else x
    ys = np.concatenate([y, np.full(len(neg), k)]) if has_reject else y
    n_cls = k + 1 if has_reject else k
    all_texts: list[str] | None = None
    if texts is not None:
        all_texts = list(texts) + (list(neg_texts or []) if has_reject else [])
        if len(all_texts) != len(xs):
            raise ValueError("texts (and neg_texts) must match the rows of x (and neg)")
    use_val = val_x is not None and val_y is not None
    if use_val and all_texts is not None and val_texts is None:
        raise ValueError("val_texts are needed to calibrate a lexical model on validation data")
    w, b, cents, lex = _train_parts(xs, ys, all_texts, k, n_cls, c, lexical_c)
    if use_val:
        comp = components(val_x, w, b, cents, lex, val_texts, xs if knn else None, ys if knn else None)
        labels = np.asarray(val_y)
    else:
        comp, labels = _out_of_fold(xs, ys, k, n_cls, c, folds, seed, all_texts, lexical_c, knn)
    if alpha is None:
        a, beta = choose_blend(comp, labels, k)
    else:
        a, beta = float(alpha), (choose_blend(comp, labels, k, (float(alpha),))[1] if knn else 0.0)
    probs, feats = features(comp, k, has_reject, a, beta)
    acceptor, thr, per = calibrate(feats, probs.argmax(axis=1), labels, per_route=per_route,
                                   oos_weight=0.5 if use_val else self_calibration_oos_weight)
    keep_knn = knn and beta > 0
    # the lexical model stays even at weight 0: the acceptor reads its probability and the word coverage
    return RouteModel(list(names), w, b, cents, has_reject, acceptor, thr, per, lex,
                      a if lex is not None else 0.0, xs.astype(np.float32) if keep_knn else None,
                      ys.copy() if keep_knn else None, beta if keep_knn else 0.0)


@dataclass
class Labelled:
    """Rows with known routes for training or calibration: vectors, route index (-1 = out of scope) and texts."""

    x: np.ndarray
    y: np.ndarray
    texts: list[str]

    def subset(self, mask: np.ndarray) -> "Labelled":
        return Labelled(self.x[mask], self.y[mask], [t for t, m in zip(self.texts, mask) if m])

    @staticmethod
    def concat(*parts: "Labelled") -> "Labelled":
        parts = tuple(p for p in parts if len(p.y))
        if not parts:
            return Labelled(np.zeros((0, 0), np.float32), np.zeros(0, int), [])
        return Labelled(np.vstack([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                        [t for p in parts for t in p.texts])


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of each row, every class spread round-robin over the folds in a seeded random order."""
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(labels), dtype=int)
    for cls in np.unique(labels):
        idx = np.where(labels == cls)[0]
        fold_of[rng.permutation(idx)] = np.arange(len(idx)) % folds
    return fold_of


def _train_pool(pool: Labelled, k: int, n_cls: int, c: float, lexical_c: float,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, LexicalModel | None]:
    """`_train_parts` of a `Labelled` pool (label -1 rows = the reject class)."""
    return _train_parts(pool.x, np.where(pool.y < 0, k, pool.y), pool.texts, k, n_cls, c, lexical_c)


def retrain_route_model(registry: Labelled, labelled: Labelled, names: Sequence[str], *, c: float = 20.0,
                        lexical_c: float = 10.0, folds: int = 5, per_route: bool = True, seed: int = 0,
                        trainable: np.ndarray | None = None) -> tuple[RouteModel, Components, np.ndarray]:
    """Retrain the classifier on the registry's utterances plus user-labelled queries (``mcp-router fit``).

    Calibration (blend weight, acceptor, thresholds) must see scores of queries the classifier did not train on, so
    the labelled rows are split into stratified folds: each fold is scored by a model trained on the registry plus
    the other folds, and the calibration is fitted on those out-of-fold scores with in-scope accuracy and OOS recall
    weighted equally. The final classifier then trains on everything. Returns the model, the out-of-fold components
    and their labels (so the caller can report out-of-fold accuracy: an honest estimate on unseen queries).
    ``trainable`` (a mask over the labelled rows, default all) limits which of them may join the training pool; the
    others only calibrate (a benchmark keeping "10 utterances per route" adds only the out-of-scope rows).
    """
    k = len(names)
    trainable = np.ones(len(labelled.y), bool) if trainable is None else np.asarray(trainable, bool)
    has_reject = bool((registry.y < 0).any() or (labelled.y < 0).any())
    n_cls = k + 1 if has_reject else k
    n_folds = max(2, min(folds, len(labelled.y)))
    fold_of = stratified_folds(labelled.y, n_folds, seed)
    parts, order = [], []
    for f in range(n_folds):
        test = fold_of == f
        if not test.any():
            continue
        w, b, cents, lex = _train_pool(Labelled.concat(registry, labelled.subset(~test & trainable)), k, n_cls, c,
                                       lexical_c)
        held = labelled.subset(test)
        parts.append(components(held.x, w, b, cents, lex, held.texts))
        order.append(np.where(test)[0])
    comp = Components.stack(parts, np.concatenate(order))
    labels = labelled.y
    alpha, _ = choose_blend(comp, labels, k, betas=(0.0,))
    probs, feats = features(comp, k, has_reject, alpha)
    acceptor, thr, per = calibrate(feats, probs.argmax(axis=1), labels, per_route=per_route, min_rows=10)
    w, b, cents, lex = _train_pool(Labelled.concat(registry, labelled.subset(trainable)), k, n_cls, c, lexical_c)
    model = RouteModel(list(names), w, b, cents, has_reject, acceptor, thr, per, lex, alpha)
    return model, comp, labels


def _out_of_fold(xs: np.ndarray, ys: np.ndarray, k: int, n_cls: int, c: float, folds: int, seed: int,
                 texts: Sequence[str] | None = None, lexical_c: float = 10.0,
                 knn: bool = False) -> tuple[Components, np.ndarray]:
    """Score every row with models that did not see it (stratified folds); OOS rows get label -1."""
    fold_of = stratified_folds(ys, folds, seed)
    parts, order = [], []
    for f in range(folds):
        test = fold_of == f
        if not test.any():
            continue
        train = ~test
        w, b, cents, lex = _train_parts(xs[train], ys[train],
                                        [texts[i] for i in np.where(train)[0]] if texts is not None else None,
                                        k, n_cls, c, lexical_c)
        tx = [texts[i] for i in np.where(test)[0]] if texts is not None else None
        parts.append(components(xs[test], w, b, cents, lex, tx, xs[train] if knn else None,
                                ys[train] if knn else None))
        order.append(np.where(test)[0])
    labels = np.where(ys >= k, -1, ys)
    return Components.stack(parts, np.concatenate(order)), labels


def decide(model: RouteModel, x: np.ndarray, blocked: Sequence[int] = (), text: str | None = None) -> dict:
    """Score one query vector ``x (d,)`` (and its ``text``, for the lexical part): best route (or -1), confidence,
    margin, runner-up. Well under a millisecond."""
    if model.lex is not None and text is None:
        raise ValueError("this route model has a lexical part: pass the query text too")
    probs, feats = model_scores(model, x[None, :], [text] if text is not None else None)
    p = probs[0].copy()
    if len(blocked):
        p[list(blocked)] = 0.0
    order = np.argsort(-p)
    best = int(order[0])
    runner = int(order[1]) if len(order) > 1 else -1
    accept = float(model.acceptor.score(feats)[0])
    accepted = accept >= model.threshold_for(best) and p[best] > 0
    return {
        "route": best if accepted else -1,
        "best": best,
        "runner_up": runner,
        "probability": float(p[best]),
        "margin": float(p[best] - (p[runner] if runner >= 0 else 0.0)),
        "confidence": accept,
        "threshold": model.threshold_for(best),
        "similarity": float(feats[0, 2]),
    }


# -- baselines used by the benchmarks -------------------------------------------------------------------------------

def topk_route_scores(x: np.ndarray, utt: np.ndarray, utt_route: np.ndarray, n_routes: int, k: int = 5,
                      agg: str = "sum") -> np.ndarray:
    """semantic-router-style scores: top-k most similar utterances, grouped by route (sum or mean)."""
    sims = x @ utt.T
    top = np.argpartition(-sims, kth=min(k, sims.shape[1] - 1), axis=1)[:, :k]
    out = np.zeros((len(x), n_routes))
    counts = np.zeros((len(x), n_routes))
    rows = np.arange(len(x))[:, None]
    np.add.at(out, (np.broadcast_to(rows, top.shape), utt_route[top]), sims[rows, top])
    np.add.at(counts, (np.broadcast_to(rows, top.shape), utt_route[top]), 1)
    if agg == "mean":
        out = np.where(counts > 0, out / np.clip(counts, 1, None), 0.0)
    return out

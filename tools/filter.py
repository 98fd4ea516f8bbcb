"""Pure scoring for tool filtering: keyword (BM25F) and dense scores, fused; pins, allow/deny lists, the bar.

Nothing here reads files, opens a database or loads a model: every function takes arrays and returns arrays or plain
results, so it is tested without a model and runs in microseconds over a few thousand tools.

How a query is scored against catalogue tool ``i``:
- ``dense_i``: cosine of the query vector with the tool's embedded text (name words, server, description, parameters);
- ``lex_i``: BM25F over the separately weighted fields name (3), server (2), description (1), parameters (1) and
  the parameters' allowed values (0.7); a date or time of day in the query adds the word "date" / "time";
- fused ``score_i = dense_i + w_lex * lex_i / max_j lex_j``: a score-level fusion, not rank fusion, so the value keeps
  the dense part's absolute meaning and one bar (``min_score``) works for every query.

"No tool needed": a query whose best tool scores below the bar gets no tools (pinned tools excepted). The default
weight and bar were fitted on half of the BFCL queries and checked on the other half (benchmarks/bench_tools_bfcl.py).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# tokens

_WORD = re.compile(r"[A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
STOPWORDS = frozenset(
    "a an and are as at be been but by can could do does for from has have how i if in into is it its me my of on "
    "or our please should so than that the their them then there these this to us was we what when where which who "
    "will with would you your want need let lets just some any all also get make use using via given".split()
)


def stem(word: str) -> str:
    """A deliberately tiny stemmer: plural -s, then -ing/-ed, then a final -e, so ``stage``, ``staged``,
    ``staging`` and ``stages`` all become ``stag``. Applied alike to tools and queries, so consistency is what counts."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("e") and not word.endswith("ee"):
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case word stems of ``text``; identifiers are split (``readFile`` -> ``read file``), stopwords dropped."""
    out: list[str] = []
    for part in _WORD.findall(text):
        for w in _CAMEL.split(part):
            w = w.lower()
            if len(w) < 2 or w in STOPWORDS:
                continue
            out.append(stem(w))
    return out


# ---------------------------------------------------------------------------------------------------------------
# BM25F over precomputed postings

# ``values`` holds the parameters' allowed (enum) values: below the parameter text, because an enum value is often an
# everyday word ("open", "all") that a request uses in another sense (0.7 chosen on the BFCL fit half; at 1.0 the
# verb "open" outranked the right tool of an MCP catalogue request).
FIELD_WEIGHTS: dict[str, float] = {"name": 3.0, "server": 2.0, "description": 1.0, "params": 1.0, "values": 0.7}


@dataclass(frozen=True)
class KeywordIndex:
    """BM25F postings in CSR form: the docs and precomputed weights of term ``t`` are
    ``doc_ids[indptr[t]:indptr[t+1]]`` and ``weights[...]``. A query is one `np.bincount` over its terms' postings."""

    vocab: dict[str, int]
    indptr: np.ndarray
    doc_ids: np.ndarray
    weights: np.ndarray
    idf: np.ndarray
    n_docs: int
    k1: float
    # term -> field names per doc is needed only to explain matches; kept as per-doc token sets per field.
    field_terms: tuple[dict[str, frozenset[str]], ...] = ()


def build_keyword_index(
    docs: Sequence[dict[str, str]],
    field_weights: dict[str, float] | None = None,
    k1: float = 1.2,
    b: float = 0.75,
) -> KeywordIndex:
    """BM25F (field-weighted term frequencies, one length normalisation) over ``docs`` = per-doc field texts."""
    fw = field_weights or FIELD_WEIGHTS
    n = len(docs)
    vocab: dict[str, int] = {}
    rows: list[dict[int, float]] = []
    lengths = np.zeros(n, dtype=np.float64)
    field_terms: list[dict[str, frozenset[str]]] = []
    for i, doc in enumerate(docs):
        tf: dict[int, float] = {}
        per_field: dict[str, frozenset[str]] = {}
        for fname, text in doc.items():
            w = fw.get(fname, 1.0)
            toks = tokenize(text)
            per_field[fname] = frozenset(toks)
            for t in toks:
                tid = vocab.setdefault(t, len(vocab))
                tf[tid] = tf.get(tid, 0.0) + w
                lengths[i] += w
        rows.append(tf)
        field_terms.append(per_field)
    avgdl = float(lengths.mean()) if n else 1.0
    df = np.zeros(len(vocab), dtype=np.float64)
    for tf in rows:
        for tid in tf:
            df[tid] += 1
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    postings: list[list[tuple[int, float]]] = [[] for _ in range(len(vocab))]
    for i, tf in enumerate(rows):
        norm = k1 * (1.0 - b + b * lengths[i] / max(avgdl, 1e-9))
        for tid, f in tf.items():
            postings[tid].append((i, idf[tid] * f * (k1 + 1.0) / (f + norm)))
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    for tid, p in enumerate(postings):
        indptr[tid + 1] = indptr[tid] + len(p)
    doc_ids = np.fromiter((d for p in postings for d, _ in p), dtype=np.int32, count=int(indptr[-1]))
    weights = np.fromiter((w for p in postings for _, w in p), dtype=np.float32, count=int(indptr[-1]))
    return KeywordIndex(vocab, indptr, doc_ids, weights, idf.astype(np.float32), n, k1, tuple(field_terms))


# Coding-agent shorthand that tool descriptions spell out. Applied to queries only (descriptions use the long form).
ABBREVIATIONS: dict[str, str] = {
    "pr": "pull request", "prs": "pull requests", "mr": "merge request", "mrs": "merge requests",
    "repo": "repository", "repos": "repositories", "dir": "directory", "dirs": "directories", "db": "database",
    "env": "environment", "msg": "message", "cwd": "current directory", "url": "url web page",
}
_ABBR = re.compile(r"\b(" + "|".join(sorted(ABBREVIATIONS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def expand_abbreviations(text: str) -> str:
    """``open a PR for this repo`` -> ``open a pull request (PR) for this repository (repo)``."""
    return _ABBR.sub(lambda m: f"{ABBREVIATIONS[m.group(1).lower()]} ({m.group(1)})", text)


def surface_words(text: str) -> dict[str, str]:
    """Stem -> the word as the user wrote it, so explanations show ``staged``, not ``stag`` (and ``date`` for the
    type word a written date adds)."""
    out: dict[str, str] = {}
    for part in _WORD.findall(text) + [w for kind in value_types(text) for w in kind.split()]:
        for w in _CAMEL.split(part):
            lw = w.lower()
            if len(lw) >= 2 and lw not in STOPWORDS:
                out.setdefault(stem(lw), lw)
    return out


# Argument values a request spells out, and the word a tool definition uses for such a parameter. "Weather in Paris
# on 12 March" never says "date", but the tool that takes a date says it in its parameters; adding the type word lets
# the keyword score prefer that tool. Measured on BFCL (fit half / eval half): recall@5 +0.4 / +0.4, recall@1
# +0.9 / +0.8; MCP catalogue unchanged. URLs, e-mails and file paths were tried the same way: neutral on BFCL, and
# "file path" moved two filesystem requests of the MCP catalogue down, so they are left out.
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
VALUE_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("date", re.compile(
        r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|"
        + _MONTH + r"\.? \d{1,2}(?:st|nd|rd|th)?\b|\d{1,2}(?:st|nd|rd|th)? (?:of )?" + _MONTH + r"\b|"
        r"today|tomorrow|yesterday|"
        r"(?:mon|tues|wednes|thurs|fri|satur|sun)day)", re.IGNORECASE)),
    ("time", re.compile(r"\b\d{1,2}(?::\d{2})? ?(?:am|pm)\b|\b\d{1,2}:\d{2}\b|\bnoon\b|\bmidnight\b", re.IGNORECASE)),
)


def value_types(text: str) -> list[str]:
    """The kinds of argument value ``text`` contains: ``"on 12 March at 5pm"`` -> ``["date", "time"]``."""
    return [name for name, pattern in VALUE_TYPES if pattern.search(text)]


def query_terms(text: str, context: str = "", context_weight: float = 0.3) -> dict[str, float]:
    """Query term -> weight. Terms of ``context`` count ``context_weight`` as much (they sharpen, not steer).
    The kind of each argument value the query spells out (a date, a time of day) counts as a query word too."""
    terms: dict[str, float] = {}
    for t in tokenize(text):
        terms[t] = 1.0
    for kind in value_types(text):
        for t in tokenize(kind):
            terms[t] = 1.0
    if context:
        for t in tokenize(context):
            terms.setdefault(t, context_weight)
    return terms


def keyword_scores(index: KeywordIndex, terms: dict[str, float]) -> tuple[np.ndarray, float]:
    """BM25F score of every doc, and the best score a doc could reach for these terms (for normalising)."""
    ids = [(index.vocab[t], w) for t, w in terms.items() if t in index.vocab]
    if not ids or index.n_docs == 0:
        return np.zeros(index.n_docs, dtype=np.float32), 0.0
    starts = index.indptr[[t for t, _ in ids]]
    ends = index.indptr[[t + 1 for t, _ in ids]]
    sl_docs = [index.doc_ids[s:e] for s, e in zip(starts, ends)]
    sl_w = [index.weights[s:e] * w for (s, e), (_, w) in zip(zip(starts, ends), ids)]
    scores = np.bincount(np.concatenate(sl_docs), weights=np.concatenate(sl_w), minlength=index.n_docs)
    # Unknown query terms count toward the ceiling with the largest idf: a query mostly about things no tool
    # mentions must not look like a perfect keyword match.
    max_idf = float(index.idf.max()) if len(index.idf) else 0.0
    ceiling = sum(w * (float(index.idf[index.vocab[t]]) if t in index.vocab else max_idf) for t, w in terms.items())
    return scores.astype(np.float32), ceiling * (index.k1 + 1.0)


# ---------------------------------------------------------------------------------------------------------------
# dense


def dense_scores(vectors: np.ndarray, query_vec: np.ndarray, block: int = 256) -> np.ndarray:
    """Cosine of the (unit) query vector with every (unit) tool vector.

    Done in row blocks on purpose: a single (n x 384) mat-vec makes OpenBLAS spread the work over all cores, which on
    a busy laptop took 24 ms instead of 0.2 ms for 1,703 tools; blocks this small stay on one thread.
    """
    n = len(vectors)
    if n <= block:
        return vectors @ query_vec
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, block):
        out[start:start + block] = vectors[start:start + block] @ query_vec
    return out


# ---------------------------------------------------------------------------------------------------------------
# fusion and the bar


@dataclass(frozen=True)
class FilterWeights:
    """Fusion weight of the keyword score, context weight, and the default bar.

    ``lex=0.25`` maximised recall@5 on a random half of the BFCL queries (seed 0; reported on the other half,
    benchmarks/bench_tools_bfcl.py). The bar that keeps 95% of relevant queries is 0.50 on BFCL but about 0.35 on real
    MCP server catalogues (shorter descriptions, benchmarks/bench_tools_mcp.py); the default 0.4 sits between and leans
    towards keeping tools, because a dropped tool is worse than a few extra tokens. Tune ``min_score`` per repository.
    """

    lex: float = 0.25
    context_weight: float = 0.3
    min_score: float = 0.4


@dataclass(frozen=True)
class ScoredTool:
    """One returned tool: its catalogue row, fused score, component scores, and a one-line reason."""

    index: int
    score: float
    dense: float
    lex: float
    reason: str
    pinned: bool = False


@dataclass
class FilterOutcome:
    """The filter's answer: the chosen tools, whether a tool is needed at all, and the token accounting."""

    tools: list[ScoredTool]
    no_tool_needed: bool
    best_score: float
    min_score: float
    catalogue_tools: int
    considered_tools: int
    catalogue_tokens: int
    returned_tokens: int
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_saved(self) -> int:
        return max(0, self.catalogue_tokens - self.returned_tokens)


def fuse(dense: np.ndarray, lex: np.ndarray, lex_weight: float) -> np.ndarray:
    """Score-level fusion: cosine similarity plus the keyword score as a share of this query's best keyword score.

    The dense part keeps its absolute meaning (so one bar works across queries); the keyword part only reorders,
    lifting tools that share the query's rare words. Measured better than RRF and than an absolute keyword share.
    """
    top = float(lex.max()) if len(lex) else 0.0
    return dense + lex_weight * (lex / top if top > 0 else lex)


def match_patterns(keys: Sequence[str], names: Sequence[str], patterns: Iterable[str]) -> np.ndarray:
    """Boolean mask of tools matching any glob in ``patterns``; a pattern matches ``server/name`` or the bare name."""
    pats = [p for p in patterns if p]
    mask = np.zeros(len(keys), dtype=bool)
    if not pats:
        return mask
    for i, (k, n) in enumerate(zip(keys, names)):
        mask[i] = any(fnmatch.fnmatchcase(k, p) or fnmatch.fnmatchcase(n, p) for p in pats)
    return mask


def explain(i: int, terms: dict[str, float], index: KeywordIndex, dense: float,
            words: dict[str, str] | None = None) -> str:
    """Why tool ``i`` matched: the query words found in each field, and the meaning similarity."""
    parts: list[str] = []
    words = words or {}
    if index.field_terms:
        fields = index.field_terms[i]
        for fname in ("name", "server", "params", "values", "description"):
            hit = sorted(t for t in terms if terms[t] >= 1.0 and t in fields.get(fname, ()))
            if hit:
                parts.append(f"{fname}: {' '.join(words.get(h, h) for h in hit[:5])}")
    parts.append(f"similarity {dense:.2f}")
    return "; ".join(parts)


def filter_scores(
    dense: np.ndarray,
    lex: np.ndarray,
    *,
    keys: Sequence[str],
    names: Sequence[str],
    tokens: np.ndarray,
    terms: dict[str, float],
    keyword_index: KeywordIndex,
    k: int = 5,
    weights: FilterWeights = FilterWeights(),
    min_score: float | None = None,
    pinned: Iterable[str] = (),
    allow: Iterable[str] = (),
    deny: Iterable[str] = (),
    query_text: str = "",
) -> FilterOutcome:
    """Pick the top ``k`` tools from component scores, applying allow/deny lists, pins and the bar.

    ``allow`` (if given) restricts the candidates; ``deny`` removes them (deny wins). Pinned tools are always returned
    (unless denied), in addition to the top ``k``, and do not count against ``k``. When the best candidate scores
    below the bar the answer is "no tool needed" (pinned tools are still returned); otherwise the top ``k`` are
    returned, ranked (the bar decides whether tools are needed, ``k`` how many are shown).
    """
    n = len(keys)
    bar = weights.min_score if min_score is None else float(min_score)
    fused = fuse(dense, lex, weights.lex)
    allow = list(allow)
    ok = match_patterns(keys, names, allow) if allow else np.ones(n, dtype=bool)
    ok &= ~match_patterns(keys, names, deny)
    pin_mask = match_patterns(keys, names, pinned) & ok
    cand = ok & ~pin_mask
    notes: list[str] = []
    masked = np.where(cand, fused, -np.inf)
    k = max(0, int(k))
    if k and cand.any():
        kk = min(k, int(cand.sum()))
        top = np.argpartition(-masked, kk - 1)[:kk]
        top = top[np.argsort(-masked[top], kind="stable")]
    else:
        top = np.zeros(0, dtype=np.int64)
    best = float(masked[top[0]]) if len(top) else 0.0
    no_tool = not len(top) or best < bar
    keep = [] if no_tool else [int(i) for i in top]
    if no_tool and len(top):
        notes.append(f"no tool scored above the bar {bar:.2f} (best {best:.2f}): the request likely needs no tool")
    if not cand.any() and n:
        notes.append("the allow/deny lists leave no candidate tools")
    out: list[ScoredTool] = []
    words = surface_words(query_text) if query_text else None
    for i in np.flatnonzero(pin_mask):
        out.append(ScoredTool(int(i), float(fused[i]), float(dense[i]), float(lex[i]), "pinned", True))
    for i in keep:
        out.append(ScoredTool(i, float(fused[i]), float(dense[i]), float(lex[i]),
                              explain(i, terms, keyword_index, float(dense[i]), words)))
    return FilterOutcome(
        tools=out,
        no_tool_needed=no_tool,
        best_score=best,
        min_score=bar,
        catalogue_tools=n,
        considered_tools=int(ok.sum()),
        catalogue_tokens=int(tokens.sum()),
        returned_tokens=int(sum(int(tokens[t.index]) for t in out)),
        notes=notes,
    )

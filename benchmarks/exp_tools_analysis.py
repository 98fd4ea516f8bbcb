"""Experiment: error analysis of BFCL pooled-catalogue ranking on the FIT half only, and scoring variants.

    python benchmarks/exp_tools_analysis.py analyse            # fit-half miss categories, before vs after
    python benchmarks/exp_tools_analysis.py variants [MODE]    # fit and eval half recall of variants

MODE: (none) greedy re-rankers (MMR, covered-term decay, query residual) plus centring / hubness corrections;
``lex`` keyword-field variants (enum values, examples removed, nested params, defaults, fusion normalisations,
value-type words); ``text`` embedded-text templates; ``combo`` value types x enum text x fusion weight; ``soft``
embedding-neighbour term expansion; ``enumw`` weight of the enum-values field; ``clauses`` per-clause scoring of
multi-sentence queries; ``df`` common-term down-weighting, fusion weight and a y->i stemmer fix; ``prf`` dense
pseudo-relevance feedback. Choices are made on the fit half; the eval half is printed alongside only to check them.

Vectors of variant tool texts are cached per text in /work/scratch/tools (encode_cached), query vectors in the
benchmark's own cache. Not part of the product; the findings are summarised in tools/filter.py and tools/index.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_tools_bfcl import encode_cached, recall_metrics  # noqa: E402
from tools.catalog import embed_text, parse_tools, tool_fields  # noqa: E402
from tools.filter import (FilterWeights, build_keyword_index, expand_abbreviations, fuse,  # noqa: E402
                          keyword_scores, query_terms)

DATA = REPO / ".." / "shared" / "data" / "bfcl"
SCRATCH = Path("/work/scratch/tools")


def load():
    catalogue = json.loads((DATA / "derived_pooled_catalog.json").read_text())
    queries = json.loads((DATA / "derived_query_to_tools.json").read_text())
    tools = parse_tools(catalogue, "bfcl", "x").tools
    tools.sort(key=lambda t: t.key)
    pos = {t.name: i for i, t in enumerate(tools)}
    rng = np.random.default_rng(0)
    fit_mask = np.zeros(len(queries), dtype=bool)
    fit_mask[rng.permutation(len(queries))[: len(queries) // 2]] = True
    rel = np.array([i for i, q in enumerate(queries) if q["gold_functions"]])
    rel_fit, rel_ev = rel[fit_mask[rel]], rel[~fit_mask[rel]]
    gold = {int(i): [{pos[g]} for g in queries[i]["gold_functions"]] for i in rel}
    return tools, queries, pos, rel_fit, rel_ev, gold


def metrics(mat, rows, gold):
    order = np.argsort(-mat[rows], axis=1)[:, :10]
    return recall_metrics(order, [gold[int(i)] for i in rows])


def fmt(m):
    return " ".join(f"{k} {v:5.1f}" for k, v in m.items() if k != "R@3")


def base_scores(tools, queries, text_fn=embed_text, fields_fn=tool_fields, qtext_fn=None, lexw=0.25):
    tvecs = encode_cached([text_fn(t) for t in tools], SCRATCH)
    qtexts = [expand_abbreviations(q["query"]) for q in queries]
    qv = encode_cached([qtext_fn(q) if qtext_fn else q for q in qtexts])
    dense = qv @ tvecs.T
    kw = build_keyword_index([fields_fn(t) for t in tools])
    lex = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
    return dense, lex, kw, qtexts


def analyse():
    """Counts of what keeps the gold tool out of the top 5 on the FIT half, before and after the keyword changes."""
    from indexer.encoder import get_encoder
    from tools.index import keyword_fields
    import tools.filter as tf

    tools, queries, pos, rel_fit, rel_ev, gold = load()
    tv = encode_cached([embed_text(t) for t in tools], SCRATCH)
    enc = get_encoder()
    enc.load()
    tok = enc._impl.tokenizer  # noqa: SLF001 - experiment only: count tokens past the 256 limit
    tok.no_truncation()
    tlen = np.array([len(tok.encode(embed_text(t)).ids) for t in tools])
    qtexts = [expand_abbreviations(q["query"]) for q in queries]
    qlen = np.array([len(tok.encode(q).ids) for q in qtexts])
    dense = encode_cached(qtexts) @ tv.T
    saved = tf.VALUE_TYPES
    for label, fields_fn, vt in (("before (tool_fields, no value types)", tool_fields, ()),
                                 ("after (keyword_fields + value types)", keyword_fields, saved)):
        tf.VALUE_TYPES = vt
        kw = build_keyword_index([fields_fn(t) for t in tools])
        lex = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
        fused = dense + 0.25 * lex / np.maximum(lex.max(1, keepdims=True), 1e-9)
        c: dict[str, int] = {}

        def bump(k):
            c[k] = c.get(k, 0) + 1
        for q in rel_fit:
            order = np.argsort(-fused[q])
            rank = {int(t): r for r, t in enumerate(order[:2000])}
            for g in gold[int(q)]:
                gi = next(iter(g))
                r = rank[gi]
                bump("gold entries")
                if 1 <= r < 20:
                    bump("ranked 2-20")
                    top = int(order[0])
                    bump("  top-1 above it is a near-duplicate (cos>=0.7)" if tv[top] @ tv[gi] >= 0.7 else
                         "  top-1 above it is a different function")
                    bump("  top-1 wins on keywords (its lex > gold lex)" if lex[q, top] > lex[q, gi] else
                         "  top-1 wins on meaning only")
                if r < 5:
                    continue
                bump("not in top 5")
                text = queries[q]["query"]
                non_ascii = sum(ch.isalpha() and ord(ch) > 127 for ch in text) / max(1, sum(ch.isalpha() for ch in text))
                if non_ascii > 0.3:
                    bump("  non-English query")
                if len(gold[int(q)]) > 1:
                    bump("  several gold tools (multi-intent query)")
                if max(float(tv[int(t)] @ tv[gi]) for t in order[:5]) >= 0.7:
                    bump("  a near-duplicate (cos>=0.7) of the gold is in the top 5")
                if dense[q, gi] < 0.2:
                    bump("  gold meaning-similarity < 0.2 (generic tool, e.g. run a shell command)")
                if lex[q, gi] == 0:
                    bump("  gold shares no keyword with the query")
                if tlen[gi] > 256:
                    bump("  gold embedded text > 256 tokens (truncated)")
                if qlen[q] > 256:
                    bump("  query > 256 tokens (truncated)")
        print(label, fmt(metrics(fused, rel_fit, gold)))
        for k, v in c.items():
            print(f"   {k}: {v}")
    tf.VALUE_TYPES = saved
    print(f"catalogue: {(tlen > 256).sum()} of {len(tools)} tool texts and {(qlen > 256).sum()} of {len(qtexts)} "
          "queries exceed 256 tokens")


def report(name, mat, rel_fit, rel_ev, gold):
    print(f"{name:40s} fit {fmt(metrics(mat, rel_fit, gold))} | eval {fmt(metrics(mat, rel_ev, gold))}", flush=True)


def variants():
    tools, queries, pos, rel_fit, rel_ev, gold = load()
    dense, lex, kw, qtexts = base_scores(tools, queries)
    tv = encode_cached([embed_text(t) for t in tools], SCRATCH)
    qv = encode_cached(qtexts)
    fuse_all = lambda d, l, w=0.25: np.stack([fuse(d[i], l[i], w) for i in range(len(d))])
    report("product", fuse_all(dense, lex), rel_fit, rel_ev, gold)
    if len(sys.argv) > 2 and sys.argv[2] == "combo":
        kw = build_keyword_index([fields_enum(t) for t in tools])
        lx = np.stack([keyword_scores(kw, typed_terms(q, 1.0, ("date", "time", "url", "email", "path")))[0]
                       for q in qtexts])
        ln = lx / np.maximum(lx.max(1, keepdims=True), 1e-9)
        de = np.load(SCRATCH / "dense_enum_in_text.npy")
        for w in (0.2, 0.25, 0.3, 0.35):
            report(f"typed lex, base text w={w}", dense + w * ln, rel_fit, rel_ev, gold)
            report(f"typed lex, enum text w={w}", de + w * ln, rel_fit, rel_ev, gold)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "enumw":
        import tools.filter as tf
        for sets in ((), ("date", "time")):
            for ew in (0.3, 0.5, 0.7, 1.0):
                kw = build_keyword_index([fields_enum_sep(t) for t in tools], {**tf.FIELD_WEIGHTS, "enum": ew})
                lx = np.stack([keyword_scores(kw, typed_terms(q, 1.0, sets))[0] for q in qtexts])
                report(f"enum field {ew} typed {sets}", dense + 0.25 * lx / np.maximum(lx.max(1, keepdims=True), 1e-9),
                       rel_fit, rel_ev, gold)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "clauses":
        clause_interleave(tools, queries, dense, rel_fit, rel_ev, gold, qtexts)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "df":
        import tools.filter as tf
        from tools.index import keyword_fields
        kw = build_keyword_index([keyword_fields(t) for t in tools])
        n = kw.n_docs
        df = {t: int(kw.indptr[i + 1] - kw.indptr[i]) for t, i in kw.vocab.items()}
        terms = [query_terms(q) for q in qtexts]
        for w in (0.2, 0.25, 0.3, 0.35):
            lx = np.stack([keyword_scores(kw, t)[0] for t in terms])
            report(f"product lexw={w}", dense + w * lx / np.maximum(lx.max(1, keepdims=True), 1e-9), rel_fit, rel_ev, gold)
        for p in (0.03, 0.05, 0.1):
            for dw in (0.0, 0.5):
                lx = np.stack([keyword_scores(kw, {k: (v * dw if df.get(k, 0) > p * n else v) for k, v in t.items()})[0]
                               for t in terms])
                report(f"common terms (df>{p}) x{dw}", dense + 0.25 * lx / np.maximum(lx.max(1, keepdims=True), 1e-9),
                       rel_fit, rel_ev, gold)
        orig = tf.stem

        def stem_y(word):
            w = orig(word)
            return w[:-1] + "i" if len(w) > 3 and w.endswith("y") else w
        tf.stem = stem_y
        kw = build_keyword_index([keyword_fields(t) for t in tools])
        lx = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
        report("stem y->i", dense + 0.25 * lx / np.maximum(lx.max(1, keepdims=True), 1e-9), rel_fit, rel_ev, gold)
        tf.stem = orig
        return
    if len(sys.argv) > 2 and sys.argv[2] == "prf":
        from tools.index import keyword_fields
        kw = build_keyword_index([keyword_fields(t) for t in tools])
        tv = encode_cached([embed_text(t) for t in tools], SCRATCH)
        qv = encode_cached(qtexts)
        lx = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
        ln = lx / np.maximum(lx.max(1, keepdims=True), 1e-9)
        fused = dense + 0.25 * ln
        report("product", fused, rel_fit, rel_ev, gold)
        top = np.argsort(-fused, axis=1)
        for k in (1, 3, 5):
            for beta in (0.2, 0.4):
                q2 = qv + beta * tv[top[:, :k]].mean(1)
                q2 /= np.linalg.norm(q2, axis=1, keepdims=True)
                report(f"prf k={k} beta={beta}", q2 @ tv.T + 0.25 * ln, rel_fit, rel_ev, gold)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "soft":
        soft_terms(tools, queries, dense, rel_fit, rel_ev, gold, qtexts)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "lex":
        lex_variants(tools, queries, dense, rel_fit, rel_ev, gold, qtexts)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "text":
        import tools.filter as tf
        from tools.index import keyword_fields
        kw2 = build_keyword_index([keyword_fields(t) for t in tools])
        lex2 = np.stack([keyword_scores(kw2, query_terms(q))[0] for q in qtexts])
        text_variants(tools, queries, lex2, rel_fit, rel_ev, gold, qtexts)
        return
    for kwargs in [dict(mmr=0.3, tau=0.8), dict(mmr=0.5, tau=0.7), dict(mmr=0.2, tau=0.5), dict(mmr=1.0, tau=0.85),
                   dict(gamma=0.5), dict(gamma=0.3), dict(gamma=0.0), dict(resid=0.5), dict(resid=1.0)]:
        report(f"greedy {kwargs}", greedy(dense, lex, qv, tv, kw, qtexts, **kwargs), rel_fit, rel_ev, gold)
    return
    # centering on the catalogue mean
    mu = tv.mean(0)
    tc = tv - mu
    tc /= np.linalg.norm(tc, axis=1, keepdims=True)
    for a in (0.5, 1.0):
        qc = qv - a * mu
        qc /= np.linalg.norm(qc, axis=1, keepdims=True)
        tca = tv - a * mu
        tca /= np.linalg.norm(tca, axis=1, keepdims=True)
        dc = qc @ tca.T
        report(f"centered a={a}", fuse_all(dc, lex), rel_fit, rel_ev, gold)
        report(f"centered a={a} dense only", dc, rel_fit, rel_ev, gold)
    # hubness: penalise tools in dense regions of the catalogue (CSLS with tool neighbours)
    tt = tv @ tv.T
    np.fill_diagonal(tt, -1)
    for k in (5, 10):
        r = np.sort(tt, axis=1)[:, -k:].mean(1)
        for beta in (0.1, 0.2, 0.3):
            report(f"csls-tools k={k} b={beta}", fuse_all(dense - beta * r[None, :], lex), rel_fit, rel_ev, gold)


def enum_values(tool) -> list[str]:
    """Enum values of the top-level parameters (and of array items)."""
    props = tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
    out = []
    if isinstance(props, dict):
        for spec in props.values():
            if not isinstance(spec, dict):
                continue
            for src in (spec, spec.get("items") if isinstance(spec.get("items"), dict) else {}):
                en = src.get("enum")
                if isinstance(en, list):
                    out += [str(v) for v in en if isinstance(v, (str, int, float)) and str(v).strip()]
    return out


def fields_enum(tool):
    f = tool_fields(tool)
    ev = enum_values(tool)
    if ev:
        f["params"] = f["params"] + " " + " ".join(ev)
    return f


def fields_enum_sep(tool):
    f = tool_fields(tool)
    f["enum"] = " ".join(enum_values(tool))
    return f


def param_enum_items(tool, max_values=24):
    props = tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
    out = []
    if not isinstance(props, dict):
        return out
    from tools.catalog import split_identifier
    for pname, spec in props.items():
        desc = spec.get("description", "") if isinstance(spec, dict) else ""
        desc = desc if isinstance(desc, str) else ""
        ev = []
        if isinstance(spec, dict):
            for src in (spec, spec.get("items") if isinstance(spec.get("items"), dict) else {}):
                if isinstance(src.get("enum"), list):
                    ev += [str(v) for v in src["enum"] if isinstance(v, (str, int, float)) and str(v).strip()]
        text = " ".join(split_identifier(pname))
        if desc:
            text += f": {desc}"
        if ev:
            text += f" (one of: {', '.join(ev[:max_values])})"
        out.append(text)
    return out


def text_enum(tool):
    f = tool_fields(tool)
    params = "; ".join(param_enum_items(tool))
    parts = [f"{f['name']}.", f["description"]]
    if params:
        parts.append(f"Parameters: {params}")
    parts.append(f"(server: {f['server']})")
    return " ".join(p for p in parts if p.strip())


def text_variants(tools, queries, lex, rel_fit, rel_ev, gold, qtexts):
    qv = encode_cached(qtexts)
    import re

    def nodigits(fn):
        def g(tool):
            f = tool_fields(tool)
            text = fn(tool)
            clean = " ".join(w for w in f["name"].split() if not w.isdigit())
            return text.replace(f["name"], clean, 1)
        return g

    def text_colon(tool):
        f = tool_fields(tool)
        params = "; ".join(param_enum_items(tool))
        return f"{f['name']}: {f['description']}" + (f" Parameters: {params}" if params else "") + f" (server: {f['server']})"

    def text_desc_first(tool):
        f = tool_fields(tool)
        params = "; ".join(param_enum_items(tool))
        return f"{f['description']} ({f['name']}, server {f['server']})" + (f" Parameters: {params}" if params else "")

    def text_short_enum(tool):
        f = tool_fields(tool)
        params = "; ".join(param_enum_items(tool, max_values=8))
        parts = [f"{f['name']}.", f["description"]]
        if params:
            parts.append(f"Parameters: {params}")
        parts.append(f"(server: {f['server']})")
        return " ".join(p for p in parts if p.strip())
    for name, fn in [("base", embed_text), ("enum in text", text_enum), ("base nodigits", nodigits(embed_text)),
                     ("enum nodigits", nodigits(text_enum)), ("colon enum", text_colon),
                     ("desc first enum", text_desc_first), ("enum max8", text_short_enum)]:
        tv = encode_cached([fn(t) for t in tools], SCRATCH)
        d = qv @ tv.T
        report(name, np.stack([fuse(d[i], lex[i], 0.25) for i in range(len(d))]), rel_fit, rel_ev, gold)
        report(name + " (dense only)", d, rel_fit, rel_ev, gold)
        np.save(SCRATCH / f"dense_{name.replace(' ', '_')}.npy", d)


import re as _re
_MONTH = r"(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t(ember)?)?|oct(ober)?|nov(ember)?|dec(ember)?)"
TYPED = {
    "date": _re.compile(r"\b(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|" + _MONTH + r"\.? \d{1,2}(st|nd|rd|th)?\b|\d{1,2}(st|nd|rd|th)? (of )?" + _MONTH + r"\b|today|tomorrow|yesterday|(mon|tues|wednes|thurs|fri|satur|sun)day)", _re.I),
    "time": _re.compile(r"\b\d{1,2}(:\d{2})? ?(am|pm)\b|\b\d{1,2}:\d{2}\b|\bnoon\b|\bmidnight\b", _re.I),
    "url": _re.compile(r"https?://\S+|www\.\S+", _re.I),
    "email": _re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b"),
    "path": _re.compile(r"(?<![\w:/])(/[\w.-]+){2,}|\b[a-z]:[\\/]\S*|\b[\w-]+\.(py|js|ts|json|txt|csv|md|yaml|yml|toml|html|java|go|rs|c|cpp|h)\b", _re.I),
}
TYPE_WORDS = {"date": "date", "time": "time", "url": "url", "email": "email", "path": "file path"}


def typed_terms(q, w, sets):
    terms = query_terms(q)
    for name in sets:
        if TYPED[name].search(q):
            for t in query_terms(TYPE_WORDS[name]):
                terms[t] = max(terms.get(t, 0.0), w)
    return terms


def soft_terms(tools, queries, dense, rel_fit, rel_ev, gold, qtexts):
    from tools.filter import surface_words
    kw = build_keyword_index([fields_enum(t) for t in tools])
    surf = {}
    for t in tools:
        for k, v in surface_words(" ".join(fields_enum(t).values())).items():
            surf.setdefault(k, v)
    vocab = sorted(kw.vocab)
    vv = encode_cached([surf.get(v, v) for v in vocab], SCRATCH)
    qsurf = {}
    for q in qtexts:
        for k, v in surface_words(q).items():
            qsurf.setdefault(k, v)
    qwords = sorted(qsurf)
    qwv = encode_cached([qsurf[w] for w in qwords], SCRATCH)
    qidx = {w: i for i, w in enumerate(qwords)}
    sims = qwv @ vv.T
    sets = ("date", "time", "url", "email", "path")
    base_terms = [typed_terms(q, 1.0, sets) for q in qtexts]
    lx0 = np.stack([keyword_scores(kw, t)[0] for t in base_terms])
    report("typed base", dense + 0.25 * lx0 / np.maximum(lx0.max(1, keepdims=True), 1e-9), rel_fit, rel_ev, gold)
    vset = set(vocab)
    for tau in (0.6, 0.7, 0.8):
        for alpha in (0.3, 0.6):
            for only_vocab in (True, False):
                lx = np.zeros_like(lx0)
                for i, terms in enumerate(base_terms):
                    ex = dict(terms)
                    for t, w in terms.items():
                        if t not in qidx or (only_vocab and t not in vset):
                            continue
                        row = sims[qidx[t]]
                        for j in np.flatnonzero(row >= tau):
                            n = vocab[j]
                            if n != t:
                                ex[n] = max(ex.get(n, 0.0), w * alpha * float(row[j]))
                    lx[i] = keyword_scores(kw, ex)[0]
                report(f"soft tau={tau} a={alpha} vocab-only={only_vocab}",
                       dense + 0.25 * lx / np.maximum(lx.max(1, keepdims=True), 1e-9), rel_fit, rel_ev, gold)


_SPLIT = _re.compile(r"(?<=[.?!;])\s+|\b(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|fourth|then|next|after that|"
                     r"afterwards|lastly|finally|also|additionally|moreover|furthermore|in addition)\b,?", _re.I)


def clauses(q, min_words=4):
    parts = [p.strip() for p in _SPLIT.split(q) if p and p.strip()]
    out = []
    for p in parts:
        if out and len(query_terms(p)) < min_words:
            out[-1] += " " + p
        elif len(query_terms(p)) >= min_words or not out:
            out.append(p)
        else:
            out[-1] += " " + p
    # a short first part joins the next
    if len(out) > 1 and len(query_terms(out[0])) < min_words:
        out[1] = out[0] + " " + out[1]
        out = out[1:]
    return out


def clause_interleave(tools, queries, dense, rel_fit, rel_ev, gold, qtexts):
    from tools.index import keyword_fields
    kw = build_keyword_index([keyword_fields(t) for t in tools])
    tv = encode_cached([embed_text(t) for t in tools], SCRATCH)
    lx = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
    fused = dense + 0.25 * lx / np.maximum(lx.max(1, keepdims=True), 1e-9)
    report("product", fused, rel_fit, rel_ev, gold)
    rel = np.r_[rel_fit, rel_ev]
    cl = {int(q): clauses(qtexts[q]) for q in rel}
    multi = [q for q in cl if len(cl[q]) > 1]
    print("queries with >1 clause:", len(multi), "of", len(rel), "; multi-gold among them:",
          sum(len(gold[q]) > 1 for q in multi), "; multi-gold total:", sum(len(gold[int(q)]) > 1 for q in rel))
    allc = sorted({c for q in multi for c in cl[q]})
    cv = encode_cached(allc)
    cpos = {c: i for i, c in enumerate(allc)}
    cscore = {}
    for q in multi:
        rows = []
        for c in cl[q]:
            d = tv @ cv[cpos[c]]
            l = keyword_scores(kw, query_terms(c))[0]
            rows.append(d + 0.25 * l / max(float(l.max()), 1e-9))
        cscore[q] = np.stack(rows)
    for bar in (0.0, 0.4, 0.5, 0.6):
        for mode in ("interleave", "max-0.1", "max-0.05"):
            out = fused.copy()
            for q in multi:
                cs = cscore[q]
                if mode.startswith("max"):
                    pen = float(mode.split("-")[1])
                    out[q] = np.maximum(fused[q], cs.max(0) - pen)
                    continue
                main = list(np.argsort(-fused[q])[:50])
                picks = []
                for r in range(cs.shape[0]):
                    j = int(np.argmax(cs[r]))
                    if cs[r, j] >= bar and j not in picks:
                        picks.append(j)
                order = picks + [t for t in main if t not in picks]
                sc = np.full(len(tools), -1e9)
                for rank, t in enumerate(order):
                    sc[t] = 1000 - rank
                out[q] = sc
            if mode.startswith("max") and bar > 0:
                continue
            report(f"clauses {mode} bar={bar}", out, rel_fit, rel_ev, gold)


def pos_of(tools, name):
    return next(i for i, t in enumerate(tools) if t.name == name)


def lex_variants(tools, queries, dense, rel_fit, rel_ev, gold, qtexts):
    import tools.filter as tf

    def run(name, fields_fn=tool_fields, fw=None):
        kw = build_keyword_index([fields_fn(t) for t in tools], fw)
        lex = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
        report(name, np.stack([fuse(dense[i], lex[i], 0.25) for i in range(len(dense))]), rel_fit, rel_ev, gold)
        report(name + " (lex only)", lex, rel_fit, rel_ev, gold)

    run("enum in params", fields_enum)

    def fields_more(tool, nested=True, defaults=True):
        f = fields_enum(tool)
        props = tool.parameters.get("properties") if isinstance(tool.parameters, dict) else None
        extra = []
        for spec in (props or {}).values():
            if not isinstance(spec, dict):
                continue
            if defaults and isinstance(spec.get("default"), str) and spec["default"].strip():
                extra.append(spec["default"])
            sub = spec.get("properties") or (spec.get("items") or {}).get("properties") if isinstance(spec.get("items", {}), dict) else None
            if nested and isinstance(sub, dict):
                for n2, s2 in sub.items():
                    from tools.catalog import split_identifier
                    extra.append(" ".join(split_identifier(n2)))
                    if isinstance(s2, dict) and isinstance(s2.get("description"), str):
                        extra.append(s2["description"])
                    if isinstance(s2, dict) and isinstance(s2.get("enum"), list):
                        extra += [str(v) for v in s2["enum"]]
        f["params"] += " " + " ".join(extra)
        return f
    kw = build_keyword_index([fields_enum(t) for t in tools])
    for sets in (("date",), ("date", "time"), ("url", "email", "path"), ("date", "time", "url", "email", "path")):
        for wv in (0.5, 1.0):
            lx = np.stack([keyword_scores(kw, typed_terms(q, wv, sets))[0] for q in qtexts])
            report(f"typed {'+'.join(sets)} w={wv}", dense + 0.25 * lx / np.maximum(lx.max(1, keepdims=True), 1e-9), rel_fit, rel_ev, gold)
    return
    lx = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
    ln = lx / np.maximum(lx.max(1, keepdims=True), 1e-9)
    srt = -np.sort(-dense, axis=1)
    for topn in (10, 50):
        sd = srt[:, :topn].std(1)
        sd = sd / np.median(sd)
        for w in (0.2, 0.25, 0.3):
            report(f"lex * dense-spread top{topn} w={w}", dense + w * ln * sd[:, None], rel_fit, rel_ev, gold)
    z = (dense - srt[:, :50].mean(1, keepdims=True)) / srt[:, :50].std(1, keepdims=True)
    lz = (lx - np.sort(lx, axis=1)[:, -50:].mean(1, keepdims=True)) / (np.sort(lx, axis=1)[:, -50:].std(1, keepdims=True) + 1e-9)
    for w in (0.3, 0.5, 0.7, 1.0):
        report(f"z(dense) + {w} z(lex) top50", z + w * lz, rel_fit, rel_ev, gold)
    for w in (0.3, 0.5, 0.7):
        zl = (dense - dense.mean(1, keepdims=True)) / dense.std(1, keepdims=True)
        report(f"z(dense all) + {w}*lex/max*std-ratio", zl + w * ln * 4, rel_fit, rel_ev, gold)
    return
    run("enum+nested", lambda t: fields_more(t, True, False))
    run("enum+defaults", lambda t: fields_more(t, False, True))
    return
    import re
    ex = re.compile(r"(\(?\b(e\.g\.|eg\.|for example|for instance|such as|like)\b[^.;)]*\)?)|('[^']*'|\"[^\"]*\")", re.I)

    def fields_noex(tool):
        f = fields_enum(tool)
        f["params"] = ex.sub(" ", f["params"])
        return f
    print(ex.sub(" ", fields_enum(tools[pos_of(tools, "Events_3_FindEvents")])["params"]))
    run("enum, param examples removed", fields_noex)
    def fields_noex_desc(tool):
        f = fields_noex(tool)
        f["description"] = ex.sub(" ", f["description"])
        return f
    run("enum, param+desc examples removed", fields_noex_desc)
    for w in (0.2, 0.3, 0.35, 0.4):
        kw = build_keyword_index([fields_enum(t) for t in tools])
        lx = np.stack([keyword_scores(kw, query_terms(q))[0] for q in qtexts])
        report(f"enum lexw={w}", np.stack([fuse(dense[i], lx[i], w) for i in range(len(dense))]), rel_fit, rel_ev, gold)
    # query-side: terms inside quotes are argument values
    qre = re.compile(r"'[^']{2,}'|\"[^\"]{2,}\"")

    def qterms_quoted(q, wq):
        inner = " ".join(m.group(0) for m in qre.finditer(q))
        terms = query_terms(qre.sub(" ", q))
        for t in query_terms(inner):
            terms.setdefault(t, wq)
        return terms
    kw = build_keyword_index([fields_enum(t) for t in tools])
    for wq in (0.3, 0.6):
        lx = np.stack([keyword_scores(kw, qterms_quoted(q, wq))[0] for q in qtexts])
        report(f"enum, quoted query terms w={wq}", np.stack([fuse(dense[i], lx[i], 0.25) for i in range(len(dense))]), rel_fit, rel_ev, gold)
    return
    for w in (0.5, 1.0):
        run(f"enum field w={w}", fields_enum_sep, {**tf.FIELD_WEIGHTS, "enum": w})
    orig = tf.stem

    def stem_y(word):
        w = orig(word)
        return w[:-1] + "i" if len(w) > 3 and w.endswith("y") else w
    tf.stem = stem_y
    run("stem y->i")
    run("stem y->i + enum", fields_enum)
    tf.stem = orig


def greedy(dense, lex, qv, tv, kw, qtexts, *, mmr=0.0, tau=0.0, gamma=1.0, resid=0.0, n_cand=40, picks=10, w=0.25):
    """Greedy re-rank of the top ``n_cand``: MMR penalty on near-duplicates, decay of covered query terms
    (``gamma``), and removal of the picked tools' direction from the query vector (``resid``)."""
    out = np.full_like(dense, -1e9)
    for q in range(len(dense)):
        top = float(lex[q].max()) or 1.0
        f = dense[q] + w * lex[q] / top
        cand = np.argsort(-f)[:n_cand]
        terms = query_terms(qtexts[q])
        tw = dict(terms)
        qvec = qv[q].copy()
        d = dense[q, cand].copy()
        l = lex[q, cand].copy()
        sim = tv[cand] @ tv[cand].T
        chosen: list[int] = []
        maxsim = np.full(len(cand), -1.0)
        alive = np.ones(len(cand), bool)
        for r in range(picks):
            s = d + w * l / top - mmr * np.maximum(0.0, maxsim - tau)
            s[~alive] = -np.inf
            j = int(np.argmax(s))
            alive[j] = False
            chosen.append(j)
            out[q, cand[j]] = 1000 - r
            maxsim = np.maximum(maxsim, sim[j])
            if gamma < 1.0:
                fields = kw.field_terms[cand[j]]
                covered = set().union(*fields.values())
                changed = False
                for t in list(tw):
                    if t in covered:
                        tw[t] *= gamma
                        changed = True
                if changed:
                    l = keyword_scores(kw, tw)[0][cand]
            if resid > 0:
                qvec = qvec - resid * float(qvec @ tv[cand[j]]) * tv[cand[j]]
                qvec /= max(float(np.linalg.norm(qvec)), 1e-9)
                d = tv[cand] @ qvec
    return out


if __name__ == "__main__":
    {"analyse": analyse, "variants": variants}[sys.argv[1]]()

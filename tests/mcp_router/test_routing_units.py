"""Router parts that need no model: registry validation, signals, scoring maths, feedback kNN, labelled files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import UserError
from mcp_router.routing import scoring
from mcp_router.routing import tiers as tiermodel
from mcp_router.routing.evaluation import load_labelled
from mcp_router.routing.feedback import knn_tier_shift, need_from_outcome
from mcp_router.routing.lexical import (LexicalModel, build_vocabulary, fit_lexical, is_prose, split_pasted, terms,
                                        vectorize)
from mcp_router.routing.registry import DEFAULT_REGISTRY, LABEL_COPIES, label_utterances, load_registry
from mcp_router.routing.signals import SessionTurn, code_evidence, complexity_signal, privacy_signal, session_signal

NAMES = ["syntax_help", "explain_code", "code_generation", "debugging", "test_writing", "refactoring", "code_review",
         "performance", "architecture", "security", "devops", "documentation"]
TIERS = ["slm", "srm", "llm", "lrm"]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "routes.yaml"
    p.write_text(text)
    return p


# -- registry ---------------------------------------------------------------------------------------------------------

def test_default_registry_has_the_named_routes_with_enough_examples() -> None:
    reg = load_registry()
    assert reg.route_names == NAMES
    assert reg.tier_names == TIERS
    assert all(len(r.utterances) >= 15 for r in reg.routes)
    assert reg.fallback in reg.tiers and reg.local_tier == "slm"


def test_unknown_tier_is_reported_with_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, "routes:\n  my_route:\n    tier: huge\n    utterances: [a b c]\n")
    with pytest.raises(UserError) as err:
        load_registry([p])
    assert f"{p}:3" in str(err.value) and "unknown tier `huge`" in str(err.value)


def test_duplicate_route_is_reported_with_both_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "routes:\n  a_route:\n    tier: slm\n    utterances: [x]\n"
                        "  a_route:\n    tier: srm\n    utterances: [y]\n")
    with pytest.raises(UserError) as err:
        load_registry([p])
    assert f"{p}:5" in str(err.value) and "duplicate route `a_route`" in str(err.value) and "line 2" in str(err.value)


def test_empty_route_is_reported_with_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, "routes:\n  ok_route:\n    tier: slm\n    utterances: [x]\n  empty_route:\n")
    with pytest.raises(UserError) as err:
        load_registry([p])
    assert f"{p}:5" in str(err.value) and "empty" in str(err.value)
    p = write(tmp_path, "routes:\n  no_examples:\n    tier: slm\n    utterances: []\n")
    with pytest.raises(UserError, match=r"routes.yaml:2: route `no_examples` is empty"):
        load_registry([p])


def test_bad_regex_and_unknown_field_name_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, "routes:\n  r1:\n    tier: slm\n    utterances: [x]\n    regex: ['(unclosed']\n")
    with pytest.raises(UserError, match=r"routes.yaml:5: bad regex"):
        load_registry([p])
    p = write(tmp_path, "routes:\n  r1:\n    tier: slm\n    utterance: [x]\n")
    with pytest.raises(UserError, match=r"routes.yaml:4: unknown route field `utterance`"):
        load_registry([p])


def test_user_file_extends_and_overrides_the_default(tmp_path: Path) -> None:
    p = write(tmp_path, "tiers:\n  llm:\n    model: my-big-model\n"
                        "routes:\n  debugging:\n    tier: llm\n    extra_utterances: [my flaky thing broke]\n"
                        "  sql_help:\n    tier: slm\n    utterances: [how do I join two tables]\n")
    reg = load_registry([p])
    assert reg.tiers["llm"].model == "my-big-model"
    dbg = reg.route("debugging")
    assert dbg.tier == "llm" and dbg.utterances[-1] == "my flaky thing broke" and len(dbg.utterances) > 15
    assert reg.route_names[-1] == "sql_help"
    assert DEFAULT_REGISTRY.is_file()


def test_route_name_and_description_join_the_training_rows_and_the_cache_key(tmp_path: Path) -> None:
    p = write(tmp_path, "routes:\n  sql_help:\n    tier: slm\n    description: Questions about SQL queries\n"
                        "    utterances: [how do I join two tables]\n")
    reg = load_registry([p])
    texts, labels = reg.training_texts()
    mine = [t for t, y in zip(texts, labels) if y == reg.route_names.index("sql_help")]
    assert mine == ["how do I join two tables"] + ["sql help"] * LABEL_COPIES + ["Questions about SQL queries"]
    before = reg.content_hash()
    p.write_text(p.read_text().replace("Questions about SQL queries", "Writing SQL"))
    assert load_registry([p]).content_hash() != before  # a new description retrains the classifier
    assert label_utterances("pto-request") == ["pto request"] * LABEL_COPIES


def test_examples_files_join_utterances_and_out_of_scope_and_bad_ones_are_reported(tmp_path: Path) -> None:
    (tmp_path / "mine.jsonl").write_text('{"query": "pg_dump with only the schema", "route": "sql_help"}\n'
                                         '{"query": "best pizza in town", "route": "none"}\n')
    p = write(tmp_path, "examples: [mine.jsonl]\nroutes:\n  sql_help:\n    tier: slm\n"
                        "    utterances: [how do I join two tables]\n")
    reg = load_registry([p])
    assert reg.route("sql_help").utterances == ["how do I join two tables", "pg_dump with only the schema"]
    assert reg.out_of_scope[-1] == "best pizza in town"
    assert len(reg.route("debugging").utterances) > 100  # the shipped examples file still feeds the default routes
    (tmp_path / "mine.jsonl").write_text('{"query": "x", "route": "no_such_route"}\n')
    with pytest.raises(UserError, match=r"routes.yaml:1: .*unknown route `no_such_route`"):
        load_registry([p])
    p.write_text(p.read_text().replace("mine.jsonl", "missing.jsonl"))
    with pytest.raises(UserError, match=r"routes.yaml:1: examples file .*missing.jsonl does not exist"):
        load_registry([p])


def test_tiered_examples_feed_the_tier_model_and_its_cache_key(tmp_path: Path) -> None:
    (tmp_path / "mine.jsonl").write_text('{"query": "pg_dump with only the schema", "route": "sql_help", "tier": "slm"}\n'
                                         '{"query": "plan a zero-downtime schema split", "route": "sql_help", '
                                         '"tier": "lrm"}\n{"query": "no tier given", "route": "sql_help"}\n'
                                         '{"query": "best pizza in town", "route": "none", "tier": "srm"}\n')
    p = write(tmp_path, "examples: [mine.jsonl]\nroutes:\n  sql_help:\n    tier: slm\n"
                        "    utterances: [how do I join two tables]\n")
    reg = load_registry([p])
    mine = [e for e in reg.tier_examples if e[1] == "sql_help"]
    assert mine == [("pg_dump with only the schema", "sql_help", "slm"),
                    ("plan a zero-downtime schema split", "sql_help", "lrm")]  # untiered and `none` rows are not
    assert len(reg.tier_examples) > 2000  # the shipped examples carry tiers too
    before = reg.tier_hash()
    p.write_text(p.read_text().replace("tier: slm", "tier: srm"))  # a route's default tier is a model input
    assert load_registry([p]).tier_hash() != before
    (tmp_path / "mine.jsonl").write_text('{"query": "x", "route": "sql_help", "tier": "huge"}\n')
    with pytest.raises(UserError, match=r"mine.jsonl: row 1: unknown tier `huge`"):
        load_registry([p])


def test_tier_choice_weighs_under_routing_by_its_cost() -> None:
    cost = tiermodel.cost_matrix(4, under_cost=4.0)
    assert cost[0, 2] == 8.0 and cost[2, 0] == 2.0 and np.all(np.diag(cost) == 0)  # [chosen, needed]
    p = np.array([[0.6, 0.0, 0.4, 0.0], [0.0, 0.9, 0.1, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert tiermodel.choose_tier(p, under_cost=1.0).tolist() == [0, 1, 3]  # plain expected distance: the median
    assert tiermodel.choose_tier(p, under_cost=4.0).tolist() == [2, 1, 3]  # a 40% chance of needing llm is enough


def test_rule_tier_moves_the_default_and_keeps_the_paste_floor() -> None:
    assert tiermodel.rule_tier(0, complexity_signal("what is a tuple"), 4) == 0
    assert tiermodel.rule_tier(3, complexity_signal("design it across the whole codebase, trade-offs"), 4) == 3  # clipped
    pasted = "why\n```\nx = [1, 2]\nprint(x[3])\nfoo(bar)\n```"
    assert tiermodel.rule_tier(0, complexity_signal(pasted), 4) == 1


def test_tier_model_learns_what_the_rules_cannot_see_and_survives_a_save(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts = [f"task {i}" for i in range(200)]
    x = scoring.normalise(rng.normal(size=(200, 8))).astype(np.float32)
    needed = (x[:, 0] > 0).astype(int) * 2  # the tier depends on a vector direction only: slm or llm
    feats = tiermodel.training_matrix(x, texts, [0] * 200, 4)
    assert feats.shape == (200, 8 + tiermodel.N_COUNTS + 8)
    model = tiermodel.fit_tier_model(feats, needed, 4)
    pred = tiermodel.choose_tier(model.probs(feats), under_cost=1.0)
    assert (pred == needed).mean() > 0.95
    assert model.probs(feats).shape == (200, 4) and np.allclose(model.probs(feats)[:, [1, 3]], 0)  # unseen tiers
    tiermodel.save(tmp_path / "t.npz", model)
    again = tiermodel.load(tmp_path / "t.npz", 4)
    assert np.allclose(again.probs(feats), model.probs(feats))
    assert tiermodel.load(tmp_path / "t.npz", 5) is None and tiermodel.load(tmp_path / "missing.npz", 4) is None
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 torn")
    assert tiermodel.load(tmp_path / "torn.npz", 4) is None
    assert tiermodel.fit_tier_model(feats[:50], needed[:50], 4) is None  # too few examples: the rules decide
    assert tiermodel.fit_tier_model(feats, np.ones(200, int), 4) is None  # one tier only: nothing to learn


# -- signals ----------------------------------------------------------------------------------------------------------

def test_complexity_scope_paste_reasoning_and_simple() -> None:
    assert complexity_signal("fix this typo").delta == 0
    s = complexity_signal("rename this function across the whole codebase")
    assert s.delta == 1 and "scope:codebase" in s.fired
    code = "why is this slow?\n" + "\n".join(f"    x{i} = compute({i})" for i in range(60))
    s = complexity_signal(code)
    assert s.delta >= 1 and s.code_lines >= 40
    s = complexity_signal("design the system and explain the trade-offs step by step")
    assert s.delta == 2 and any(f.startswith("reasoning:") for f in s.fired)
    assert complexity_signal("quick one-liner to reverse a list").delta == -1


@pytest.mark.parametrize("text, fired", [
    ("write a full test suite for this state machine", "scope:full test suite"),
    ("plan the migration order across ~40 components", "scope:~40 components"),
    ("split our 800-line utils.py into modules", "scope:800-line"),
    ("audit the auth flow across auth/, gateway/ and users/ for weaknesses", "scope:3 paths"),
])
def test_complexity_reads_large_scopes(text: str, fired: str) -> None:
    s = complexity_signal(text)
    assert s.delta >= 1 and fired in s.fired, s.fired


def test_complexity_small_asks_and_urls_do_not_count_as_scope() -> None:
    assert complexity_signal("rename this variable in src/app.py").delta == 0
    assert complexity_signal("fetch https://example.com/a/b/c/d and print it").delta == 0
    assert complexity_signal("write a function that adds 2 numbers").delta == 0


def test_complexity_counts_listed_requirements_in_the_prose_only() -> None:
    ask = ("Build a React <DataTable> component in TypeScript: column sorting, client-side pagination with a page "
           "size selector, sticky header, row selection with a select-all checkbox, and CSV export of the rows")
    s = complexity_signal(ask)
    assert s.delta == 1 and any(f.startswith("scope:") and f.endswith("requirements") for f in s.fired), s.fired
    # short lists and questions with a comma or two stay where they are
    assert complexity_signal("sort a list of dicts by name, then by age, in python").delta == 0
    # separators inside pasted code are not requirements
    code = "what does this do?\n" + "\n".join(f"    f(a, b, c, d, e); g({i}, x, y, z)" for i in range(8))
    assert not any(f.endswith("requirements") for f in complexity_signal(code).fired)


def test_code_evidence_finds_languages_tools_and_code_marks_but_not_everyday_words() -> None:
    assert code_evidence("django orm: WHERE a = 1 OR b = 2") == ["django", "orm"]
    assert code_evidence("give me a .gitignore for a unity project") == [".gitignore", "unity"]
    assert "`" in code_evidence("what does `yield from` do")
    assert code_evidence("how do noise cancelling headphones work") == []
    assert code_evidence("plan a 2 day team offsite in Lisbon, budget 6k") == []


def test_pasted_code_sets_a_floor_above_the_lookup_tier() -> None:
    pasted = "is this idiomatic?\n```python\nfor i in range(len(xs)):\n    print(i, xs[i])\n    total += xs[i]\n```"
    assert complexity_signal(pasted).floor == 1
    assert complexity_signal("is `for i in range(len(xs))` idiomatic python").floor == 0


def test_privacy_finds_secrets_and_pii_without_returning_them() -> None:
    assert privacy_signal("how do I sort a dict by value") == []
    assert "aws-access-key" in privacy_signal("boto3 fails with key AKIAIOSFODNN7EXAMPLE")
    assert "private-key" in privacy_signal("-----BEGIN RSA PRIVATE KEY-----\nMIIEow...")
    assert "github-token" in privacy_signal("token ghp_" + "a1B2" * 9)
    assert "password-assignment" in privacy_signal('DB_PASSWORD = "hunter2hunter2"')
    assert privacy_signal('password = os.environ["DB_PASSWORD"]') == []
    assert "pii:email" in privacy_signal("mail jane.doe@acme-corp.io about the outage")
    assert "pii:card-number" in privacy_signal("charge 4111 1111 1111 1111 again")
    found = privacy_signal("postgres://admin:s3cretpw@db.internal:5432/app")
    assert "connection-string-password" in found and all("s3cret" not in f for f in found)


def test_session_escalates_failures_and_keeps_the_task_tier() -> None:
    hist = [SessionTurn("design a sharded job queue with exactly-once delivery", "lrm")]
    s = session_signal("that didn't work, still getting the same error", hist, TIERS)
    assert s.escalate and "session:failed-attempt" in s.fired
    s = session_signal("ok commit it", hist, TIERS)
    assert not s.escalate and s.keep_tier == "lrm"
    s = session_signal("how do I write a python dataclass with a default list field", hist, TIERS)
    assert not s.escalate and s.keep_tier is None
    again = [SessionTurn("why does my go test hang on the channel receive", "srm")]
    s = session_signal("why does my go test hang on channel receive", again, TIERS)
    assert s.escalate and "session:re-asked" in s.fired
    assert session_signal("anything", [], TIERS).fired == []


# -- scoring ----------------------------------------------------------------------------------------------------------

def _blobs(seed: int = 0, k: int = 3, n: int = 30, d: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = scoring.normalise(rng.normal(size=(k, d)))
    x = scoring.normalise(np.repeat(centers, n, axis=0) + 0.25 * rng.normal(size=(k * n, d)))
    y = np.repeat(np.arange(k), n)
    far = scoring.normalise(rng.normal(size=(20, d)))
    return x.astype(np.float32), y, far.astype(np.float32)


def test_route_model_classifies_and_rejects_far_points() -> None:
    x, y, far = _blobs()
    model = scoring.fit_route_model(x, y, ["a", "b", "c"], neg=far[:10])
    probs, feats = scoring.route_scores(x, model.w, model.b, model.cents, model.has_reject)
    assert (probs.argmax(1) == y).mean() > 0.95
    accepted = scoring.apply_threshold(probs.argmax(1), model.acceptor.score(feats), model.threshold)
    assert (accepted == y).mean() > 0.9
    d = scoring.decide(model, x[0])
    assert d["route"] == 0 and 0 <= d["confidence"] <= 1 and d["margin"] > 0 and d["runner_up"] in (1, 2)
    assert scoring.decide(model, x[0], blocked=[0])["best"] != 0


def test_retrain_learns_labelled_rows_and_calibrates_out_of_fold() -> None:
    """Labelled rows of a region the registry never saw (here: one cluster labelled out of scope) are learned as the
    reject class; `trainable` keeps in-scope labelled rows out of training (the routes stay as given)."""
    x, y, far = _blobs(k=4)
    reg = scoring.Labelled(x[y < 3], y[y < 3], [f"r{i}" for i in range(int((y < 3).sum()))])
    region = x[y == 3]  # an unseen cluster the user labels "none"
    lab_x = np.vstack([x[y < 3][::3], region[:20]])
    lab_y = np.concatenate([y[y < 3][::3], np.full(20, -1)])
    labelled = scoring.Labelled(lab_x, lab_y, [f"l{i}" for i in range(len(lab_y))])
    before = scoring.fit_route_model(reg.x, reg.y, ["a", "b", "c"], texts=reg.texts)
    model, comp, labels = scoring.retrain_route_model(reg, labelled, ["a", "b", "c"], c=10.0, lexical_c=1.0)
    assert model.has_reject and len(labels) == len(lab_y) and comp.logits.shape == (len(lab_y), 4)

    def routed(m: scoring.RouteModel, pts: np.ndarray, texts: list[str]) -> np.ndarray:
        probs, feats = scoring.model_scores(m, pts, texts)
        return scoring.apply_threshold(probs.argmax(1), m.acceptor.score(feats), m.threshold)

    unseen = region[20:]  # same region, rows not in the labelled file
    names = [f"u{i}" for i in range(len(unseen))]
    assert (routed(model, unseen, names) == -1).mean() > (routed(before, unseen, names) == -1).mean()
    assert (routed(model, unseen, names) == -1).mean() >= 0.9
    ins = x[y < 3][1::3]
    assert (routed(model, ins, [f"i{i}" for i in range(len(ins))]) == y[y < 3][1::3]).mean() >= 0.9
    only_oos, _, _ = scoring.retrain_route_model(reg, labelled, ["a", "b", "c"], c=10.0, lexical_c=1.0,
                                                 trainable=lab_y < 0)
    assert np.allclose(only_oos.cents, scoring.centroids(reg.x, reg.y, 3))  # in-scope labelled rows did not train
    assert not np.allclose(model.cents, only_oos.cents)


def test_fit_threshold_prefers_the_separating_value() -> None:
    pred = np.array([0, 1, 0, 1, 0, 1])
    accept = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.15])
    labels = np.array([0, 1, 0, -1, -1, -1])
    t = scoring.fit_threshold(pred, accept, labels)
    assert 0.2 < t <= 0.7
    assert scoring.balanced_accuracy(scoring.apply_threshold(pred, accept, t), labels) == 1.0


def test_topk_baseline_scores_sum_per_route() -> None:
    utt = np.eye(4, dtype=np.float32)
    s = scoring.topk_route_scores(np.array([[1, 1, 0, 0]], np.float32), utt, np.array([0, 0, 1, 1]), 2, k=2)
    assert s[0, 0] == pytest.approx(2.0) and s[0, 1] == 0


# -- lexical model and blending ---------------------------------------------------------------------------------------

def test_terms_are_words_bigrams_and_in_word_char_ngrams() -> None:
    t = terms("Fix the fix", char_ngrams=(3, 3))
    assert t["w:fix"] == 2 and t["w:the"] == 1 and t["b:fix the"] == 1 and t["b:the fix"] == 1
    assert t["c: fi"] == 2 and t["c:ix "] == 2 and "c:x t" not in t  # n-grams never cross words
    assert not any(k.startswith("c:") for k in terms("fix it", char_ngrams=None))


def test_pasted_lines_give_words_only_and_short_messages_are_unchanged() -> None:
    msg = ("why does this loop never end when the list is empty?\n"
           "while (i < items.length) { total += items[i]; }\n"
           '  File "app.py", line 3, in main')
    prose, pasted = split_pasted(msg)
    assert prose == "why does this loop never end when the list is empty?"
    assert pasted.splitlines() == ["while (i < items.length) { total += items[i]; }", '  File "app.py", line 3, in main']
    t = terms(msg, char_ngrams=(3, 3), split=True)
    assert t["w:items"] == 2 and t["w:loop"] == 1 and t["b:loop never"] == 1   # the paste keeps its words
    assert "b:items length" not in t and "c:ite" not in t and "c:loo" in t      # but no bigrams or n-grams
    assert terms(msg, (3, 3), split=False)["c:ite"] == 2
    for text in ["fix the loop\nwhile (x) {}", "all of it prose\nwith more prose here\nand a third line of it"]:
        assert split_pasted(text) == (text, "") and terms(text, split=True) == terms(text)
    assert is_prose("Could you explain what this does?") and not is_prose("x = foo(bar[1], {'a': 2})")
    assert not is_prose("    at com.acme.Billing.charge(Billing.java:42)")


def test_vectorize_gives_unit_rows_idf_weights_and_word_coverage() -> None:
    docs = [terms(s, None) for s in ["sort a list", "sort a dict", "parse a date"]]
    vocab, idf = build_vocabulary(docs, min_df=1)
    assert idf[vocab["w:a"]] < idf[vocab["w:sort"]] < idf[vocab["w:parse"]]  # rarer terms weigh more
    m, cover = vectorize([terms("sort a banana", None), terms("zzz qqq", None)], vocab, idf)
    assert np.linalg.norm(m[0].toarray()) == pytest.approx(1.0, abs=1e-6) and m[1].nnz == 0
    assert cover.tolist() == pytest.approx([2 / 3, 0.0])
    vocab2, _ = build_vocabulary(docs, min_df=2)
    assert set(vocab2) == {"w:a", "w:sort", "b:sort a"}


def test_lexical_model_learns_words_and_survives_a_save() -> None:
    texts = ["pytest fixture for the parser", "jest test for the reducer", "pytest parametrize the case",
             "dockerfile for the app", "docker compose file", "dockerfile multi stage build"]
    y = np.array([0, 0, 0, 1, 1, 1])
    lex = fit_lexical(texts, y, 2, c=10.0)
    z, cover = lex.logits(["write a pytest test", "a dockerfile please"])
    assert z.argmax(1).tolist() == [0, 1] and (cover > 0).all()
    one, one_cover = lex.logits(["a dockerfile please"])  # the single-query fast path agrees with the batch path
    assert np.allclose(one, z[1:], atol=1e-5) and one_cover[0] == cover[1]
    assert lex.logits(["zzz"])[0].shape == (1, 2)
    back = LexicalModel.from_arrays(lex.to_arrays())
    assert np.allclose(back.logits(["write a pytest test"])[0], z[:1]) and back.char_ngrams == lex.char_ngrams
    assert back.split and not LexicalModel.from_arrays({k: v for k, v in lex.to_arrays().items()
                                                        if k != "lex_split"}).split  # models saved before the split


def test_blend_is_the_embedding_model_at_alpha_zero_and_choose_alpha_uses_the_better_model() -> None:
    le = scoring.log_softmax(np.array([[2.0, 0.0], [0.0, 2.0]]))
    ll = scoring.log_softmax(np.array([[0.0, 3.0], [0.0, 3.0]]))
    assert np.array_equal(scoring.blend_log_probs(le, ll, 0.0), le)
    assert np.array_equal(scoring.blend_log_probs(le, None, 0.7), le)
    assert scoring.blend_log_probs(le, ll, 0.9)[0].argmax() == 1
    comp = scoring.Components(np.array([[2.0, 0.0], [0.0, 2.0]]), np.zeros((2, 2)), ll, np.ones(2))
    assert scoring.choose_alpha(comp, np.array([0, 1]), 2) == 0.0   # embeddings right on both, lexical on one
    assert scoring.choose_alpha(comp, np.array([1, 1]), 2) > 0.0    # only the lexical model gets row 0
    assert scoring.choose_alpha(scoring.Components(comp.logits, comp.cos, None, np.ones(2)), np.array([1, 1]), 2) == 0


def test_route_model_blends_in_the_lexical_model_when_embeddings_do_not_separate() -> None:
    rng = np.random.default_rng(0)
    words = [["pytest", "fixture", "unittest", "mock"], ["docker", "kubernetes", "helm", "terraform"],
             ["docstring", "readme", "changelog", "comment"]]
    texts = [f"please {rng.choice(ws)} {rng.choice(ws)} thing {i}" for ws in words for i in range(20)]
    y = np.repeat(np.arange(3), 20)
    x = scoring.normalise(rng.normal(size=(60, 16))).astype(np.float32)  # embeddings carry no signal
    model = scoring.fit_route_model(x, y, ["tests", "ops", "docs"], texts=texts, c=1.0)
    assert model.lex is not None and model.alpha > 0
    q = scoring.normalise(rng.normal(size=(1, 16)))[0].astype(np.float32)
    assert scoring.decide(model, q, text="a helm chart and terraform")["best"] == 1
    with pytest.raises(ValueError, match="query text"):
        scoring.decide(model, q)
    probs, feats = scoring.model_scores(model, x, texts)
    assert (probs.argmax(1) == y).mean() > 0.9 and feats.shape == (60, len(scoring.FEATURES))


def test_knn_vote_follows_the_nearest_utterances_and_choose_blend_can_pick_it() -> None:
    utt = np.eye(3, dtype=np.float32)
    utt_y = np.array([0, 1, 1])
    lp = scoring.knn_log_probs(np.array([[0.1, 0.9, 0.2]], np.float32), utt, utt_y, 3, k=2)
    assert lp[0].argmax() == 1 and np.exp(lp).sum() == pytest.approx(1.0) and np.isfinite(lp).all()
    comp = scoring.Components(np.array([[2.0, 0.0], [0.0, 2.0]]), np.zeros((2, 2)), None, np.ones(2),
                              scoring.log_softmax(np.array([[0.0, 4.0], [0.0, 4.0]])))
    assert scoring.choose_blend(comp, np.array([0, 1]), 2) == (0.0, 0.0)
    a, b = scoring.choose_blend(comp, np.array([1, 1]), 2)
    assert a == 0.0 and b > 0.0  # no lexical part: only the vote can fix row 0


def test_route_model_keeps_the_knn_vote_only_when_it_helps() -> None:
    x, y, far = _blobs()
    model = scoring.fit_route_model(x, y, ["a", "b", "c"], neg=far[:10], knn=True)
    assert (model.beta == 0) == (model.utt is None)
    plain = scoring.fit_route_model(x, y, ["a", "b", "c"], neg=far[:10])  # off by default (query-time cost)
    assert plain.utt is None and plain.beta == 0


# -- feedback kNN -----------------------------------------------------------------------------------------------------

def test_feedback_knn_moves_tiers_with_enough_similar_outcomes() -> None:
    assert need_from_outcome(1, "too_weak", 4) == 2 and need_from_outcome(0, "overkill", 4) == 0
    with pytest.raises(UserError):
        need_from_outcome(1, "meh", 4)
    sims = np.array([0.95, 0.93, 0.9, 0.2])
    assert knn_tier_shift(sims, np.array([2, 2, 2, 0]), current=1)[0] == 1
    assert knn_tier_shift(sims, np.array([0, 0, 0, 3]), current=2)[0] == -1
    assert knn_tier_shift(np.array([0.95, 0.3]), np.array([3, 3]), current=1)[0] == 0  # one close neighbour is not enough


# -- labelled files ---------------------------------------------------------------------------------------------------

def test_load_labelled_jsonl_and_csv(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"query": "q1", "route": "debugging", "tier": "srm"}) + "\n\n"
                 + json.dumps({"text": "q2", "intent": "none"}) + "\n")
    rows = load_labelled(p)
    assert [(r.query, r.route, r.tier) for r in rows] == [("q1", "debugging", "srm"), ("q2", None, None)]
    c = tmp_path / "d.csv"
    c.write_text("query,route,tier\nhello,none,srm\nfix it,debugging,srm\n")
    assert [r.route for r in load_labelled(c)] == [None, "debugging"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x"}\n{not json}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2"):
        load_labelled(bad)

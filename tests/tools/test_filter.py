"""Pure scoring: tokens, BM25F, fusion, pins, allow/deny lists and the no-tool outcome (arrays only, no model)."""

from __future__ import annotations

import numpy as np

from tools.filter import (
    FilterWeights,
    build_keyword_index,
    dense_scores,
    filter_scores,
    fuse,
    keyword_scores,
    query_terms,
    tokenize,
)

DOCS = [
    {"name": "git commit", "server": "git", "description": "Records changes to the repository", "params": "message"},
    {"name": "git add", "server": "git", "description": "Adds file contents to the staging area", "params": "files"},
    {"name": "read file", "server": "filesystem", "description": "Read a text file", "params": "path"},
    {"name": "get weather", "server": "weather", "description": "Forecast for a city", "params": "city"},
]
KEYS = ["git/git_commit", "git/git_add", "filesystem/read_file", "weather/get_weather"]
NAMES = [k.split("/")[1] for k in KEYS]
TOKENS = np.array([100, 80, 60, 50])


def run(dense: list[float], query: str = "commit", **kw):
    index = build_keyword_index(DOCS)
    terms = query_terms(query)
    lex, _ = keyword_scores(index, terms)
    return filter_scores(np.array(dense, dtype=np.float32), lex, keys=KEYS, names=NAMES, tokens=TOKENS, terms=terms,
                         keyword_index=index, **kw)


def test_tokenize_splits_identifiers_stems_and_drops_stopwords() -> None:
    assert tokenize("Stage the staged files in readFile") == ["stag", "stag", "fil", "read", "fil"]


def test_bm25f_prefers_name_matches_and_ignores_unknown_words() -> None:
    index = build_keyword_index(DOCS)
    scores, ceiling = keyword_scores(index, query_terms("stage files for the commit"))
    assert scores.argmax() == 0 or scores.argmax() == 1
    assert scores[3] == 0.0 and ceiling > scores.max()
    none, _ = keyword_scores(index, query_terms("zzzz qqqq"))
    assert not none.any()


def test_fusion_adds_relative_keyword_share_to_the_dense_score() -> None:
    fused = fuse(np.array([0.5, 0.5], dtype=np.float32), np.array([4.0, 0.0], dtype=np.float32), 0.25)
    assert np.allclose(fused, [0.75, 0.5])
    assert np.allclose(fuse(np.array([0.3]), np.array([0.0]), 0.25), [0.3])


def test_dense_scores_blocks_match_one_matvec() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((1000, 16)).astype(np.float32)
    q = rng.standard_normal(16).astype(np.float32)
    assert np.allclose(dense_scores(v, q, block=64), v @ q, atol=1e-5)


def test_top_k_ranked_with_reasons_and_token_accounting() -> None:
    out = run([0.7, 0.5, 0.2, 0.1], "commit my changes", k=2)
    assert [t.index for t in out.tools] == [0, 1]
    assert not out.no_tool_needed and out.best_score > 0.7
    assert "name: commit" in out.tools[0].reason and "similarity 0.70" in out.tools[0].reason
    assert out.catalogue_tokens == 290 and out.returned_tokens == 180 and out.tokens_saved == 110


def test_no_tool_needed_when_nothing_clears_the_bar_but_pins_stay() -> None:
    out = run([0.2, 0.1, 0.1, 0.1], "thanks a lot", k=3, pinned=["filesystem/*"])
    assert out.no_tool_needed
    assert [(t.index, t.pinned) for t in out.tools] == [(2, True)]
    assert "no tool scored above the bar" in out.notes[0]
    lower = run([0.2, 0.1, 0.1, 0.1], "thanks a lot", k=3, min_score=0.15)
    assert not lower.no_tool_needed and lower.tools[0].index == 0


def test_allow_and_deny_lists_and_pins_do_not_count_against_k() -> None:
    out = run([0.9, 0.8, 0.7, 0.6], k=1, deny=["git_commit"])
    assert [t.index for t in out.tools] == [1]
    out = run([0.9, 0.8, 0.7, 0.6], k=5, allow=["filesystem/*", "weather/*"])
    assert sorted(t.index for t in out.tools) == [2, 3] and out.considered_tools == 2
    out = run([0.9, 0.8, 0.7, 0.6], k=1, pinned=["get_weather"])
    assert [(t.index, t.pinned) for t in out.tools] == [(3, True), (0, False)]
    out = run([0.9, 0.8, 0.7, 0.6], k=3, pinned=["get_weather"], deny=["weather/*"])
    assert all(t.index != 3 for t in out.tools)
    out = run([0.9, 0.8, 0.7, 0.6], k=3, allow=["nothing/*"])
    assert out.tools == [] and out.no_tool_needed


def test_default_weights_are_documented_values() -> None:
    w = FilterWeights()
    assert 0 < w.lex < 1 and 0 < w.min_score < 1 and 0 < w.context_weight < 1


def test_abbreviations_expand_and_reasons_show_the_users_words() -> None:
    from tools.filter import expand_abbreviations

    assert expand_abbreviations("open a PR in this repo") == \
        "open a pull request (PR) in this repository (repo)"
    assert expand_abbreviations("improve the prose") == "improve the prose"
    out = run([0.3, 0.6, 0.1, 0.1], "stage the files", k=1, query_text="stage the files")
    assert "staging" not in out.tools[0].reason and "stage" in out.tools[0].reason


def test_value_types_add_the_type_word_a_tool_definition_uses() -> None:
    from tools.filter import value_types

    assert value_types("weather in Paris on 12 March at 5pm") == ["date", "time"]
    assert value_types("book a table for 2024-05-01") == ["date"]
    assert value_types("list the open pull requests") == []
    terms = query_terms("forecast for tomorrow")
    assert "dat" in terms or "date" in terms  # the stem of the added type word


def test_enum_values_are_a_separate_lower_weight_keyword_field() -> None:
    from tools.catalog import ToolDef
    from tools.filter import FIELD_WEIGHTS, explain
    from tools.index import enum_values, keyword_fields

    params = {"type": "object", "properties": {
        "genre": {"type": "string", "enum": ["Comedy", "Thriller", "Drama"]},
        "units": {"type": "array", "items": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "verbose": {"type": "boolean", "enum": [True, False]},
    }}
    movies = ToolDef("cinema", "find_movies", "Search films showing in a city", params, {"name": "find_movies"})
    plain = ToolDef("cinema", "find_theaters", "Search cinemas in a city", {"type": "object", "properties": {}},
                    {"name": "find_theaters"})
    assert enum_values(movies) == ["Comedy", "Thriller", "Drama", "celsius", "fahrenheit"]
    docs = [keyword_fields(movies), keyword_fields(plain)]
    assert docs[1]["values"] == "" and 0 < FIELD_WEIGHTS["values"] < FIELD_WEIGHTS["params"]
    index = build_keyword_index(docs)
    terms = query_terms("a comedy in berlin tonight")
    scores, _ = keyword_scores(index, terms)
    assert scores[0] > scores[1] == 0.0
    assert "values: comedy" in explain(0, terms, index, 0.5, words={"comedi": "comedy"}).lower()

"""Search over a real index of the language fixtures: identifier queries, filters, size budget, pagination,
and the pure fusion/budget functions."""

from __future__ import annotations


import numpy as np
import pytest

from indexer.errors import UserError
from indexer.search import SearchHit, Weights, apply_budget, fuse_scores, identifier_symbol, is_identifier_query
from mcp_router import codeindex
from mcp_router.app import App


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, encoder) -> App:
    import shutil

    from tests.conftest import FIXTURES, make_git_repo

    root = make_git_repo(tmp_path_factory.mktemp("search") / "repo")
    shutil.copytree(FIXTURES / "languages", root / "src")
    app = App(root)
    codeindex.reindex(app)
    return app


@pytest.mark.parametrize(
    "query, path, symbol",
    [
        ("parse_duration", "src/sample.py", "parse_duration"),
        ("Session.resolve_redirects", "src/sample.py", "Session.resolve_redirects"),
        ("resolve_redirects", "src/sample.py", "Session.resolve_redirects"),
        ("handleHealth", "src/sample.go", "Server.handleHealth"),
    ],
)
def test_identifier_query_returns_definition_first(indexed: App, query: str, path: str, symbol: str) -> None:
    res = codeindex.search_code(indexed, query, k=3, refresh=False)
    top = res.results[0]
    assert (top.path, top.symbol) == (path, symbol)
    assert top.match == "definition"


def test_natural_language_query(indexed: App) -> None:
    res = codeindex.search_code(indexed, "follow HTTP redirects and keep cookies", k=5, refresh=False)
    assert any(h.symbol.endswith("resolve_redirects") for h in res.results[:3])


def test_filters(indexed: App) -> None:
    res = codeindex.search_code(indexed, "start the server", language="go", k=5, refresh=False)
    assert res.results and all(h.language == "go" for h in res.results)
    res = codeindex.search_code(indexed, "start the server", path_glob="src/*.rs", k=5, refresh=False)
    assert res.results and all(h.path.endswith(".rs") for h in res.results)
    res = codeindex.search_code(indexed, "start the server", path_glob="nowhere/**", k=5, refresh=False)
    assert res.results == []


def test_pagination_has_no_overlap(indexed: App) -> None:
    first = codeindex.search_code(indexed, "class with methods", k=4, refresh=False)
    assert first.next_offset == 4
    second = codeindex.search_code(indexed, "class with methods", k=4, offset=first.next_offset, refresh=False)
    a = {(h.path, h.start_line) for h in first.results}
    b = {(h.path, h.start_line) for h in second.results}
    assert len(a) == 4 and len(b) == 4 and not a & b


def test_size_budget_truncates_visibly(indexed: App) -> None:
    res = codeindex.search_code(indexed, "class with methods", k=10, max_chars=1200, refresh=False)
    assert sum(len(h.code) for h in res.results) <= 1200
    assert 1 <= len(res.results) < 10
    assert res.next_offset == len(res.results)  # the rest stays reachable by pagination
    full = codeindex.search_code(indexed, "Session.resolve_redirects", k=1, refresh=False).results[0]
    assert len(full.code) > 400 and not full.truncated
    cut = codeindex.search_code(indexed, "Session.resolve_redirects", k=1, max_chars=400, refresh=False).results[0]
    assert cut.truncated and len(cut.code) < len(full.code)
    assert "truncated" in cut.code and "read src/sample.py:" in cut.code


def test_modes_and_bad_arguments(indexed: App) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        assert codeindex.search_code(indexed, "parse a duration string", mode=mode, refresh=False).results
    with pytest.raises(UserError, match="query is empty"):
        codeindex.search_code(indexed, "   ", refresh=False)
    with pytest.raises(UserError, match="unknown search mode"):
        codeindex.search_code(indexed, "x", mode="magic", refresh=False)
    with pytest.raises(UserError, match="k must be"):
        codeindex.search_code(indexed, "x", k=0, refresh=False)


def test_freshness_sees_a_save_immediately(indexed: App) -> None:
    f = indexed.root / "src" / "fresh_module.py"
    f.write_text("def compute_invoice_total(lines):\n    return sum(l.amount for l in lines)\n")
    try:
        res = codeindex.search_code(indexed, "compute_invoice_total", k=1)
        assert res.results[0].path == "src/fresh_module.py"
        assert "refreshed 1 changed file" in res.freshness
        f.write_text("def compute_invoice_total(lines):\n    return round(sum(l.amount for l in lines), 2)\n")
        res = codeindex.search_code(indexed, "compute_invoice_total", k=1)
        assert "round(" in res.results[0].code
    finally:
        f.unlink()
        res = codeindex.search_code(indexed, "compute_invoice_total", k=3)
        assert all(h.path != "src/fresh_module.py" for h in res.results)


def test_identifier_detection() -> None:
    assert is_identifier_query("parse_duration")
    assert is_identifier_query("Session.send")
    assert is_identifier_query("`Foo::bar()`")
    assert not is_identifier_query("parse a duration")
    assert identifier_symbol("Foo::bar()") == "foo.bar"


def test_fusion_is_score_based() -> None:
    cos = np.array([0.60, 0.57, 0.20], dtype=np.float32)
    bm = np.array([0.0, 10.0, 20.0], dtype=np.float32)
    defs = np.zeros(3, dtype=np.float32)
    hybrid = fuse_scores(cos, bm, defs, Weights(bm25=0.1), "hybrid")
    # A strong keyword match lifts a close dense candidate, but cannot carry a dense miss past both.
    assert list(np.argsort(-hybrid)) == [1, 0, 2]
    assert list(np.argsort(-fuse_scores(cos, bm, defs, Weights(), "dense"))) == [0, 1, 2]
    assert np.argmax(fuse_scores(cos, bm, np.array([0, 0, 1.0], dtype=np.float32), Weights(), "hybrid")) == 2


def test_budget_keeps_at_least_one_hit() -> None:
    hit = SearchHit(path="a.py", start_line=1, end_line=400, symbol="f", kind="function", language="python",
                    score=1.0, code="\n".join(f"line {i}" for i in range(400)))
    out = apply_budget([hit], 500)
    assert len(out) == 1 and out[0].truncated and len(out[0].code) < 700


def test_identifier_inside_a_merged_chunk_counts_as_definition(indexed: App) -> None:
    # Tiny adjacent definitions share a chunk whose symbol lists them all ("is_secure, host_of, ...").
    res = codeindex.search_code(indexed, "host_of", k=3, refresh=False)
    top = res.results[0]
    assert top.path == "src/sample.py" and "host_of" in top.symbol.split(", ")
    assert top.match == "definition"

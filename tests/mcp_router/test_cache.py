"""`AnswerCache` end to end: real encoder, real LanceDB and SQLite on disk, real files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from indexer.errors import UserError
from mcp_router.app import App
from mcp_router.cache import AnswerCache, CacheSettings, invalidate_paths

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """Deterministic time for TTL and LRU (no sleeping, no timed assertions)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def cache(repo: Path, encoder) -> AnswerCache:  # noqa: ANN001 - session fixture from conftest
    return AnswerCache(App(repo), encoder=encoder)


def test_exact_then_semantic_hit_and_guard_refusal(cache: AnswerCache) -> None:
    stored = cache.store("how do I sort an array in JavaScript", "Use arr.sort((a, b) => a - b).")
    assert stored.stored and stored.entry_id

    exact = cache.lookup("How do I sort an array in JavaScript?")
    assert (exact.hit, exact.reason, exact.entry_id) == (True, "exact", stored.entry_id)

    semantic = cache.lookup("JavaScript array sorting")
    assert semantic.hit and semantic.reason == "semantic"
    assert semantic.answer == "Use arr.sort((a, b) => a - b)."
    assert 0.0 <= semantic.similarity <= 1.0

    cache.store("convert string to int in Go", "strconv.Atoi(s)")
    refused = cache.lookup("convert int to string in Go")
    assert not refused.hit
    assert refused.reason == "guard" and refused.refused_rule == "order"
    assert refused.refused_token == "string to int"

    far = cache.lookup("how do I configure nginx as a reverse proxy")
    assert not far.hit and far.reason == "below_threshold"


def test_partitions_never_cross(cache: AnswerCache) -> None:
    q = "how does the retry logic in client.py work"
    cache.store(q, "answer for alice", user="alice", tier="large")
    assert cache.lookup(q, user="alice", tier="large").answer == "answer for alice"
    for kwargs in ({"user": "bob", "tier": "large"}, {"user": "alice", "tier": "small"},
                   {"user": "alice", "tier": "large", "system_prompt": "You are terse."}):
        res = cache.lookup(q, **kwargs)
        assert not res.hit and res.reason == "empty", kwargs
    cache.store(q, "answer for bob", user="bob", tier="large")
    assert cache.lookup(q, user="alice", tier="large").answer == "answer for alice"
    assert cache.lookup(q, user="bob", tier="large").answer == "answer for bob"


def test_users_share_only_when_configured(repo: Path, encoder) -> None:  # noqa: ANN001
    shared = AnswerCache(App(repo), CacheSettings(share_across_users=True), encoder=encoder)
    shared.store("what does parse_args in utils.py return", "argv without the program name", user="alice")
    assert shared.lookup("what does parse_args in utils.py return", user="bob").hit


def test_changed_dependency_misses_on_lookup_and_is_evicted(cache: AnswerCache, repo: Path) -> None:
    res = cache.store("what does parse_args in utils.py return", "argv without the program name",
                      files=["utils.py"])
    assert [d.path for d in res.dependencies] == ["utils.py"]
    cache.store("what does retry in client.py return", "twice n", files=[str(repo / "client.py")])
    assert cache.lookup("what does parse_args in utils.py return").hit

    (repo / "utils.py").write_text("def parse_args(argv):\n    return argv\n")
    stale = cache.lookup("what does parse_args in utils.py return")
    assert (stale.hit, stale.reason, stale.stale_file) == (False, "stale", "utils.py")
    # Evicted: the next lookup does not find it at all; the other answer is untouched.
    assert cache.lookup("what does parse_args in utils.py return").reason in ("empty", "below_threshold", "guard")
    assert cache.lookup("what does retry in client.py return").hit


def test_deleted_dependency_is_stale(cache: AnswerCache, repo: Path) -> None:
    cache.store("how do we connect to the database", "src/db.py connect()", files=["src/db.py"])
    (repo / "src" / "db.py").unlink()
    res = cache.lookup("how do we connect to the database")
    assert res.reason == "stale" and res.stale_file == "src/db.py"


def test_watcher_hook_invalidates_only_changed_files(cache: AnswerCache, repo: Path) -> None:
    cache.store("what does parse_args in utils.py return", "argv[1:]", files=["utils.py"])
    cache.store("what does retry in client.py return", "n * 2", files=["client.py"])
    # Touched but unchanged: nothing is evicted.
    assert invalidate_paths(cache, ["utils.py", "client.py"]) == 0
    (repo / "utils.py").write_text("def parse_args(argv):\n    return []\n")
    assert invalidate_paths(cache.app, ["utils.py"]) == 1
    assert cache.store_.count() == 1
    assert cache.lookup("what does retry in client.py return").hit


def test_invalidate_by_folder_and_explicit_path(cache: AnswerCache) -> None:
    cache.store("how do we connect to the database", "connect()", files=["src/db.py"])
    cache.store("what does parse_args in utils.py return", "argv[1:]", files=["utils.py"])
    assert cache.invalidate(["src"]) == 1
    assert cache.invalidate(["utils.py"]) == 1
    assert cache.store_.count() == 0


def test_dependency_outside_the_repo_is_refused(cache: AnswerCache, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("x = 1\n")
    with pytest.raises(UserError, match="outside the repository"):
        cache.store("what is x", "1", files=[str(outside)])
    with pytest.raises(UserError, match="does not exist"):
        cache.store("what is y", "2", files=["missing.py"])
    assert cache.store_.count() == 0


@pytest.mark.parametrize(
    "answer",
    [
        "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad",
        "Error: the model is overloaded, try again later",
        "ValueError: invalid literal for int() with base 10",
        "error: could not reach the API",
    ],
)
def test_error_answers_are_never_cached(cache: AnswerCache, answer: str) -> None:
    res = cache.store("how do I parse an int in Python", answer)
    assert not res.stored and "error" in res.reason
    assert cache.store_.count() == 0
    assert cache.stats().refused_stores["error"] == 1


def test_explicit_error_flag_and_explanations_of_errors(cache: AnswerCache) -> None:
    assert not cache.store("q1 about retries", "fine text", is_error=True).stored
    # An answer that explains an error message is a real answer.
    ok = cache.store("what does ValueError: invalid literal mean",
                     "It means int() got text that is not a number. A traceback shows where: ...")
    assert ok.stored


def test_answer_over_the_size_limit_is_refused(repo: Path, encoder) -> None:  # noqa: ANN001
    cache = AnswerCache(App(repo), CacheSettings(max_answer_chars=100), encoder=encoder)
    with pytest.raises(UserError, match="over the cache limit of 100"):
        cache.store("explain the code base", "x" * 101)
    assert cache.store("explain utils", "x" * 100).stored


def test_ttl_expiry(repo: Path, encoder) -> None:  # noqa: ANN001
    clock = FakeClock()
    cache = AnswerCache(App(repo), CacheSettings(ttl_seconds=100), encoder=encoder, clock=clock)
    cache.store("how do I reverse a list in Python", "reversed(xs)")
    assert cache.lookup("how do I reverse a list in Python").hit
    clock.now += 101
    res = cache.lookup("how do I reverse a list in Python")
    assert (res.hit, res.reason) == (False, "expired")
    assert cache.store_.count() == 0


def test_lru_eviction_keeps_recently_hit_entries(repo: Path, encoder) -> None:  # noqa: ANN001
    clock = FakeClock()
    cache = AnswerCache(App(repo), CacheSettings(max_entries=3), encoder=encoder, clock=clock)
    questions = ["how do I reverse a list in Python", "how to center a div with CSS",
                 "how do I delete a remote branch in git"]
    for q in questions:
        cache.store(q, f"answer: {q}")
    assert cache.lookup(questions[0]).hit  # the oldest entry becomes the most recently used
    res = cache.store("how to create a virtual environment", "python -m venv .venv")
    assert res.evicted == 1
    assert cache.lookup(questions[0]).hit
    assert not cache.lookup(questions[1]).hit  # least recently used: gone
    assert cache.lookup(questions[2]).hit
    assert cache.store_.count() == 3


def test_restoring_a_question_replaces_the_old_answer(cache: AnswerCache) -> None:
    cache.store("how do I reverse a list in Python", "old answer")
    cache.store("How do I reverse a list in Python?", "new answer")
    assert cache.store_.count() == 1
    assert cache.lookup("how do I reverse a list in python").answer == "new answer"


def test_stats_count_hits_misses_and_savings(cache: AnswerCache) -> None:
    cache.store("how do I reverse a list in Python", "x" * 400)
    cache.lookup("how do I reverse a list in Python")
    cache.lookup("reverse a python list")
    cache.lookup("how do I configure nginx as a reverse proxy")
    s = cache.stats()
    assert (s.entries, s.lookups, s.hits, s.hits_exact) == (1, 3, 2, 1)
    assert sum(s.misses.values()) == 1
    assert s.hit_rate == pytest.approx(2 / 3, abs=1e-3)
    assert s.tokens_saved == 200 and s.cost_saved_usd > 0
    assert cache.clear() == 1
    assert cache.stats().lookups == 0


def test_bad_settings_are_user_errors(repo: Path) -> None:
    with pytest.raises(UserError, match="threshold"):
        CacheSettings.from_config({"threshold": 1.5})
    with pytest.raises(UserError, match="unknown cache setting"):
        CacheSettings.from_config({"treshold": 0.9})
    assert CacheSettings.from_config({"max-entries": 5}).max_entries == 5


WRITER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from mcp_router.app import App
    from mcp_router.cache import AnswerCache
    cache = AnswerCache(App(Path(sys.argv[1])))
    tag = sys.argv[2]
    ids = []
    for i in range(int(sys.argv[3])):
        q = f"question {{i}} from writer {{tag}} about module_{{tag}}_{{i}}.py"
        ids.append(cache.store(q, f"answer {{i}} {{tag}}").entry_id)
        res = cache.lookup(q)
        assert res.hit and res.answer == f"answer {{i}} {{tag}}", res
    print(json.dumps(ids))
    """
)


def test_two_concurrent_writer_processes_lose_nothing(repo: Path, encoder) -> None:  # noqa: ANN001
    n = 12
    script = WRITER.format(repo=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(repo), tag, str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    ids = [i for out, _ in outs for i in json.loads(out.strip().splitlines()[-1])]
    cache = AnswerCache(App(repo), encoder=encoder)
    assert cache.store_.count() == 2 * n
    assert {r["id"] for r in cache.store_.scan(["id"])} == set(ids)
    for tag in ("a", "b"):
        for i in range(n):
            res = cache.lookup(f"question {i} from writer {tag} about module_{tag}_{i}.py")
            assert res.hit and res.answer == f"answer {i} {tag}"
    # Counters from both processes survived: 2n stores, 2n lookups there + 2n here.
    s = cache.stats()
    assert s.stores == 2 * n and s.lookups == 4 * n and s.hits == 4 * n

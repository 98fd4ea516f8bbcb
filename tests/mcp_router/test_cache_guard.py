"""The verification guard: pure functions, no model, no disk."""

from __future__ import annotations

import pytest

from mcp_router.cache.guard import check_pair, normalize_query, technologies


@pytest.mark.parametrize(
    ("a", "b", "rule", "token"),
    [
        # programming language, framework or library
        ("how do I sort an array in JavaScript", "how do I sort a list in Python", "language", "javascript"),
        ("how to create a component in React", "how to create a component in Vue", "language", "react"),
        ("select rows by condition in pandas", "select rows by condition in polars", "language", "pandas"),
        ("how to define a struct in Go", "how to define a struct in Rust", "language", "go"),
        # identifiers and code spans
        ("what does `get_user` in auth.py return", "what does `get_users` in auth.py return", "identifier", "get_user"),
        ("what does the `parseArgs` function do", "what does the `parseOptions` function do", "identifier",
         "parseArgs"),
        ("explain what utils.py does", "explain what helpers.py does", "identifier", "utils.py"),
        # flags
        ("what does --max-heads do", "what does --max-cost do", "flag", "--max-heads"),
        ("what does `rm -r` do", "what does `rm -f` do", "flag", "-r"),
        # numbers and versions
        ("how do I install numpy 1.26", "how do I install numpy 2.0", "number", "1.26"),
        ("round a float to 2 decimal places", "round a float to three decimal places", "number", "2"),
        # negation
        ("how to check if a list is empty", "how to check if a list is not empty", "negation", "not"),
        ("run a Docker container as root", "run a Docker container without root", "negation", "without"),
        # direction and antonym pairs
        ("how to read a file in Python", "how to write a file in Python", "antonym", "read/write"),
        ("add an element to a set", "remove an element from a set", "antonym", "add/remove"),
        ("how to enable logging", "how to disable logging", "antonym", "enable/disable"),
        ("find the max value in a list", "find the min value in a list", "antonym", "min/max"),
        ("get the first element of an array", "get the last element of an array", "antonym", "first/last"),
        ("sort a table in ascending order", "sort a table in descending order", "antonym", "ascending/descending"),
        ("make a shallow copy of a dict", "make a deep copy of a dict", "antonym", "shallow/deep"),
        # order reversal
        ("convert int to string in Go", "convert string to int in Go", "order", "int to string"),
        ("convert a list of tuples to a dict", "convert a dict to a list of tuples", "order", "list to dict"),
        ("migrate from MySQL to PostgreSQL", "migrate from PostgreSQL to MySQL", "order", "mysql to postgresql"),
        # entities present on both sides but different
        ("What is the capital of France?", "What is the capital of Germany?", "entity", "france"),
    ],
)
def test_guard_refuses_and_names_the_token(a: str, b: str, rule: str, token: str) -> None:
    verdict = check_pair(a, b)
    assert not verdict.allowed
    assert verdict.rule == rule
    assert verdict.token == token
    # The guard is symmetric in what it refuses.
    assert not check_pair(b, a).allowed


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("how do I sort an array in JavaScript", "JavaScript array sorting"),
        ("how to convert a string to an int in Go", "Go: convert string to int"),
        ("convert a list to a set in Python", "python turn a list into a set"),
        ("how do I install a package with pip", "install a python package using pip"),
        ("how do I use async await in JavaScript", "using async/await in javascript"),
        ("why does `load_config` raise UserError", "why is load_config raising a UserError"),
        ("how do I upgrade to numpy 2.0", "upgrading numpy to version 2"),
        ("iPhone 6 battery life", "iphone 6 battery life tips"),
        ("Why is Donald Trump so popular?", "Why do people like Trump?"),
        ("how to go back to a previous commit in git", "git revert to previous commit"),
    ],
)
def test_guard_allows_paraphrases(a: str, b: str) -> None:
    verdict = check_pair(a, b)
    assert verdict.allowed, verdict


def test_language_words_need_a_code_context() -> None:
    assert technologies("how do I go back to the previous commit") == set()
    assert technologies("sort a slice in go") == {"go"}
    assert technologies("pointer arithmetic in C") == {"c"}
    assert technologies("install it with pip") == {"pip", "python"}


def test_normalize_query_ignores_case_space_and_trailing_punctuation() -> None:
    assert normalize_query("  How do I  sort an array?? ") == normalize_query("how do i sort an array")
    assert normalize_query("sort `a`") != normalize_query("sort `b`")



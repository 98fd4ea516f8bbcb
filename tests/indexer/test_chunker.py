"""The AST chunker on real parses of the language fixtures: coverage, no duplication, names, split and merge."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from indexer.chunker import DEFAULT_MAX_CHARS, WINDOW_LINES, chunk_file, split_symbols
from indexer.languages import AST_LANGUAGES, LANGUAGES, language_for_path, language_from_shebang
from indexer.models import Chunk, FileChunks

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "languages"

REQUIRED_AST = {
    "sample.py": "python",
    "sample.js": "javascript",
    "sample.ts": "typescript",
    "sample.tsx": "tsx",
    "sample.go": "go",
    "sample.rs": "rust",
    "sample.java": "java",
    "sample.c": "c",
    "sample.cpp": "cpp",
    "sample.cs": "csharp",
    "sample.rb": "ruby",
    "sample.php": "php",
    "sample.kt": "kotlin",
    "sample.swift": "swift",
    "sample.scala": "scala",
    "sample.sh": "bash",
    "sample.lua": "lua",
}
ALL_FIXTURES = sorted(p.name for p in FIXTURES.iterdir())

# Definitions every fixture must expose by qualified name once units are split (budget 300 forces every class
# apart). Tuples are (symbol, kind, parent).
EXPECTED_SYMBOLS: dict[str, list[tuple[str, str, str]]] = {
    "sample.py": [
        ("parse_duration", "function", ""),
        ("Session", "class", ""),
        ("Session.resolve_redirects", "method", "Session"),
        ("Session.__init__", "method", "Session"),
    ],
    "sample.js": [
        ("TokenBucket.take", "method", "TokenBucket"),
        ("clientKey", "function", ""),
        ("retryAfter", "function", ""),  # const retryAfter = (bucket) => ...
        ("rateLimit", "function", ""),
    ],
    "sample.ts": [
        ("JobQueue.drain", "method", "JobQueue"),
        ("JobQueue.runOne", "method", "JobQueue"),
        ("backoffDelay", "function", ""),
        ("isTerminal", "function", ""),
    ],
    "sample.tsx": [("useDebounced", "function", ""), ("highlight", "function", ""), ("SearchBox", "function", "")],
    "sample.go": [
        ("NewServer", "function", ""),
        ("Server.Start", "method", "Server"),
        ("Server.SetReady", "method", "Server"),
        ("Server.handleHealth", "method", "Server"),
    ],
    "sample.rs": [
        ("LruCache.get", "method", "LruCache"),
        ("LruCache.insert", "method", "LruCache"),
        ("LruCache.evict", "method", "LruCache"),
        ("hit_ratio", "function", ""),
    ],
    "sample.java": [
        ("InventoryService", "class", ""),
        ("InventoryService.receive", "method", "InventoryService"),
        ("InventoryService.lowStock", "method", "InventoryService"),
    ],
    "sample.c": [("ring_push", "function", ""), ("ring_read", "function", "")],
    "sample.cpp": [
        ("Counter", "class", ""),
        ("Registry.counter", "method", "Registry"),  # out-of-line Registry::counter
        ("Registry.snapshot", "method", "Registry"),
    ],
    "sample.cs": [
        ("InvoiceCalculator.TotalWithTax", "method", "InvoiceCalculator"),
        ("InvoiceCalculator.AddItem", "method", "InvoiceCalculator"),
        ("InvoiceFormatting", "class", ""),
    ],
    "sample.rb": [
        ("Flags.Store.enabled?", "method", "Flags.Store"),
        ("Flags.Store.load!", "method", "Flags.Store"),
        ("Flags.store", "method", "Flags"),
    ],
    "sample.php": [
        ("LoginService.attempt", "method", "LoginService"),
        ("LoginService.findUser", "method", "LoginService"),
        ("hash_password", "function", ""),
    ],
    "sample.kt": [
        ("NoteRepository.sync", "method", "NoteRepository"),
        ("NoteRepository.save", "method", "NoteRepository"),
    ],
    "sample.swift": [
        ("DownloadManager.start", "method", "DownloadManager"),
        ("DownloadManager.finish", "method", "DownloadManager"),
        ("humanSize", "function", ""),
    ],
    "sample.scala": [("Sessionizer.accept", "method", "Sessionizer"), ("Sessionizer.flush", "method", "Sessionizer")],
    "sample.sh": [("dump_database", "function", ""), ("upload", "function", ""), ("main", "function", "")],
    "sample.lua": [("Inventory.add", "method", "Inventory"), ("Inventory.new", "method", "Inventory")],
}


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def nonws(text: str) -> int:
    return len("".join(text.split()))


def assert_sound(text: str, fc: FileChunks) -> None:
    """Chunks are in order, disjoint, exact copies of their lines, and cover every non-blank line."""
    lines = text.split("\n")
    covered: set[int] = set()
    previous_end = 0
    for chunk in fc.chunks:
        assert chunk.path == fc.path and chunk.language == fc.language
        assert previous_end < chunk.start_line <= chunk.end_line <= len(lines), (chunk.start_line, chunk.end_line)
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert chunk.text.strip(), "empty chunk"
        covered.update(range(chunk.start_line, chunk.end_line + 1))
        previous_end = chunk.end_line
    dropped = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert not dropped, f"non-blank lines in no chunk: {dropped[:10]}"


def by_symbol(fc: FileChunks) -> dict[str, Chunk]:
    """Each definition name -> the chunk that carries it (merged chunks carry several)."""
    out: dict[str, Chunk] = {}
    for chunk in fc.chunks:
        for name in split_symbols(chunk.symbol):
            out.setdefault(name, chunk)
    return out


# --- every fixture ---------------------------------------------------------------------------------------------------


def test_fixtures_cover_every_required_language() -> None:
    assert set(REQUIRED_AST.values()) <= set(AST_LANGUAGES)
    assert set(REQUIRED_AST) <= set(ALL_FIXTURES)
    assert {"sample.md", "sample.yaml"} <= set(ALL_FIXTURES)
    for name in REQUIRED_AST:
        assert 30 <= len(read(name).splitlines()) <= 120, name


@pytest.mark.parametrize("name", sorted(REQUIRED_AST))
def test_language_and_ast_method(name: str) -> None:
    fc = chunk_file(f"src/{name}", read(name))
    assert fc.language == REQUIRED_AST[name]
    assert fc.method == "ast"
    assert fc.path == f"src/{name}"
    assert len(fc.chunks) >= 2
    assert any(chunk.symbol for chunk in fc.chunks)


@pytest.mark.parametrize("budget", [60, 300, DEFAULT_MAX_CHARS, 100_000])
@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_chunks_cover_all_code_without_overlap(name: str, budget: int) -> None:
    text = read(name)
    fc = chunk_file(name, text, max_chars=budget)
    assert_sound(text, fc)
    if fc.method == "ast" and budget >= 300:
        # Split-then-merge keeps chunks within the budget; a closing brace or a small tail may ride along.
        assert max(nonws(c.text) for c in fc.chunks) <= budget + budget // 4 + 12


@pytest.mark.parametrize("budget", [300, DEFAULT_MAX_CHARS])
@pytest.mark.parametrize("name", sorted(EXPECTED_SYMBOLS))
def test_qualified_symbols(name: str, budget: int) -> None:
    # At the default budget too: a class that fits the budget is still split when it holds real methods, so that
    # ``LruCache.get`` or ``InventoryService.receive`` is a symbol of its own.
    fc = chunk_file(name, read(name), max_chars=budget)
    found = by_symbol(fc)
    for symbol, kind, parent in EXPECTED_SYMBOLS[name]:
        assert symbol in found, f"{symbol} not in {sorted(found)}"
        chunk = found[symbol]
        short = symbol.rsplit(".", 1)[-1]
        assert short in chunk.text
        if budget == 300:
            # Each of these definitions is over a tenth of the budget: a chunk of its own, named after it alone.
            assert chunk.symbol == symbol, chunk.symbol
            assert (chunk.kind, chunk.parent) == (kind, parent), (symbol, chunk.kind, chunk.parent)
        elif "." in symbol:
            assert chunk.parent == parent, (symbol, chunk.parent)


def test_whole_file_when_budget_is_huge() -> None:
    text = read("sample.go")
    fc = chunk_file("sample.go", text, max_chars=100_000)
    # Nothing is split, so all top-level code merges into few chunks, but the import header stays apart.
    assert len(fc.chunks) <= 3
    assert fc.chunks[0].text.startswith("// Package server")
    assert "Server.Start" in split_symbols(fc.chunks[-1].symbol)


# --- split ------------------------------------------------------------------------------------------------------------


def test_oversize_python_class_is_split_into_methods() -> None:
    text = read("sample.py")
    fc = chunk_file("pkg/sample.py", text)  # default budget
    session = [c for c in fc.chunks if c.symbol == "Session" or c.symbol.startswith("Session.")]
    assert nonws("\n".join(c.text for c in session)) > DEFAULT_MAX_CHARS, "fixture class must exceed the budget"
    assert len(session) >= 3
    header = next(c for c in session if c.symbol == "Session")
    assert header.kind == "class" and header.parent == ""
    assert header.text.startswith("class Session:")
    assert "max_redirects = 10" in header.text  # class attributes stay with the header
    assert "def " not in header.text  # ...and no method is embedded in it
    redirects = by_symbol(fc)["Session.resolve_redirects"]
    assert (redirects.kind, redirects.parent) == ("method", "Session")
    assert redirects.text.lstrip().startswith("def resolve_redirects")
    assert redirects.text.rstrip().endswith("return response")


def test_class_within_budget_is_split_when_it_has_real_methods() -> None:
    fc = chunk_file("sample.rs", read("sample.rs"))  # default budget: the impl block fits in one chunk
    found = by_symbol(fc)
    assert found["LruCache.get"].symbol == "LruCache.get"
    assert found["LruCache.get"].text.lstrip().startswith("/// Returns the value")
    impl_header = next(c for c in fc.chunks if c.kind == "impl")
    assert impl_header.text == "impl<K: Eq + Hash + Clone, V> LruCache<K, V> {"
    # A class of one-liners is not worth splitting.
    counter = by_symbol(chunk_file("sample.cpp", read("sample.cpp")))["Counter"]
    assert counter.symbol == "Counter" and "long value() const" in counter.text


def test_nested_classes_are_qualified() -> None:
    java = by_symbol(chunk_file("Sample.java", read("sample.java"), max_chars=80))
    assert java["InventoryService.LedgerEntry.describe"].parent == "InventoryService.LedgerEntry"
    ruby = by_symbol(chunk_file("sample.rb", read("sample.rb"), max_chars=80))
    assert ruby["Flags.Store.bucket"].parent == "Flags.Store"
    rust = by_symbol(chunk_file("sample.rs", read("sample.rs"), max_chars=120))
    assert rust["tests.evicts_least_recently_used"].kind == "function"  # a mod is not a class
    assert rust["LruCache.default"].kind == "method"  # impl Default for LruCache


def test_namespaces_and_include_guards_are_walked_into() -> None:
    header = (
        "#ifndef RING_H\n#define RING_H\n\n#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
        "/* Capacity of every ring. */\nstatic inline size_t ring_capacity(const struct ring *r)\n{\n"
        "    return r ? sizeof(r->data) / sizeof(r->data[0]) - 1 : 0;\n}\n\n"
        "int ring_push(struct ring *r, unsigned char byte);\n\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* RING_H */\n"
    )
    fc = chunk_file("include/ring.h", header)
    assert_sound(header, fc)
    capacity = by_symbol(fc)["ring_capacity"]
    assert capacity.text.startswith("/* Capacity of every ring. */")
    # Under the default budget the whole C++ namespace would fit in one chunk; its classes still get their names.
    cpp = by_symbol(chunk_file("sample.cpp", read("sample.cpp")))
    assert cpp["Counter"].symbol == "Counter" and cpp["Registry"].kind == "class"
    cs = by_symbol(chunk_file("sample.cs", read("sample.cs")))
    assert cs["InvoiceCalculator"].symbol == "InvoiceCalculator"  # not "Billing.Invoices.InvoiceCalculator"


def test_huge_function_becomes_windows_that_keep_its_name() -> None:
    body = "".join(f"    total += compute_step({i}, factor={i % 7}, label='step-{i}')\n" for i in range(120))
    text = f"import math\n\n\ndef run_pipeline(factor):\n    total = 0\n{body}    return math.floor(total)\n"
    fc = chunk_file("pipeline.py", text, max_chars=500)
    assert_sound(text, fc)
    windows = [c for c in fc.chunks if c.symbol == "run_pipeline"]
    assert len(windows) >= 5
    assert all(c.kind == "function" for c in windows)
    assert all(nonws(c.text) <= 500 for c in windows)
    assert windows[0].text.startswith("def run_pipeline(factor):")
    # Windows are evened out: no tiny one-line tail.
    assert min(c.end_line - c.start_line for c in windows) >= 3


def test_single_statement_over_budget_is_cut_by_lines() -> None:
    items = "".join(f"    'key_{i}': {i},\n" for i in range(300))
    text = f"TABLE = {{\n{items}}}\n"
    fc = chunk_file("table.py", text, max_chars=400)
    assert_sound(text, fc)
    assert len(fc.chunks) >= 5


@pytest.mark.parametrize("name", sorted(REQUIRED_AST))
def test_no_chunk_is_only_a_closing_token(name: str) -> None:
    for budget in (120, 300):
        for chunk in chunk_file(name, read(name), max_chars=budget).chunks:
            assert re.sub(r"[\s})\];]|\bend\b|\bfi\b|\bdone\b", "", chunk.text), (budget, chunk.start_line)


# --- merge ------------------------------------------------------------------------------------------------------------


def test_tiny_siblings_merge_and_real_functions_stand_alone() -> None:
    fc = chunk_file("sample.py", read("sample.py"))
    found = by_symbol(fc)
    helpers = {id(found[name]) for name in ("is_secure", "host_of", "strip_fragment")}
    assert len(helpers) == 1, "the three one-line helpers should share one chunk"
    assert split_symbols(found["is_secure"].symbol)[:3] == ["is_secure", "host_of", "strip_fragment"]
    # parse_duration is a real function: its own chunk, named by it alone (identifier search lands on it).
    assert found["parse_duration"].symbol == "parse_duration"
    assert found["parse_duration"].text.startswith("def parse_duration(")
    assert len(fc.chunks) < sum(len(split_symbols(c.symbol)) for c in fc.chunks)


def test_many_one_liners_merge_up_to_budget() -> None:
    text = "\n\n".join(f"def get_{i}(obj):\n    return obj.field_{i}" for i in range(40)) + "\n"
    fc = chunk_file("getters.py", text, max_chars=400)
    assert_sound(text, fc)
    assert 4 <= len(fc.chunks) <= 10
    names = [name for c in fc.chunks for name in split_symbols(c.symbol)]
    assert names == [f"get_{i}" for i in range(40)]
    assert all(c.kind == "function" for c in fc.chunks)


def test_access_label_between_small_methods_does_not_block_merging() -> None:
    found = by_symbol(chunk_file("sample.rb", read("sample.rb")))
    # ``private`` rides along with ``stale?``; the tiny ``bucket`` after it still merges into the same chunk.
    assert found["Flags.Store.stale?"] is found["Flags.Store.bucket"]
    assert "    private\n" in found["Flags.Store.bucket"].text


def test_imports_stay_a_header_chunk() -> None:
    fc = chunk_file("sample.py", read("sample.py"))
    first = fc.chunks[0]
    assert first.start_line == 1 and first.symbol == "" and first.kind == "module"
    assert "import logging" in first.text and "def " not in first.text


# --- leading comments and decorators ----------------------------------------------------------------------------------


def test_leading_comments_and_decorators_attach_to_the_definition() -> None:
    go = by_symbol(chunk_file("sample.go", read("sample.go"), max_chars=300))
    assert go["Server.Start"].text.startswith("// Start serves in the background")
    rust = by_symbol(chunk_file("sample.rs", read("sample.rs"), max_chars=300))
    assert rust["LruCache.get"].text.lstrip().startswith("/// Returns the value")
    assert rust["LruCache"].text.startswith("/// Least-recently-used") or "#[derive(Debug)]" in rust["LruCache"].text
    java = by_symbol(chunk_file("sample.java", read("sample.java"), max_chars=300))
    assert java["InventoryService.receive"].text.lstrip().startswith("/** Adds units")
    # A class that is split keeps its doc comment on its header chunk.
    assert java["InventoryService"].text.startswith("/**\n * In-memory stock ledger")
    assert java["InventoryService"].text.rstrip().endswith("new ArrayList<>();")
    py = by_symbol(chunk_file("sample.py", read("sample.py"), max_chars=300))
    assert py["Response"].text.startswith("@dataclass\nclass Response:")


# --- markdown, lines, fallbacks ---------------------------------------------------------------------------------------


def test_markdown_splits_by_heading() -> None:
    text = read("sample.md")
    fc = chunk_file("docs/deploy.md", text)
    assert (fc.language, fc.method) == ("markdown", "markdown")
    assert_sound(text, fc)
    assert [c.symbol for c in fc.chunks] == [
        "Deploy guide",
        "Prerequisites",
        "Staging",
        "Production",
        "Rollback",
        "Troubleshooting",
    ]
    assert all(c.kind == "section" for c in fc.chunks)
    sections = {c.symbol: c for c in fc.chunks}
    assert sections["Rollback"].parent == "Production"
    assert sections["Staging"].parent == "Deploy guide"
    # The shell comment inside the fenced block is not a heading.
    assert "# tag the image" in sections["Staging"].text


def test_big_markdown_section_is_split_by_paragraph() -> None:
    paragraphs = "\n\n".join(f"Paragraph {i} explains step {i} of the rollout in some detail." for i in range(40))
    text = f"# Runbook\n\n{paragraphs}\n"
    fc = chunk_file("runbook.md", text, max_chars=300)
    assert_sound(text, fc)
    assert len(fc.chunks) >= 5 and {c.symbol for c in fc.chunks} == {"Runbook"}
    assert all(c.text.startswith(("# Runbook", "Paragraph")) for c in fc.chunks)


def test_yaml_is_line_chunked() -> None:
    text = read("sample.yaml")
    fc = chunk_file(".github/workflows/ci.yaml", text)
    assert (fc.language, fc.method) == ("yaml", "lines")
    assert_sound(text, fc)
    assert all(c.kind == "lines" and c.symbol == "" for c in fc.chunks)


def test_unknown_text_falls_back_to_lines() -> None:
    text = "".join(f"entry {i}: value {i * 3}\n" for i in range(200))
    fc = chunk_file("data/records.qqq", text)
    assert (fc.language, fc.method) == ("text", "lines")
    assert_sound(text, fc)
    assert len(fc.chunks) >= 4
    assert all(c.end_line - c.start_line + 1 <= WINDOW_LINES for c in fc.chunks)


def test_unknown_language_name_falls_back_to_lines() -> None:
    text = "IDENTIFICATION DIVISION.\nPROGRAM-ID. HELLO.\n"
    fc = chunk_file("hello.cbl", text, language="cobol")
    assert (fc.language, fc.method) == ("cobol", "lines")
    assert_sound(text, fc)


@pytest.mark.parametrize("language", sorted(set(REQUIRED_AST.values())))
def test_garbage_source_still_covered(language: str) -> None:
    rng = random.Random(language)
    text = "".join(rng.choice("{}()[];:=+-*/ \n\tabcxyz\"'`#<>.,") for _ in range(3000))
    fc = chunk_file("broken.src", text, language=language, max_chars=200)
    assert fc.language == language and fc.method in {"ast", "lines"}
    assert_sound(text, fc)
    assert fc.chunks


def test_truncated_source_keeps_what_parses() -> None:
    text = read("sample.py")
    broken = text[: text.index("    def close(self)")] + "    def close(self:\n        self.transport.clo\n"
    fc = chunk_file("sample.py", broken)
    assert fc.method == "ast"
    assert_sound(broken, fc)
    assert "parse_duration" in by_symbol(fc)


def test_pathologically_deep_nesting_does_not_crash() -> None:
    text = "x = " + "[" * 5000 + "]" * 5000 + "\n"
    fc = chunk_file("deep.py", text, max_chars=100)
    assert_sound(text, fc)


def test_crlf_and_unicode() -> None:
    text = "\r\n".join(
        ["# Grüße ✓", "def grüße(名前):", "    return f'こんにちは {名前}'", "", "", "class Ünïcode:", "    pass", ""]
    )
    fc = chunk_file("uni.py", text)
    assert_sound(text, fc)
    assert split_symbols(fc.chunks[0].symbol) == ["grüße", "Ünïcode"]


def test_empty_and_blank_files() -> None:
    assert chunk_file("empty.py", "").chunks == []
    fc = chunk_file("blank.md", "\n  \n\n")
    assert fc.chunks == [] and fc.method == "markdown"


# --- language detection -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("Makefile", "make"),
        ("build/GNUmakefile", "make"),
        ("Dockerfile", "dockerfile"),
        ("deploy/Dockerfile.prod", "dockerfile"),
        ("CMakeLists.txt", "cmake"),
        ("Gemfile", "ruby"),
        ("home/.bashrc", "bash"),
        ("notes.txt", "text"),
        ("setup.cfg", "ini"),
        ("pyproject.toml", "toml"),
        ("web/App.tsx", "tsx"),
        ("web/api.ts", "typescript"),
        ("web/legacy.jsx", "javascript"),
        ("include/ring.h", "c"),
        ("src/engine.hpp", "cpp"),
        ("Program.CS", "csharp"),
        ("README.md", "markdown"),
        ("a\\windows\\path.py", "python"),
        ("archive.unknownext", None),
        ("bin/run", None),
        (".hidden", None),
    ],
)
def test_language_for_path(path: str, language: str | None) -> None:
    assert language_for_path(path) == language


def test_language_from_shebang_for_extensionless_scripts() -> None:
    assert language_from_shebang("#!/usr/bin/env python3\nprint(1)\n") == "python"
    assert language_from_shebang("#!/bin/bash\n") == "bash"
    assert language_from_shebang("#!/usr/bin/env -S node --no-warnings\n") == "javascript"
    assert language_from_shebang("print(1)\n") is None
    fc = chunk_file("bin/deploy", "#!/bin/sh\nset -e\n\ndeploy() {\n  echo go\n}\n\ndeploy\n")
    assert (fc.language, fc.method) == ("bash", "ast")
    assert "deploy" in by_symbol(fc)


def test_every_ast_language_has_a_grammar_table() -> None:
    for name in AST_LANGUAGES:
        spec = LANGUAGES[name]
        assert spec.ts_name and spec.definitions and spec.extensions, name

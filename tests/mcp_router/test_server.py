"""The MCP server in-process, through the SDK's `Client`, over both protocol eras.

Everything is real: the embedded model, a LanceDB index on disk built from `fixtures/`, the server's own tools.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from indexer import encoder as encoder_module
from mcp_router.app import App
from mcp_router.codeindex import IndexStatus, ReindexResult, SearchResult
from mcp_router.mcp_tools.code import NO_INDEX, overall_percent
from mcp_router.server import build_server
from tests.conftest import FIXTURES, make_git_repo

pytestmark = pytest.mark.anyio

MODES = ("auto", "legacy")
CODE_TOOLS = {"search_code", "index_status", "reindex"}
HEAVY_MODULES = ("torch", "sentence_transformers", "transformers", "lancedb", "onnxruntime", "tree_sitter",
                 "tree_sitter_language_pack", "sklearn")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def error_text(result: Any) -> str:
    assert result.is_error, f"expected an error result, got {result.structured_content!r}"
    return "\n".join(block.text for block in result.content)


def assert_clean_error(text: str) -> None:
    """What the model reads: one actionable sentence, no traceback or library dump."""
    for leak in ("Traceback", "validation error for", "pydantic", "errors.pydantic.dev", "lance error", "File \""):
        assert leak not in text, text


# -- discovery ----------------------------------------------------------------------------------------------------

async def test_tools_are_listed_with_schemas_descriptions_and_annotations(indexed_repo: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_repo), warm=False), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert CODE_TOOLS <= tools.keys()
    for tool in tools.values():  # every feature's tool, not only ours: the rules apply to all of them
        assert tool.description and len(tool.description.encode()) < 2048, tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is not None, tool.name
        assert tool.output_schema is not None, f"{tool.name} has no output schema (pydantic result expected)"
    for name in CODE_TOOLS:
        assert "use" in tools[name].description.lower(), name
    # "when not to use" is spelled out where an alternative exists
    assert "grep" in tools["search_code"].description
    assert tools["search_code"].annotations.read_only_hint is True
    assert tools["index_status"].annotations.read_only_hint is True
    assert tools["reindex"].annotations.read_only_hint is False
    assert tools["reindex"].annotations.destructive_hint is False
    assert tools["search_code"].output_schema["properties"].keys() == SearchResult.model_json_schema()["properties"].keys()
    assert set(tools["index_status"].output_schema["properties"]) == set(IndexStatus.model_fields)
    assert set(tools["reindex"].output_schema["properties"]) == set(ReindexResult.model_fields)
    search_props = tools["search_code"].input_schema["properties"]
    assert {"query", "path_glob", "language", "k", "offset"} <= search_props.keys()
    assert "ctx" not in search_props
    assert tools["search_code"].input_schema["required"] == ["query"]


async def test_build_server_imports_no_model_or_database_library(indexed_repo: Path) -> None:
    """The handshake path stays light: checked in a fresh interpreter, since this one already loaded the model."""
    import subprocess

    code = (
        "import sys; from pathlib import Path\n"
        "from mcp_router.cli import main\n"
        "from mcp_router.app import App\n"
        "from mcp_router.server import build_server\n"
        f"build_server(App(Path({str(indexed_repo)!r})), warm=False, watch=False)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


# -- search_code ----------------------------------------------------------------------------------------------------

async def test_search_code_finds_a_definition_with_structured_content(indexed_repo: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_repo)), mode=mode) as client:
        result = await client.call_tool("search_code", {"query": "parse_duration", "k": 3})
    assert not result.is_error, result.content
    page = SearchResult.model_validate(result.structured_content)
    top = page.results[0]
    assert (top.path, top.symbol, top.language) == ("src/sample.py", "parse_duration", "python")
    assert top.start_line < top.end_line and "def parse_duration" in top.code
    assert "index updated" in page.freshness
    # the text block carries the same JSON for clients that ignore structured content
    assert json.loads(result.content[0].text) == result.structured_content


async def test_search_code_pages_and_filters(indexed_repo: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_repo)), mode=mode) as client:
        first = SearchResult.model_validate(
            (await client.call_tool("search_code", {"query": "session redirect", "k": 2})).structured_content)
        assert len(first.results) == 2 and first.next_offset == 2
        second = SearchResult.model_validate((await client.call_tool(
            "search_code", {"query": "session redirect", "k": 2, "offset": first.next_offset})).structured_content)
        keys = lambda page: {(h.path, h.start_line) for h in page.results}  # noqa: E731
        assert second.results and not keys(first) & keys(second)
        go = SearchResult.model_validate((await client.call_tool(
            "search_code", {"query": "parse a duration", "language": "go"})).structured_content)
        assert go.results and {h.language for h in go.results} == {"go"}
        globbed = SearchResult.model_validate((await client.call_tool(
            "search_code", {"query": "parse a duration", "path_glob": "src/*.rs"})).structured_content)
        assert globbed.results and {h.path for h in globbed.results} == {"src/sample.rs"}


async def test_search_code_notices_an_edited_file(tmp_path: Path, indexed_repo: Path, mode: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(indexed_repo, root, symlinks=True)
    (root / "src" / "billing.py").write_text("def compute_invoice_total(lines):\n    return sum(lines)\n")
    async with Client(build_server(App(root)), mode=mode) as client:
        page = SearchResult.model_validate(
            (await client.call_tool("search_code", {"query": "compute_invoice_total"})).structured_content)
    assert page.results[0].path == "src/billing.py"
    assert "refreshed 1 changed file" in page.freshness


# -- index_status, resource, prompt -----------------------------------------------------------------------------------

async def test_index_status_tool_and_resource(indexed_repo: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_repo), warm=False), mode=mode) as client:
        result = await client.call_tool("index_status", {})
        resources = (await client.list_resources()).resources
        resource = await client.read_resource("mcp-router://index/status")
    assert not result.is_error
    status = IndexStatus.model_validate(result.structured_content)
    assert status.indexed and status.root == str(indexed_repo)
    assert status.files == 5 and status.chunks > 5 and status.model == "all-MiniLM-L6-v2"
    assert {"python", "go", "typescript", "rust", "markdown"} <= status.languages.keys()
    assert "mcp-router://index/status" in {str(r.uri) for r in resources}
    body = IndexStatus.model_validate_json(resource.contents[0].text)
    assert resource.contents[0].mime_type == "application/json"
    assert (body.indexed, body.files, body.chunks) == (True, status.files, status.chunks)


async def test_index_status_without_an_index_says_so(tmp_path: Path, mode: str) -> None:
    root = make_git_repo(tmp_path / "empty")
    async with Client(build_server(App(root), warm=False), mode=mode) as client:
        status = IndexStatus.model_validate((await client.call_tool("index_status", {})).structured_content)
        resource = await client.read_resource("mcp-router://index/status")
    assert status.indexed is False and status.files == 0
    assert json.loads(resource.contents[0].text)["indexed"] is False


async def test_usage_prompt(indexed_repo: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_repo), warm=False), mode=mode) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("use-mcp-router")
    assert "use-mcp-router" in prompts
    text = prompt.messages[0].content.text
    assert "search_code" in text and "reindex" in text and "index_status" in text


# -- reindex and progress -------------------------------------------------------------------------------------------

async def test_reindex_reports_increasing_progress(tmp_path: Path, encoder: Any, mode: str) -> None:
    root = make_git_repo(tmp_path / "repo")
    for name in ("sample.py", "sample.go"):
        shutil.copy2(FIXTURES / "languages" / name, root / name)
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(build_server(App(root)), mode=mode) as client:
        result = await client.call_tool("reindex", {}, progress_callback=on_progress)
        again = ReindexResult.model_validate((await client.call_tool("reindex", {})).structured_content)
        found = SearchResult.model_validate(
            (await client.call_tool("search_code", {"query": "parse_duration"})).structured_content)
    assert not result.is_error, result.content
    stats = ReindexResult.model_validate(result.structured_content)
    assert stats.files_indexed == 2 and stats.chunks_embedded == stats.chunks_total > 0
    assert stats.languages == {"python": 1, "go": 1}
    values = [u[0] for u in updates]
    assert len(updates) >= 3, updates
    assert all(b > a for a, b in zip(values, values[1:])), f"progress must increase: {values}"
    assert updates[-1][:2] == (100, 100)
    assert any(m and m.startswith("embed") for _, _, m in updates), updates
    assert again.files_indexed == 0 and again.files_unchanged == 2 and again.chunks_embedded == 0
    assert found.results[0].path == "sample.py"


async def test_reindex_of_a_folder_also_drops_deleted_files(tmp_path: Path, indexed_repo: Path, mode: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(indexed_repo, root, symlinks=True)
    (root / "src" / "sample.md").unlink()
    async with Client(build_server(App(root)), mode=mode) as client:
        stats = ReindexResult.model_validate(
            (await client.call_tool("reindex", {"path": "src"})).structured_content)
        one = ReindexResult.model_validate(
            (await client.call_tool("reindex", {"path": str(root / "src" / "sample.py")})).structured_content)
    assert stats.files_deleted == 1 and stats.files_unchanged == 4 and stats.files_indexed == 0
    assert one.files_unchanged == 1 and one.files_deleted == 0


def test_overall_percent_only_grows_across_phases() -> None:
    steps = [("scan", 0, 0), ("scan", 9, 9), ("parse", 0, 9), ("parse", 9, 9), ("embed", 0, 40), ("embed", 40, 40)]
    values = [overall_percent(*s) for s in steps]
    assert values == sorted(values) and values[0] >= 1 and values[-1] < 100


# -- errors -------------------------------------------------------------------------------------------------------

async def test_search_without_an_index_says_what_to_do(tmp_path: Path, mode: str) -> None:
    root = make_git_repo(tmp_path / "fresh")
    (root / "a.py").write_text("def f():\n    return 1\n")
    async with Client(build_server(App(root), warm=False), mode=mode) as client:
        text = error_text(await client.call_tool("search_code", {"query": "anything"}))
    assert NO_INDEX in text and "call reindex" in text and "`mcp-router index`" in text
    assert not (root / ".mcp-router" / "chunks.lance").exists()


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"query": "x", "k": 0}, "`k`: Input should be greater than or equal to 1"),
    ({"query": "x", "k": "many"}, "`k`: Input should be a valid integer"),
    ({"query": "x", "offset": -1}, "`offset`: Input should be greater than or equal to 0"),
    ({}, "`query`: Field required"),
    ({"query": "   "}, "query is empty"),
    ({"query": "duration", "language": "cobol"}, "no file in the index is in language 'cobol'"),
])
async def test_search_code_bad_arguments(indexed_repo: Path, mode: str, arguments: dict, expected: str) -> None:
    async with Client(build_server(App(indexed_repo)), mode=mode) as client:
        text = error_text(await client.call_tool("search_code", arguments))
        still_ok = await client.call_tool("index_status", {})
    assert expected in text, text
    assert_clean_error(text)
    assert not still_ok.is_error


@pytest.mark.parametrize(("path", "expected"), [
    ("/etc", "is outside the repository"),
    ("../elsewhere", "is outside the repository"),
    ("src/../../x.py", "is outside the repository"),
    ("src/missing.py", "does not exist in the repository"),
])
async def test_reindex_rejects_paths_outside_the_root(indexed_repo: Path, mode: str, path: str, expected: str) -> None:
    async with Client(build_server(App(indexed_repo)), mode=mode) as client:
        text = error_text(await client.call_tool("reindex", {"path": path}))
    assert expected in text and ("inside it" in text or "omit path" in text), text
    assert_clean_error(text)


async def test_unexpected_failure_is_hidden_and_the_server_survives(tmp_path: Path, indexed_repo: Path,
                                                                    mode: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(indexed_repo, root, symlinks=True)
    # A damaged index (its data files gone) makes LanceDB itself fail: not a UserError, so its text must stay hidden.
    for data in (root / ".mcp-router" / "chunks.lance" / "data").iterdir():
        data.unlink()
    async with Client(build_server(App(root)), mode=mode) as client:
        text = error_text(await client.call_tool("search_code", {"query": "parse_duration", "k": 2}))
        tools = (await client.list_tools()).tools
        status = await client.call_tool("index_status", {})
    assert "internal error in search_code" in text and "server log" in text, text
    assert ".lance" not in text and str(root) not in text
    assert_clean_error(text)
    assert CODE_TOOLS <= {t.name for t in tools}
    assert status.content  # answered (ok or error), after the failure


async def test_unknown_tool_is_an_error_result(indexed_repo: Path, mode: str) -> None:
    async with Client(build_server(App(indexed_repo), warm=False), mode=mode) as client:
        result = await client.call_tool("no_such_tool", {})
    assert "no_such_tool" in error_text(result)


# -- warm-up --------------------------------------------------------------------------------------------------------

async def test_tool_called_before_the_model_is_loaded_waits_with_progress(
        indexed_repo: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh, unloaded encoder of the same model (the ONNX backend key): the shared one is already warm.
    monkeypatch.delitem(encoder_module._ENCODERS, ("all-MiniLM-L6-v2", "onnx"), raising=False)
    app = App(indexed_repo, {"backend": "onnx"})
    assert not app.encoder.loaded
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    # warm=False: the tool itself starts the load and must wait for it (with warm=True the background load may win
    # the race on a fast machine, and then there is nothing to wait for). The stdio tests cover the warm=True path.
    async with Client(build_server(app, warm=False), mode=mode) as client:
        result = await client.call_tool("search_code", {"query": "parse_duration"}, progress_callback=on_progress)
    assert not result.is_error, result.content
    assert SearchResult.model_validate(result.structured_content).results[0].symbol == "parse_duration"
    assert app.encoder.loaded and app.encoder.kind == "onnx"
    assert updates and all("loading the embedding model" in (m or "") for _, _, m in updates), updates
    values = [u[0] for u in updates]
    assert all(b > a for a, b in zip(values, values[1:]))

"""MCP tools, resource and prompt of the code index: search_code, index_status, reindex."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from indexer.errors import UserError
from mcp_router import codeindex
from mcp_router.app import App
from mcp_router.codeindex import IndexStatus, ReindexResult, SearchResult
from mcp_router.mcp_tools.common import Services, run_sync, tool_errors

NO_INDEX = ("no index yet: call reindex (no arguments) to build it, or run `mcp-router index` in the repository; "
            "then search again")

# Overall progress of reindex, in percent: each phase fills its own band, so the value only ever increases.
_PHASE_BANDS = {"scan": (1.0, 5.0), "parse": (5.0, 25.0), "embed": (25.0, 99.0)}


def overall_percent(phase: str, done: int, total: int) -> float:
    """Map one phase's ``done/total`` onto the whole run (1..99 %); an unknown total counts as the band's start."""
    lo, hi = _PHASE_BANDS.get(phase, (1.0, 1.0))
    frac = min(1.0, done / total) if total else 0.0
    return round(lo + (hi - lo) * frac, 2)


def require_index(app: App) -> None:
    """`UserError` with what to do when the repository has no index yet (checked before waiting for the model)."""
    from indexer.store import CodeStore

    if CodeStore.read_meta(app.index_dir) is None:
        raise UserError(NO_INDEX)
    try:
        codeindex.open_store(app)
    except UserError:
        raise UserError(NO_INDEX) from None


def reindex_scope(app: App, path: str | None) -> list[str] | None:
    """The root-relative files a ``reindex(path)`` call covers (None: everything).

    A folder covers the files under it now *and* the indexed files under it that were deleted since.
    """
    if not path or not path.strip():
        return None
    rel = codeindex.to_relative(app, path.strip())
    if rel in ("", "."):
        return None
    target = app.root / rel
    known: list[str] = []
    try:
        known = list(codeindex.open_store(app).file_rows())
    except UserError:
        pass
    if target.is_dir():
        prefix = rel.rstrip("/") + "/"
        found = {p.relative_to(app.root).as_posix() for p in target.rglob("*") if p.is_file()}
        found.update(k for k in known if k.startswith(prefix))
        return sorted(found)
    if target.is_file() or rel in known:
        return [rel]
    raise UserError(f"{path} does not exist in the repository {app.root}: give an existing file or folder, "
                    "or omit path to reindex everything")

SEARCH_DESCRIPTION = """Find code in this repository by meaning or by name: hybrid semantic + keyword search over an \
AST-chunked index (functions, methods, classes), refreshed for files edited since the last update.

Use it when you do not know where something lives: "where are retries handled", "code that parses durations", \
"how is the config loaded", or an identifier such as `parse_duration` or `Session.send` (its definition comes first). \
Prefer it over grep/find for concept questions; use grep for an exact string you already know.

Returns path, line range, qualified symbol, language, score and the code of each chunk, within a size budget. \
Results are paginated: pass `next_offset` back as `offset` for more. Narrow with `path_glob` (e.g. "src/**/*.py") \
or `language` (python, typescript, go, ...)."""

STATUS_DESCRIPTION = """Report the code index of this repository: whether it exists, model, file and chunk counts, \
languages, when it was last updated, files changed since then, whether a watcher keeps it fresh, and disk size. \
Use it when search results look stale or empty, or before deciding to call reindex."""

REINDEX_DESCRIPTION = """Bring the code index up to date, incrementally: only files whose size/mtime and content \
changed are re-chunked, and unchanged chunks reuse stored vectors. Pass `path` (a file or folder inside the repository) \
to refresh just that. Use it when index_status shows pending changes or no index yet; search_code already refreshes \
a few edited files by itself. The first full index of a large repository can take minutes; progress is reported."""


def register(server: MCPServer, services: Services) -> None:
    app = services.app

    @server.tool(title="Search code", description=SEARCH_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
                 meta={"anthropic/maxResultSizeChars": 100_000})
    @tool_errors
    async def search_code(
        query: Annotated[str, Field(description="what you are looking for, in words or as an identifier")],
        ctx: Context,
        path_glob: Annotated[str | None, Field(description="only files matching this glob, e.g. 'src/**/*.ts'")] = None,
        language: Annotated[str | None, Field(description="only this language, e.g. python, go, rust")] = None,
        k: Annotated[int, Field(ge=1, le=50, description="results per page")] = 8,
        offset: Annotated[int, Field(ge=0, description="skip this many results (from next_offset)")] = 0,
    ) -> SearchResult:
        if not query.strip():
            raise UserError("query is empty: describe the code you are looking for, or give an identifier")
        await run_sync(require_index, app)
        await services.encoder_ready(ctx)
        result = await run_sync(lambda: codeindex.search_code(app, query, k=k, offset=offset, path_glob=path_glob,
                                                              language=language))
        if not result.results and language and offset == 0:
            indexed = await run_sync(lambda: codeindex.index_status(app).languages)
            if language.lower() not in indexed:
                raise UserError(f"no file in the index is in language {language!r}: use one of "
                                f"{', '.join(sorted(indexed)) or '(none indexed yet)'}, or omit language")
        return result

    @server.tool(title="Index status", description=STATUS_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    @tool_errors
    async def index_status() -> IndexStatus:
        return await run_sync(codeindex.index_status, app)

    @server.tool(title="Reindex code", description=REINDEX_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False))
    @tool_errors
    async def reindex(
        ctx: Context,
        path: Annotated[str | None, Field(description="a file or folder inside the repository; omit for everything")] = None,
    ) -> ReindexResult:
        paths = await run_sync(reindex_scope, app, path)
        await services.encoder_ready(ctx)
        state = {"phase": "scan", "done": 0, "total": 0}

        def progress(phase: str, done: int, total: int) -> None:
            state.update(phase=phase, done=done, total=total)

        async def pump(stop: anyio.Event) -> None:
            last = None
            while not stop.is_set():
                snap = (state["phase"], state["done"], state["total"])
                pct = overall_percent(*snap)
                if last is None or pct > last:
                    last = pct
                    await ctx.report_progress(pct, 100, f"{snap[0]}: {snap[1]}" + (f"/{snap[2]}" if snap[2] else ""))
                with anyio.move_on_after(0.2):
                    await stop.wait()

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, stop)
            try:
                stats = await run_sync(lambda: codeindex.reindex(app, paths=paths, progress=progress))
            finally:
                stop.set()
        await ctx.report_progress(100, 100, "done")
        return codeindex.reindex_result(stats)

    @server.resource("mcp-router://index/status", name="index-status", title="Code index status",
                     description="The code index status as JSON (same as the index_status tool).",
                     mime_type="application/json")
    async def status_resource() -> str:
        st = await run_sync(codeindex.index_status, app)
        return st.model_dump_json(indent=2)

    @server.prompt(name="use-mcp-router", title="How to use mcp-router's tools",
                   description="Instructions for combining search_code, route_query, filter_tools and the cache.")
    def usage_prompt() -> str:
        return USAGE


USAGE = """You have mcp-router's local tools for this repository.
1. Finding code: call search_code with a description ("where is the retry policy configured") or an identifier
   ("parse_duration"). Read the returned chunks before opening whole files; use path_glob/language to narrow, offset
   to page. Use grep only for exact strings you already know.
2. Staleness: search_code refreshes recently edited files itself. If index_status reports many pending changes or no
   index, call reindex (optionally with a path).
3. Other tools, when present: route_query tells which model tier a request needs; filter_tools picks the few tools
   of a large catalogue that matter; cache_lookup before answering a repeated question, cache_store after answering,
   listing the files the answer depends on so it is invalidated when they change."""

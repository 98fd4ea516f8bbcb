"""MCP tools, resource and prompt of the code index: search_code, index_status, reindex."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_router import codeindex
from mcp_router.codeindex import IndexStatus, ReindexResult, SearchResult
from mcp_router.mcp_tools.common import Services, run_sync, tool_errors

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
        await services.encoder_ready(ctx)
        return await run_sync(lambda: codeindex.search_code(app, query, k=k, offset=offset, path_glob=path_glob,
                                                            language=language))

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
        await services.encoder_ready(ctx)
        paths = None
        if path:
            rel = codeindex.to_relative(app, path)
            target = app.root / rel
            paths = [p.relative_to(app.root).as_posix() for p in target.rglob("*") if p.is_file()] \
                if target.is_dir() else [rel]
        state = {"phase": "scan", "done": 0, "total": 0}

        def progress(phase: str, done: int, total: int) -> None:
            state.update(phase=phase, done=done, total=total)

        async def pump(stop: anyio.Event) -> None:
            last = None
            while not stop.is_set():
                snap = (state["phase"], state["done"], state["total"])
                if snap != last:
                    last = snap
                    await ctx.report_progress(snap[1], snap[2] or None, f"{snap[0]}: {snap[1]}"
                                              + (f"/{snap[2]}" if snap[2] else ""))
                with anyio.move_on_after(0.2):
                    await stop.wait()

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, stop)
            try:
                stats = await run_sync(lambda: codeindex.reindex(app, paths=paths, progress=progress))
            finally:
                stop.set()
        await ctx.report_progress(1, 1, "done")
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

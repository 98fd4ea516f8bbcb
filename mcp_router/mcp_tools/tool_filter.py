"""MCP tool of tool-catalogue filtering: ``filter_tools``.

It filters against the tool index of this repository's store (built with ``mcp-router tools index``). Downstream
servers whose listing is older than the TTL are re-listed in a background thread, so a call never waits on them.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_router.mcp_tools.common import Services, run_sync, tool_errors

log = logging.getLogger("mcp_router.server")

FILTER_DESCRIPTION = """Pick the few tools a request needs from the large tool catalogue indexed for this repository \
(every tool of the MCP servers it lists), instead of loading all their definitions.

Use it before a task when many tools are available and you are unsure which apply: pass the user's request as \
`query` (e.g. "open a PR for this branch", "what changed since yesterday"), and optionally `context` (the last \
turns or the previous tool calls) to sharpen it. Returns the top `k` tools, best first, each with its full original \
definition (pass it on unchanged), a score and why it matched. `no_tool_needed` is true when nothing clears the bar: \
answer directly then. Pinned tools are always included. `tokens_saved` estimates the prompt tokens not spent on the \
rest of the catalogue. Do not use it to find code (use search_code)."""


class ToolMatch(BaseModel):
    """One selected tool."""

    server: str = Field(description="the MCP server that provides the tool")
    name: str = Field(description="the tool's name on that server")
    score: float = Field(description="fused relevance score (higher is better)")
    why: str = Field(description="which query words matched which field, and the meaning similarity")
    pinned: bool = Field(description="true when returned because it is pinned in the settings")
    estimated_tokens: int = Field(description="rough prompt cost of the definition")
    definition: dict[str, Any] = Field(description="the tool definition exactly as its server listed it")


class ToolFilterResult(BaseModel):
    """The answer of filter_tools."""

    no_tool_needed: bool = Field(description="true when no tool is relevant enough: answer without tools")
    tools: list[ToolMatch]
    best_score: float
    min_score: float = Field(description="the bar a tool must clear")
    catalogue_tools: int = Field(description="tools in the whole catalogue")
    catalogue_tokens: int = Field(description="estimated tokens of the whole catalogue")
    returned_tokens: int = Field(description="estimated tokens of the returned tools")
    tokens_saved: int
    notes: list[str] = Field(default_factory=list)


def register(server: MCPServer, services: Services) -> None:
    app = services.app
    refreshing = threading.Lock()

    def tool_index() -> Any:
        from tools.index import open_tool_index

        return services.extra("tool_index", lambda: open_tool_index(app.db(), app.encoder, app.config.tools))

    def refresh_in_background(index: Any) -> None:
        if not refreshing.acquire(blocking=False):
            return

        def run() -> None:
            try:
                report = index.refresh()
                if report.changed:
                    log.info("tool catalogue refreshed: +%d ~%d -%d", report.added, report.updated, report.removed)
            except Exception:  # noqa: BLE001 - a broken downstream server must not break filtering
                log.exception("tool catalogue refresh failed")
            finally:
                refreshing.release()

        threading.Thread(target=run, name="mcp-router-tools-refresh", daemon=True).start()

    @server.tool(title="Filter tools", description=FILTER_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    @tool_errors
    async def filter_tools(
        query: Annotated[str, Field(description="the user's request or the task, in words")],
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=50, description="how many tools to return at most")] = 5,
        context: Annotated[str | None, Field(description="recent conversation or previous tool calls")] = None,
    ) -> ToolFilterResult:
        await services.encoder_ready(ctx)
        index = tool_index()
        refresh_in_background(index)
        resp = await run_sync(lambda: index.filter(query, k=k, context=context))
        from tools.index import response_dict

        return ToolFilterResult(**{k2: v for k2, v in response_dict(resp).items() if k2 != "query"})

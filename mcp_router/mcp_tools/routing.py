"""MCP tools of the query router: ``route_query`` and ``route_feedback`` (thin shells over `Router`)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_router.mcp_tools.common import Services, run_sync, tool_errors
from mcp_router.routing.router import RouteDecision

ROUTE_DESCRIPTION = """Decide, locally and in milliseconds, which model tier a coding request needs before spending \
tokens on it: slm (small: syntax, lookups), srm (small reasoning: short reasoning, simple code), llm (large: long \
generation, review) or lrm (large reasoning: design, multi-step plans).

Pass the user's request as `query` and, for follow-ups, the previous user turns as `history` (oldest first) so a \
short "commit it" inside a hard task keeps its tier and "that didn't work" escalates. Returns the route (intent such \
as debugging or architecture, or null when the request is not a coding task), the tier and its configured model, a \
confidence with the margin over the runner-up, the signals that fired and a one-line reason. When `private` is true \
the request contains secrets or personal data: keep it on the returned local tier. Do not use it to find code \
(use search_code)."""

FEEDBACK_DESCRIPTION = """Tell the router whether the tier it chose for a request was enough, so similar future \
requests are routed better. Call it after the answer is judged: outcome `ok` (the tier was enough), `too_weak` (the \
answer failed and a stronger tier was needed) or `overkill` (a cheaper tier would have done). Pass the same `query` \
text that was routed and the `tier` that was used."""


class FeedbackResult(BaseModel):
    """What route_feedback stored."""

    recorded: bool
    tier: str = Field(description="the tier that was used")
    outcome: str
    needed_tier: str = Field(description="the tier this kind of request needs, as learned from this outcome")
    feedback_rows: int = Field(description="outcomes stored so far")


def register(server: MCPServer, services: Services) -> None:
    def router():  # noqa: ANN202 - built once per server
        from mcp_router.routing import Router

        return services.extra("router", lambda: Router.from_app(services.app))

    # build (or load from the machine-wide cache) the route model right after the embedding model, in the background
    services.after_warmup(lambda: router().warm())

    @server.tool(title="Route a query to a model tier", description=ROUTE_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    @tool_errors
    async def route_query(
        query: Annotated[str, Field(description="the user's request, verbatim")],
        ctx: Context,
        history: Annotated[list[str] | None, Field(description="previous user turns of this task, oldest first")] = None,
    ) -> RouteDecision:
        await services.encoder_ready(ctx)
        r = await run_sync(router)
        return await run_sync(lambda: r.route(query, history or []))

    @server.tool(title="Report whether a routed tier was enough", description=FEEDBACK_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=False, open_world_hint=False))
    @tool_errors
    async def route_feedback(
        query: Annotated[str, Field(description="the request text that was routed")],
        tier: Annotated[str, Field(description="the tier that was used: slm, srm, llm or lrm")],
        outcome: Annotated[Literal["ok", "too_weak", "overkill"], Field(
            description="ok: enough; too_weak: a stronger tier was needed; overkill: a cheaper tier would do")],
        ctx: Context,
        route: Annotated[str | None, Field(description="the route the request was given, if known")] = None,
    ) -> FeedbackResult:
        await services.encoder_ready(ctx)
        r = await run_sync(router)
        return FeedbackResult(**await run_sync(lambda: r.record_feedback(query, tier, outcome, route)))

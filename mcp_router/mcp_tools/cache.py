"""MCP tools of the answer cache: `cache_lookup` and `cache_store` (thin shells over `AnswerCache`)."""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_router.mcp_tools.common import Services, run_sync, tool_errors

LOOKUP_DESCRIPTION = (
    "Check whether this repository's answer cache already holds an answer to the user's question, before you research "
    "or answer it yourself. Use it for self-contained questions that could have been asked before (\"how does the "
    "retry logic in client.py work?\", \"how do I sort an array in JavaScript?\"). Do not use it for requests that "
    "change files, for follow-ups that only make sense with this conversation (\"and now commit it\"), or for "
    "questions about the current state of the working tree.\n"
    "A hit returns the earlier answer: it was verified to be the same question (same language, identifiers, flags, "
    "versions, direction) and every file it relied on is unchanged since. Reuse it, and say it came from the cache. "
    "A miss says why (empty, below_threshold, guard with the differing token, stale with the changed file, expired): then answer normally and consider cache_store afterwards."
)

STORE_DESCRIPTION = (
    "Save your final answer to a self-contained question so a later identical or paraphrased question is answered "
    "from the cache. Call it after you answered, only when the answer is correct, complete and likely to be asked "
    "again. Pass in `files` every repository file the answer relied on (paths relative to the repository root): "
    "the entry dies automatically as soon as one of them changes. Never store error messages, partial answers, "
    "answers that depend on this conversation, or secrets; answers over the size limit are refused."
)


class CacheLookupResult(BaseModel):
    """The outcome of a cache lookup."""

    hit: bool = Field(description="True when a cached answer may be reused")
    reason: str = Field(description="exact or semantic (hits); empty, below_threshold, guard, stale, expired")
    similarity: float | None = Field(None, description="cosine similarity of the nearest cached question, 0..1")
    entry_id: str | None = None
    answer: str | None = Field(None, description="the cached answer (hits only)")
    cached_question: str | None = Field(None, description="the question the cached answer was given to")
    refused_rule: str | None = Field(None, description="which guard rule refused a near neighbour")
    refused_token: str | None = Field(None, description="the word, identifier, flag or number that differed")
    stale_file: str | None = Field(None, description="the changed file that invalidated the entry")
    depends_on: list[str] = Field(default_factory=list, description="files the cached answer relied on")


class CacheStoreResult(BaseModel):
    """The outcome of storing an answer."""

    stored: bool
    entry_id: str | None = None
    message: str
    depends_on: list[str] = Field(default_factory=list, description="files tracked for invalidation")


def register(server: MCPServer, services: Services) -> None:
    from mcp_router.cache.cache import register_watch_listener

    register_watch_listener()  # the server's background watcher evicts answers whose files change
    def cache():  # type: ignore[no-untyped-def]
        from mcp_router.cache import AnswerCache

        return services.extra("answer_cache", lambda: AnswerCache(services.app))

    @server.tool(title="Look up a cached answer", annotations=ToolAnnotations(read_only_hint=False,
                                                                             idempotent_hint=False),
                 description=LOOKUP_DESCRIPTION)
    @tool_errors
    async def cache_lookup(
        query: Annotated[str, Field(description="the user's question, as asked")],
        ctx: Context,
        tier: Annotated[str | None, Field(description="model tier or model name the answer is for, if it matters")] = None,
        system_prompt: Annotated[str | None, Field(description="system prompt, when answers depend on it")] = None,
    ) -> CacheLookupResult:
        await services.encoder_ready(ctx)
        res = await run_sync(lambda: cache().lookup(query, tier=tier, system_prompt=system_prompt))
        return CacheLookupResult(
            hit=res.hit, reason=res.reason, similarity=res.similarity, entry_id=res.entry_id, answer=res.answer,
            cached_question=res.cached_query, refused_rule=res.refused_rule, refused_token=res.refused_token,
            stale_file=res.stale_file, depends_on=res.dependencies,
        )

    @server.tool(title="Store an answer in the cache", annotations=ToolAnnotations(read_only_hint=False,
                                                                                  destructive_hint=False),
                 description=STORE_DESCRIPTION)
    @tool_errors
    async def cache_store(
        query: Annotated[str, Field(description="the question the answer responds to")],
        answer: Annotated[str, Field(description="the final answer text")],
        ctx: Context,
        files: Annotated[list[str] | None, Field(description="repository files the answer relied on")] = None,
        tier: Annotated[str | None, Field(description="model tier or model name that produced the answer")] = None,
        system_prompt: Annotated[str | None, Field(description="system prompt, when answers depend on it")] = None,
        is_error: Annotated[bool, Field(description="true if the answer is an error or failure report")] = False,
    ) -> CacheStoreResult:
        await services.encoder_ready(ctx)
        res = await run_sync(lambda: cache().store(query, answer, files or [], tier=tier,
                                                   system_prompt=system_prompt, is_error=is_error))
        deps = [d.path for d in res.dependencies]
        msg = (f"stored; it will be invalidated when any of {len(deps)} file(s) change" if res.stored and deps
               else "stored" if res.stored else res.reason)
        return CacheStoreResult(stored=res.stored, entry_id=res.entry_id, message=msg, depends_on=deps)

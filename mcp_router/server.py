"""The MCP server: a thin shell that registers each feature's tools over one shared `Services`.

Start-up stays light: nothing here imports torch, sentence-transformers or LanceDB. The model loads in a background
thread once the server runs, and tools that need it wait for it.
"""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from mcp_router import __version__
from mcp_router.app import App
from mcp_router.mcp_tools.common import Services

log = logging.getLogger("mcp_router.server")

INSTRUCTIONS = (
    "mcp-router answers four questions locally in milliseconds: where relevant code is (search_code), which model "
    "tier a request needs (route_query), which tools of a large catalogue matter (filter_tools), and whether an answer "
    "is already cached (cache_lookup / cache_store). Prefer search_code over grep when you do not know the exact "
    "identifier or file; use grep for exact strings."
)


class RouterServer(MCPServer):
    """`MCPServer` whose argument-validation errors read as one sentence, without pydantic's dump of the input."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            problems = "; ".join(
                f"`{'.'.join(str(p) for p in err['loc']) or 'arguments'}`: {err['msg']}" for err in exc.__cause__.errors()
            )
            raise ToolError(f"bad arguments for {name}: {problems}. Fix them (see the tool's input schema) "
                            "and call it again") from exc


def build_server(app: App, *, warm: bool = True, watch: bool = False) -> MCPServer:
    """Create the server for ``app``'s repository with every feature's tools registered."""
    services = Services(app)
    # The in-process watcher (writer when the index's lock is free, else a reader that retries); features that must
    # hear about changed files get it with services.extra("watch", ...) and call .add_listener(callback).
    background = None
    if watch and app.config.watch.get("in_server", True):
        from mcp_router.watch import BackgroundWatch

        background = services.extra("watch", lambda: BackgroundWatch(app))

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[Services]:
        if warm:
            services.start_warmup(delay=1.0)  # after the handshake; a tool that needs the model starts it at once
        if background is not None:
            background.start()
        try:
            yield services
        finally:
            import anyio

            if background is not None:
                await anyio.to_thread.run_sync(background.stop)
            # Exiting while the model loads aborts the process inside onnxruntime ("FATAL: exception not rethrown").
            await anyio.to_thread.run_sync(services.wait_warmup, 60.0)

    server = RouterServer("mcp-router", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan)
    from mcp_router.mcp_tools import cache, code, routing, tool_filter

    for feature in (code, tool_filter, cache, routing):
        feature.register(server, services)
    server.services = services  # type: ignore[attr-defined]  # for tests and the CLI
    return server


def configure_logging(debug: bool = False) -> None:
    """Logs go to stderr: on stdio, stdout is the protocol stream."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

"""The MCP server: a thin shell that registers each feature's tools over one shared `Services`.

Start-up stays light: nothing here imports torch, sentence-transformers or LanceDB. The model loads in a background
thread once the server runs, and tools that need it wait for it.
"""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

from mcp.server import MCPServer

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


def build_server(app: App, *, warm: bool = True, watch: bool = False) -> MCPServer:
    """Create the server for ``app``'s repository with every feature's tools registered."""
    services = Services(app)

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[Services]:
        if warm:
            services.start_warmup()
        yield services

    server = MCPServer("mcp-router", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan)
    from mcp_router.mcp_tools import code

    for feature in (code,):
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

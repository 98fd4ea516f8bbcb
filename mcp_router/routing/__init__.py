"""Query routing: send each coding query to the cheapest model tier that can answer it.

Public API: `Router` (``Router.from_app(app)`` or ``Router(load_registry(), encoder)``), `RouteDecision`,
`load_registry`, `Registry`.
"""

from mcp_router.routing.registry import Registry, load_registry
from mcp_router.routing.router import RouteDecision, Router

__all__ = ["Registry", "RouteDecision", "Router", "load_registry"]

"""``python -m mcp_router`` runs the CLI (same as the ``mcp-router`` console script)."""

from mcp_router.cli import main

main()

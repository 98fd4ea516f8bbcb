"""MCP tools, one module per feature. Each module exposes ``register(server, services)``.

Adding a feature's tools to the server is one import and one call in `mcp_router.server.build_server`.
"""

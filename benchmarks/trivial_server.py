"""The baseline of the start-up benchmark: the smallest useful `mcp` server, one tool, stdio.

`bench_server_startup.py` runs it exactly like `mcp-router serve` (a fresh process per measurement, through the SDK's
stdio client), so the ratio between the two isolates what mcp-router adds on top of Python + the `mcp` SDK.
"""

from mcp.server import MCPServer

server = MCPServer("trivial")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run()

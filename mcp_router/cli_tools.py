"""CLI commands of tool-catalogue filtering: ``tools index``, ``tools filter``, ``tools list``, ``tools refresh``.

Thin shells over `tools.index.ToolIndex`; the MCP tool ``filter_tools`` calls the same library functions, against the
same store (``<root>/.mcp-router``), so what is indexed here is what the server filters against.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from mcp_router.cli import CliState, console, err_console, pass_state


def _index(state: CliState) -> Any:
    from tools.index import open_tool_index

    app = state.app()
    return open_tool_index(app.db(), app.encoder, app.config.tools)


def _print_problems(problems: list[Any]) -> None:
    for p in problems[:20]:
        err_console.print(f"[yellow]skipped:[/] {p}", highlight=False, soft_wrap=True)
    if len(problems) > 20:
        err_console.print(f"[yellow]... and {len(problems) - 20} more skipped definitions[/]")


@click.group("tools")
def tools_group() -> None:
    """Index tool catalogues and pick the few tools a request needs."""


@tools_group.command("index")
@click.argument("catalogs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for each downstream server.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_state
def index_cmd(state: CliState, catalogs: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Index CATALOG files: MCP tools/list JSON, OpenAI tools arrays, or {"mcpServers": ...} files of servers to list.

    A listing file's server name is its file stem (filesystem.json -> filesystem). Only changed tools are re-embedded.
    """
    index = _index(state)
    report = index.index_catalogs(list(catalogs), timeout=timeout)
    total = len(index.snapshot())
    if as_json:
        click.echo(json.dumps({"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                               "removed": report.removed, "embedded": report.embedded, "tools_in_index": total,
                               "servers_fetched": report.servers_fetched,
                               "skipped": [str(p) for p in report.problems]}, indent=2))
        return
    t = Table(title="Tool index", header_style="bold")
    t.add_column("what")
    t.add_column("count", justify="right")
    for label, n in (("tools added", report.added), ("tools updated", report.updated),
                     ("tools unchanged (not re-embedded)", report.unchanged), ("tools removed", report.removed),
                     ("definitions skipped", len(report.problems)), ("tools in index", total)):
        t.add_row(label, str(n))
    console.print(t)
    if report.servers_fetched:
        console.print(f"listed live servers: {', '.join(report.servers_fetched)}")
    _print_problems(report.problems)


@tools_group.command("filter")
@click.argument("query")
@click.option("-k", "k", type=int, default=None, help="How many tools to return (default: setting `k`, 5).")
@click.option("--context", default=None, help="Recent conversation or previous tool calls, to sharpen the query.")
@click.option("--min-score", type=float, default=None, help="The bar below which the answer is 'no tool needed'.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer, with full tool definitions, as JSON.")
@pass_state
def filter_cmd(state: CliState, query: str, k: int | None, context: str | None, min_score: float | None,
               as_json: bool) -> None:
    """Show the few tools QUERY needs, best first, with why each matched (or that no tool is needed)."""
    from tools.index import response_dict

    index = _index(state)
    resp = index.filter(query, k=k, context=context, min_score=min_score)
    if as_json:
        click.echo(json.dumps(response_dict(resp), indent=2, ensure_ascii=False))
        return
    if resp.no_tool_needed:
        console.print(f"[bold]no tool needed[/]: best score {resp.best_score:.2f} is below the bar {resp.min_score:.2f}")
    t = Table(title=f"Tools for: {query}", header_style="bold")
    t.add_column("#", justify="right")
    t.add_column("server/tool")
    t.add_column("score", justify="right")
    t.add_column("why")
    t.add_column("~tokens", justify="right")
    for i, tool in enumerate(resp.tools, 1):
        t.add_row(str(i), f"{tool.server}/[bold]{tool.name}[/]", f"{tool.score:.2f}",
                  "pinned" if tool.pinned else tool.reason, str(tool.estimated_tokens))
    if resp.tools:
        console.print(t)
    console.print(f"{len(resp.tools)} of {resp.catalogue_tools} tools, ~{resp.returned_tokens} of "
                  f"~{resp.catalogue_tokens} tokens (saves ~{resp.tokens_saved}); filter {resp.filter_ms:.2f} ms, "
                  f"encode {resp.encode_ms:.1f} ms", highlight=False)


@tools_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON (full definitions).")
@pass_state
def list_cmd(state: CliState, as_json: bool) -> None:
    """List the indexed tools, by server."""
    from tools.catalog import estimate_tokens

    index = _index(state)
    tools = index.list_tools()
    if as_json:
        click.echo(json.dumps([{"server": t.server, "name": t.name, "definition": t.definition} for t in tools],
                              indent=2, ensure_ascii=False))
        return
    if not tools:
        console.print("no tools indexed yet: run `mcp-router tools index CATALOG.json`")
        return
    t = Table(title=f"{len(tools)} indexed tools", header_style="bold")
    t.add_column("server")
    t.add_column("tool")
    t.add_column("description")
    t.add_column("~tokens", justify="right")
    for tool in tools:
        desc = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        t.add_row(tool.server, tool.name, desc[:90] + ("…" if len(desc) > 90 else ""),
                  str(estimate_tokens(tool.definition)))
    console.print(t)


@tools_group.command("refresh")
@click.option("--force", is_flag=True, help="Re-list every server now, whatever its age.")
@pass_state
def refresh_cmd(state: CliState, force: bool) -> None:
    """Re-list downstream servers older than the TTL (and re-read changed catalogue files); re-embed what changed."""
    index = _index(state)
    r = index.refresh(force=force)
    console.print(f"added {r.added}, updated {r.updated}, removed {r.removed}, unchanged {r.unchanged}"
                  + (f"; listed {', '.join(r.servers_fetched)}" if r.servers_fetched else ""))
    _print_problems(r.problems)


def register(main: click.Group) -> None:
    main.add_command(tools_group)

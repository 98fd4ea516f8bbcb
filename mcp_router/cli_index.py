"""CLI commands of the code index: ``index``, ``search``, ``status``, ``serve`` and ``watch``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mcp_router.cli import CliState, console, err_console, pass_state
from mcp_router import codeindex


def _progress_bars() -> tuple[Any, Any]:
    # rich.progress and rich.syntax (pygments) load here, not at import: `serve` starts through this module.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
        TimeElapsedColumn, TimeRemainingColumn

    bars = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("•"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    tasks: dict[str, Any] = {}
    labels = {"scan": "files scanned", "parse": "files parsed", "embed": "chunks embedded"}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(labels.get(phase, phase), total=total or None)
        bars.update(tasks[phase], completed=done, total=total or None)

    return bars, report


@click.command("index")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again from scratch.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_state
def index_cmd(state: CliState, path: str | None, rebuild: bool, as_json: bool) -> None:
    """Index PATH (default: the current repository), incrementally."""
    if path:
        state["root"] = path
    app = state.app()
    bars, report = _progress_bars()
    if as_json or not err_console.is_terminal:
        stats = codeindex.reindex(app, rebuild=rebuild)
    else:
        with bars:
            stats = codeindex.reindex(app, rebuild=rebuild, progress=report)
    if as_json:
        click.echo(json.dumps(codeindex.stats_dict(stats), indent=2))
        return
    console.print(_summary_table(app, stats))
    for line in stats.errors[:10]:
        err_console.print(f"[yellow]warning:[/] {line}", highlight=False)
    if len(stats.errors) > 10:
        err_console.print(f"[yellow]... and {len(stats.errors) - 10} more unreadable paths[/]")


def _summary_table(app: Any, stats: Any) -> Table:
    t = Table(title=f"Indexed {app.root}", show_header=True, header_style="bold")
    t.add_column("what")
    t.add_column("count", justify="right")
    for lang, n in sorted(stats.languages.items(), key=lambda kv: -kv[1]):
        t.add_row(f"files: {lang}", str(n))
    for method, n in sorted(stats.methods.items()):
        label = {"ast": "tree-sitter", "markdown": "markdown headings", "lines": "line windows (fallback)"}.get(method, method)
        t.add_row(f"chunked by {label}", str(n))
    t.add_row("files unchanged (skipped by size+mtime)", str(stats.files_unchanged))
    t.add_row("files re-indexed", str(stats.files_indexed))
    t.add_row("files removed", str(stats.files_deleted))
    t.add_row("chunks in index", str(stats.chunks_total))
    t.add_row("chunks embedded", str(stats.chunks_embedded))
    t.add_row("chunks reused (by content hash)", str(stats.chunks_reused))
    for reason, n in sorted(stats.skipped.items()):
        t.add_row(f"skipped: {reason}", str(n))
    if stats.decode_replaced:
        t.add_row("non-UTF-8 files (decoded with replacement)", str(stats.decode_replaced))
    t.add_row("time", f"{stats.seconds:.1f} s")
    if stats.chunks_embedded:
        t.add_row("embedding speed", f"{stats.chunks_per_second:.1f} chunks/s")
    return t


@click.command("search")
@click.argument("query")
@click.option("--path", "path_glob", default=None, help="Only paths matching this glob (e.g. 'src/**/*.py').")
@click.option("--lang", "language", default=None, help="Only this language (e.g. python, go).")
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 100), help="Results per page.")
@click.option("--offset", default=0, type=click.IntRange(0), help="Skip this many results (pagination).")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", show_default=True)
@click.option("--no-refresh", is_flag=True, help="Do not reindex files changed since the last run before searching.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_state
def search_cmd(state: CliState, query: str, path_glob: str | None, language: str | None, k: int, offset: int,
               mode: str, no_refresh: bool, as_json: bool) -> None:
    """Search the code index (hybrid keyword + semantic)."""
    app = state.app()
    result = codeindex.search_code(app, query, k=k, offset=offset, path_glob=path_glob, language=language, mode=mode,
                                   refresh=not no_refresh)
    if as_json:
        click.echo(json.dumps(result.model_dump(), indent=2))
        return
    if not result.results:
        console.print(f"[yellow]no results[/] for {query!r}. {result.freshness}")
        return
    from rich.syntax import Syntax

    for hit in result.results:
        title = f"[bold cyan]{hit.path}[/]:{hit.start_line}-{hit.end_line}"
        if hit.symbol:
            title += f"  [magenta]{hit.symbol}[/] ({hit.kind})"
        console.print(f"{title}  [dim]score {hit.score:.3f} · {hit.match}[/]")
        console.print(Syntax(hit.code, _lexer(hit.language), line_numbers=True, start_line=hit.start_line,
                             word_wrap=False, theme="ansi_dark"))
    more = f" · next page: --offset {result.next_offset}" if result.next_offset is not None else ""
    console.print(f"[dim]{result.freshness}{more}[/]")


def _lexer(language: str) -> str:
    return {"cpp": "cpp", "csharp": "csharp", "tsx": "tsx", "bash": "bash", "text": "text"}.get(language, language)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_state
def status_cmd(state: CliState, as_json: bool) -> None:
    """Show the index: root, model, counts, age, pending changes, watcher and disk size."""
    app = state.app()
    st = codeindex.index_status(app)
    if as_json:
        click.echo(json.dumps(st.model_dump(), indent=2))
        return
    t = Table(title="mcp-router status", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for key, value in st.model_dump().items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value[:10])) + (" ..." if len(value) > 10 else "") if value else "-"
        t.add_row(key.replace("_", " "), str(value))
    console.print(t)


@click.command("serve")
@click.option("--http", "http", default=None, metavar="HOST:PORT", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.")
@click.option("--no-watch", is_flag=True, help="Do not run the file watcher inside the server.")
@click.option("--root", "serve_root", type=click.Path(file_okay=False),
              help="Repository to serve (default: $CLAUDE_PROJECT_DIR, then the repository of the working directory).")
@pass_state
def serve_cmd(state: CliState, http: str | None, no_watch: bool, serve_root: str | None) -> None:
    """Run the MCP server (stdio by default) for Claude Code, Cursor or any MCP client."""
    from mcp_router.config import root_from_env
    from mcp_router.server import build_server, configure_logging

    configure_logging(state.get("debug", False))
    # An explicit --root (after `serve` or before it) is served as given; otherwise CLAUDE_PROJECT_DIR, then the cwd.
    explicit = serve_root or state.get("root")
    state["root"] = str(Path(explicit).expanduser().resolve()) if explicit else str(root_from_env(None))
    app = state.app()
    server = build_server(app, watch=not no_watch)
    if http:
        host, _, port = http.rpartition(":")
        if not port.isdigit():
            raise click.BadParameter("use HOST:PORT, e.g. 127.0.0.1:8765", param_hint="--http")
        server.run(transport="streamable-http", host=host or "127.0.0.1", port=int(port))
    else:
        server.run()


def register(main: click.Group) -> None:
    for cmd in (index_cmd, search_cmd, status_cmd, serve_cmd):
        main.add_command(cmd)

"""The `mcp-router` command line: thin click commands over library calls, rendered with rich.

Every command works on the repository containing the working directory (see `mcp_router.config.find_root`);
``--root`` overrides it. Errors print as one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from indexer.errors import UserError

console = Console()
err_console = Console(stderr=True)


class _Group(click.Group):
    """Prints `UserError` (and other failures) as one red line unless ``--debug`` was given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing was left half-written; run the command again to finish")
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001
            if (ctx.obj or {}).get("debug"):
                raise
            msg = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc} (rerun with --debug for details)"
            err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            sys.exit(1)


class CliState(dict):
    """``ctx.obj``: the global flags, and the `App` built from them on first use."""

    def app(self, **overrides: Any) -> Any:
        from mcp_router.app import App
        from mcp_router.config import find_root

        root = Path(self["root"]).resolve() if self.get("root") else find_root()
        if self.get("root") and not root.is_dir():
            raise UserError(f"{root} is not a directory: give an existing repository folder")
        return App(root, {**self.get("overrides", {}), **overrides})


pass_state = click.make_pass_decorator(CliState)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False), help="Repository root (default: nearest folder with .git or .mcp-router).")
@click.option("--model", default=None, help="Embedding model name or local folder (default: the embedded all-MiniLM-L6-v2).")
@click.option("--index-dir", default=None, help="Where the index lives (default: <root>/.mcp-router).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="mcp-router")
@click.pass_context
def main(ctx: click.Context, root: str | None, model: str | None, index_dir: str | None, debug: bool) -> None:
    """mcp-router: local code search, model routing, tool filtering and an answer cache for coding assistants."""
    ctx.obj = CliState(root=root, debug=debug, overrides={"model": model, "index_dir": index_dir})
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _register_features() -> None:
    """Each feature's commands live in their own module with a ``register(main)`` function."""
    import importlib

    for module in (
        "mcp_router.cli_index",
        "mcp_router.cli_watch",
        "mcp_router.cli_tools",
        "mcp_router.cli_cache",
        "mcp_router.cli_routing",
    ):
        importlib.import_module(module).register(main)


_register_features()

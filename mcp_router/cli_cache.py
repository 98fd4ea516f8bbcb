"""`mcp-router cache ...`: clear, stats and invalidate the answer cache (thin commands over `AnswerCache`)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from mcp_router.cli import console, pass_state


def _cache(state: Any) -> Any:
    from mcp_router.cache import AnswerCache

    return AnswerCache(state.app())


def register(main: click.Group) -> None:
    from mcp_router.cache.cache import register_watch_listener

    register_watch_listener()  # `mcp-router watch` evicts answers whose files change
    @main.group("cache")
    def cache_group() -> None:
        """The semantic answer cache: stats, clear, invalidate."""

    @cache_group.command("stats")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @pass_state
    def stats_cmd(state: Any, as_json: bool) -> None:
        """Show entries, hits, misses by reason, hit rate and the estimated tokens and cost saved."""
        cache = _cache(state)
        s = cache.stats()
        if as_json:
            click.echo(json.dumps(s.to_dict(), indent=2))
            return
        table = Table(title=f"Answer cache of {cache.root}", show_header=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("entries", f"{s.entries:,}")
        table.add_row("lookups", f"{s.lookups:,}")
        table.add_row("hits (exact / semantic)", f"{s.hits:,} ({s.hits_exact:,} / {s.hits_semantic:,})")
        table.add_row("hit rate", f"{s.hit_rate:.1%}")
        for reason, n in s.misses.items():
            table.add_row(f"misses: {reason.replace('_', ' ')}", f"{n:,}")
        table.add_row("stores (errors refused)", f"{s.stores:,} ({s.refused_stores.get('error', 0):,})")
        table.add_row("invalidated / evicted", f"{s.invalidated:,} / {s.evicted:,}")
        table.add_row("tokens saved (est.)", f"{s.tokens_saved:,}")
        table.add_row("cost saved (est.)",
                      f"${s.cost_saved_usd:,.4f} at ${cache.settings.cost_per_1k_tokens}/1k tokens")
        console.print(table)

    @cache_group.command("clear")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @pass_state
    def clear_cmd(state: Any, as_json: bool) -> None:
        """Delete every cached answer and reset the counters."""
        n = _cache(state).clear()
        if as_json:
            click.echo(json.dumps({"deleted": n}))
        else:
            console.print(f"deleted {n:,} cached answer(s)")

    @cache_group.command("invalidate")
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @pass_state
    def invalidate_cmd(state: Any, paths: tuple[str, ...], as_json: bool) -> None:
        """Delete cached answers that depend on PATH (a file or a folder, relative to the repository root)."""
        n = _cache(state).invalidate(paths)
        if as_json:
            click.echo(json.dumps({"invalidated": n, "paths": list(paths)}))
        else:
            console.print(f"invalidated {n:,} cached answer(s) depending on {', '.join(paths)}")

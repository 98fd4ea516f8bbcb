"""CLI command ``mcp-router watch``: keep the code index fresh while you work, with a live status line."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime
from typing import Any

import click
from rich.live import Live
from rich.text import Text

from mcp_router.cli import CliState, err_console, pass_state


def status_line(st: Any, now: float | None = None) -> Text:
    """One line: state, pending batch, last update, chunks re-embedded / reused (a `WatchStatus`)."""
    now = now or time.time()
    colour = {"watching": "green", "indexing": "yellow", "reconciling": "yellow"}.get(st.state, "red")
    line = Text()
    line.append("● ", style=colour)
    line.append(st.state, style=f"bold {colour}")
    if st.work and st.state in ("indexing", "reconciling"):
        line.append(f" ({st.work})", style="yellow")
    line.append(f" · pending {st.pending}")
    if st.last_update:
        ago = now - st.last_update
        when = f"{ago:.0f}s ago" if ago < 90 else datetime.fromtimestamp(st.last_update).strftime("%H:%M:%S")
        line.append(f" · last update {when} ({st.last_batch_files} files, {st.last_batch_seconds:.2f}s)")
    else:
        line.append(" · no update yet")
    line.append(f" · batches {st.batches} · chunks re-embedded {st.chunks_embedded}, reused {st.chunks_reused}")
    if st.observer == "polling":
        line.append(" · polling", style="dim")
    if st.last_error:
        line.append(f" · {st.last_error}", style="red")
    return line


@click.command("watch")
@click.argument("path", required=False, type=click.Path(file_okay=False, exists=True))
@click.option("--poll", is_flag=True, help="Poll the file system instead of native events (network mounts, some containers).")
@click.option("--debounce", "debounce_ms", type=click.IntRange(0, 60_000), default=None, metavar="MS",
              help="Quiet period that closes a batch of changes (default 300 ms).")
@pass_state
def watch_cmd(state: CliState, path: str | None, poll: bool, debounce_ms: int | None) -> None:
    """Keep the index of PATH (default: the current repository) fresh: reconcile, then follow file changes.

    One watcher per index: a second one reports the first and exits. Stop with Ctrl-C or SIGTERM; the running
    batch finishes or is abandoned whole.
    """
    from mcp_router.watch import watcher_for

    if path:
        state["root"] = path
    app = state.app()
    watcher = watcher_for(app, poll=poll or None, debounce_ms=debounce_ms)
    watcher.start(lock_wait=60.0)  # waits for a one-off `mcp-router index`; raises WatcherRunning (a UserError: one line, exit 1) when another watcher owns the index

    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] > 1:
            # A second Ctrl-C: leave now. The kernel releases the lock; committed batches are intact.
            os._exit(130)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if err_console.is_terminal:
            _live(watcher, stop)
        else:
            _plain(watcher, stop)
    finally:
        err_console.print("[dim]stopping: finishing the current batch...[/]" if watcher.snapshot().state
                          in ("indexing", "reconciling") else "[dim]stopping[/]")
        ended = watcher.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    st = watcher.snapshot()
    if not ended:
        err_console.print("[yellow]the current batch was abandoned; the index is consistent and the next run redoes it[/]")
    err_console.print(f"stopped: {st.batches} batches, {st.files_indexed} files indexed, {st.files_deleted} removed, "
                      f"{st.chunks_embedded} chunks re-embedded, {st.chunks_reused} reused", highlight=False)


def _live(watcher: Any, stop: threading.Event) -> None:
    # Redraw on change, or once a second for the "last update" age: no refresh thread spinning while idle.
    with Live(status_line(watcher.snapshot()), console=err_console, auto_refresh=False, transient=False) as live:
        while not stop.is_set():
            live.update(status_line(watcher.snapshot()), refresh=True)
            stop.wait(1.0 if watcher.ready else 0.25)


def _plain(watcher: Any, stop: threading.Event) -> None:
    """Not a terminal (a service, a test): one line when ready and one per batch."""
    seen = -1
    announced = False
    while not stop.is_set():
        st = watcher.snapshot()
        if watcher.ready and not announced:
            announced = True
            err_console.print(f"watching {st.root} ({st.observer} events)", highlight=False, soft_wrap=True)
        if announced and len(watcher.history) and st.batches != seen:
            seen = st.batches
            if st.batches:
                err_console.print(status_line(st), soft_wrap=True)
        stop.wait(0.5)


def register(main: click.Group) -> None:
    main.add_command(watch_cmd)

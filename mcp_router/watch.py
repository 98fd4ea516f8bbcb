"""Watch-mode wiring for the CLI and the MCP server.

- `watch_settings` reads ``[tool.mcp-router.watch]`` (validated, overridable by flags);
- `watcher_for` builds an `indexer.watcher.Watcher` for an `App`, with every registered ``on_changed`` listener;
- `BackgroundWatch` is the server's watcher: it runs in a background thread, becomes the index's writer when the
  writer lock is free and an index exists, and otherwise stays a reader and retries now and then (so when the editor
  window that owned the watcher closes, another server takes over).

Listeners: a feature that must hear about changed files (the answer cache) calls
``add_listener_factory(lambda app: callback)`` at import; every watcher built afterwards calls
``callback(paths)`` after each batch with the root-relative paths whose indexed content changed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from indexer.errors import UserError
from indexer.store import CodeStore
from indexer.watcher import OnChanged, Watcher, WatcherRunning
from mcp_router.app import App

log = logging.getLogger("mcp_router.watch")

_LISTENER_FACTORIES: list[Callable[[App], OnChanged]] = []


def add_listener_factory(factory: Callable[[App], OnChanged]) -> None:
    """Register ``factory(app) -> callback(paths)``; idempotent for the same factory object."""
    if factory not in _LISTENER_FACTORIES:
        _LISTENER_FACTORIES.append(factory)


@dataclass
class WatchSettings:
    """``[tool.mcp-router.watch]``: ``debounce_ms``, ``max_delay_ms``, ``poll``, ``poll_interval_ms``, ``in_server``."""

    debounce_ms: int = 300
    max_delay_ms: int = 5000
    poll: bool = False
    poll_interval_ms: int = 1000
    in_server: bool = True
    retry_s: float = 30.0


def watch_settings(app: App, *, poll: bool | None = None, debounce_ms: int | None = None) -> WatchSettings:
    """The watch settings of ``app``'s config, with flag overrides; `UserError` for unknown keys or bad values."""
    table = {k.replace("-", "_"): v for k, v in dict(app.config.watch).items()}
    out = WatchSettings()
    for key, value in table.items():
        if not hasattr(out, key):
            known = ", ".join(WatchSettings.__dataclass_fields__)
            raise UserError(f"unknown setting `watch.{key}` in the mcp-router config: use one of {known}")
        default = getattr(out, key)
        ok = isinstance(value, bool) if isinstance(default, bool) else \
            isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if not ok:
            raise UserError(f"bad setting `watch.{key}` = {value!r}: expected "
                            f"{'true or false' if isinstance(default, bool) else 'a non-negative number'}")
        setattr(out, key, value)
    if poll is not None:
        out.poll = poll or out.poll
    if debounce_ms is not None:
        out.debounce_ms = debounce_ms
    return out


def watcher_for(app: App, *, poll: bool | None = None, debounce_ms: int | None = None,
                on_changed: list[OnChanged] | None = None) -> Watcher:
    """A (not yet started) watcher of ``app``'s repository with its configured timings and all listeners."""
    from mcp_router.codeindex import settings_for

    ws = watch_settings(app, poll=poll, debounce_ms=debounce_ms)
    listeners = [factory(app) for factory in _LISTENER_FACTORIES] + list(on_changed or [])
    return Watcher(app.root, settings_for(app), app.encoder, debounce=ws.debounce_ms / 1000,
                   max_delay=max(ws.max_delay_ms, ws.debounce_ms, 1) / 1000, poll=ws.poll,
                   poll_interval=max(ws.poll_interval_ms, 50) / 1000, on_changed=listeners)


class BackgroundWatch:
    """The MCP server's in-process watcher (see the module docstring). `start` never blocks; `stop` is clean."""

    def __init__(self, app: App, retry_s: float | None = None) -> None:
        self.app = app
        self.settings = watch_settings(app)
        self.retry_s = retry_s if retry_s is not None else self.settings.retry_s
        self.watcher: Watcher | None = None
        self.note = "not started"
        self._listeners: list[OnChanged] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add_listener(self, callback: OnChanged) -> None:
        """Call ``callback(paths)`` after every batch of this server's watcher (now or once it starts)."""
        with self._lock:
            self._listeners.append(callback)
            if self.watcher is not None:
                self.watcher.on_changed.append(callback)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mcp-router-watch-starter", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if CodeStore.read_meta(self.app.index_dir) is None:
                # Building a first index takes minutes: that stays an explicit step (`mcp-router index`, reindex).
                self.note = "no code index yet; the watcher starts once one exists"
            else:
                with self._lock:
                    watcher = watcher_for(self.app, on_changed=list(self._listeners))
                    try:
                        watcher.start()
                    except WatcherRunning as exc:
                        self.note = f"reader only: {exc}"
                        watcher = None
                    except Exception as exc:  # noqa: BLE001 - the server must keep serving without a watcher
                        self.note = f"watcher failed to start: {exc}"
                        log.warning("%s", self.note)
                        watcher = None
                    if watcher is not None:
                        self.watcher = watcher
                        self.note = "watching"
                        log.info("watching %s for changes", self.app.root)
                        return
            self._stop.wait(self.retry_s)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self.watcher is not None:
                self.watcher.stop(grace=min(5.0, timeout), timeout=timeout)

    def describe(self) -> dict[str, Any]:
        w = self.watcher
        return {"note": self.note, **(w.snapshot().to_dict() if w else {})}

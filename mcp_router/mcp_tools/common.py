"""What every MCP tool module shares: `Services` (the lazily warmed app) and `tool_errors` (error policy)."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from typing import Any, Awaitable, Callable, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from indexer.encoder import Encoder
from indexer.errors import UserError
from mcp_router.app import App

log = logging.getLogger("mcp_router.server")
T = TypeVar("T")


class Services:
    """The app behind the server. The encoder loads in a background thread started after the handshake.

    Tools call `encoder_ready` to wait for it (reporting progress), so a call made before the model is ready waits
    instead of failing.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._warm_thread: threading.Thread | None = None
        self._warm_error: BaseException | None = None
        self._warm_done = threading.Event()
        self._extras: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start_warmup(self) -> None:
        """Load the model in the background (idempotent)."""
        with self._lock:
            if self._warm_thread is not None:
                return
            self._warm_thread = threading.Thread(target=self._warm, name="mcp-router-warmup", daemon=True)
            self._warm_thread.start()

    def _warm(self) -> None:
        try:
            self.app.encoder.load()
        except BaseException as exc:  # noqa: BLE001 - reported to the first tool that needs the model
            self._warm_error = exc
            log.error("model load failed: %s", exc)
        finally:
            self._warm_done.set()

    async def encoder_ready(self, ctx: Context | None = None) -> Encoder:
        """The loaded encoder; waits (with progress notifications) while it is still loading."""
        self.start_warmup()
        waited = 0.0
        while not self._warm_done.is_set():
            if ctx is not None:
                await ctx.report_progress(0, None, "loading the embedding model")
            await anyio.sleep(0.25)
            waited += 0.25
        if self._warm_error is not None:
            raise UserError(f"the embedding model could not be loaded: {self._warm_error}")
        return self.app.encoder

    def extra(self, key: str, factory: Callable[[], T]) -> T:
        """A per-server singleton for a feature (e.g. the router or the tool index), built on first use."""
        with self._lock:
            if key not in self._extras:
                self._extras[key] = factory()
            return self._extras[key]


def tool_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn `UserError` into a `ToolError` the model can read; hide and log anything unexpected.

    Wrap every tool with it (under ``@server.tool``). The wrapper keeps the signature, so the schema is unchanged.
    """

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except UserError as exc:
            raise ToolError(str(exc)) from None
        except Exception:  # noqa: BLE001
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(
                f"internal error in {fn.__name__}; the details are in the server log (stderr). "
                "Retry once; if it fails again, tell the user."
            ) from None

    wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return wrapper


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking library code (LanceDB, encoding) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))

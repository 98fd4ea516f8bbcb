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
        self._warm_wanted = threading.Event()  # set: load now (a tool needs the model, or the delay is over)
        self._warm_cancelled = False
        self._extras: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._after_warmup: list[Callable[[], Any]] = []

    def after_warmup(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the warm-up thread once the model is loaded (e.g. build the route model), so the first tool
        call that needs it does not pay for it. Failures are logged; the tool that needs the part retries itself."""
        self._after_warmup.append(fn)

    def start_warmup(self, delay: float = 0.0) -> None:
        """Load the model in the background (idempotent).

        ``delay``: start loading only after this many seconds, so the load (imports and ONNX session set-up hold the
        GIL) does not compete with the client's handshake; a later call with no delay (any tool that needs the
        model) starts it at once.
        """
        if delay <= 0:
            self._warm_wanted.set()
        with self._lock:
            if self._warm_thread is not None:
                return
            self._warm_thread = threading.Thread(target=self._warm, args=(delay,), name="mcp-router-warmup",
                                                 daemon=True)
            self._warm_thread.start()

    def wait_warmup(self, timeout: float) -> None:
        """At shutdown: cancel a load not begun yet, else wait for it (exiting under it aborts the process)."""
        self._warm_cancelled = True
        self._warm_wanted.set()
        thread = self._warm_thread
        if thread is not None:
            thread.join(timeout)

    def _warm(self, delay: float = 0.0) -> None:
        self._warm_wanted.wait(delay)
        if self._warm_cancelled:
            self._warm_done.set()
            return
        try:
            self.app.encoder.load()
        except BaseException as exc:  # noqa: BLE001 - reported to the first tool that needs the model
            self._warm_error = exc
            log.error("model load failed: %s", exc)
        finally:
            self._warm_done.set()
        for fn in self._after_warmup if self._warm_error is None else ():
            if self._warm_cancelled:
                break
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - the tool that needs it will raise it properly
                log.warning("background preparation failed: %s", exc)

    async def encoder_ready(self, ctx: Context | None = None) -> Encoder:
        """The loaded encoder; waits (with progress notifications) while it is still loading."""
        self.start_warmup()
        waited = 0.0
        while not self._warm_done.is_set():
            if ctx is not None:
                # Progress must increase with every notification (MCP spec); stay below 1 so a tool's own progress
                # that follows (reindex counts from 1) keeps increasing too.
                await ctx.report_progress(waited / (waited + 10.0), None,
                                          f"loading the embedding model ({waited:.0f}s)")
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

    # eval_str: tool modules use `from __future__ import annotations`; the SDK reads this signature as is, so string
    # annotations must be resolved here, in the tool module's globals, or the output schema is silently dropped.
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking library code (LanceDB, encoding) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))

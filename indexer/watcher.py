"""Watch mode: keep the code index in step with the working tree.

A `Watcher` holds the index's writer lock (role ``watch``) for its whole life. It starts a watchdog observer, runs one
full incremental `index_repo` (the *reconcile*: picks up whatever changed while nothing was watching), then turns file
system events into small incremental runs:

- events are filtered by the indexer's own ignore rules *before* they are queued, so ``.git/``, ignored folders,
  secrets and the index folder itself cost one dictionary lookup and never cause work;
- the paths of the events go into a pending set; a quiet period (``debounce``, default 0.3 s) with no new event
  closes the batch, so a ``git checkout`` touching hundreds of files becomes one `index_repo(paths=...)` run;
  ``max_delay`` bounds how long a never-quiet stream of events can postpone a batch;
- a directory event (created, deleted, moved) queues the directory; when the batch runs, it expands to every file
  under it on disk *and* every indexed file under it, so moved or deleted trees leave no orphan chunks;
- an editor-style save (write a temp file, rename it over the original) is a move event whose destination is the
  original file; the temp path no longer exists when the batch runs and costs nothing;
- editing a ``.gitignore`` drops the cached rules and reconciles that folder.

Query-time freshness calls `Watcher.flush(paths)`: the given paths (from a cheap mtime scan) join the pending set and
the batch runs at once, without waiting for the quiet period. After each batch the ``on_changed`` callbacks receive
the paths whose indexed content changed (the answer cache uses it to invalidate).

Stopping finishes the running batch, or abandons it between two of `index_repo`'s atomic commits after a grace
period; nothing is ever half-written.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import warnings
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from watchdog.events import FileSystemEventHandler

from indexer.encoder import Encoder
from indexer.errors import UserError
from indexer.index import IndexSettings, IndexStats, index_repo
from indexer.lock import WriterLock, lock_holder
from indexer.store import CodeStore
from indexer.walker import ALWAYS_SKIP_DIRS, IgnoreRules, is_denied

log = logging.getLogger("indexer.watcher")

DEFAULT_DEBOUNCE_S = 0.3
DEFAULT_MAX_DELAY_S = 5.0
DEFAULT_POLL_INTERVAL_S = 1.0
STATUS_FILE = "watch.json"

OnChanged = Callable[[list[str]], None]


class WatcherRunning(UserError):
    """Another process (or another `Watcher` in this one) already holds the index's writer lock."""


class BatchAbandoned(Exception):
    """Raised inside `index_repo` (through its progress hook) to stop between two atomic commits."""


@dataclass
class BatchRecord:
    """One finished incremental update."""

    kind: str  # "reconcile" or "batch"
    paths: list[str]  # what was asked for (root-relative; [] for a full reconcile)
    changed: list[str]  # files whose indexed content changed (added, modified, deleted)
    files_indexed: int
    files_deleted: int
    chunks_embedded: int
    chunks_reused: int
    started: float
    seconds: float
    error: str | None = None


@dataclass
class WatchStatus:
    """A snapshot of what the watcher is doing (the CLI's live line, `mcp-router status`, tests)."""

    root: str
    state: str = "starting"  # starting | reconciling | watching | indexing | stopping | stopped
    observer: str = "native"  # native (inotify/FSEvents/...) or polling
    pending: int = 0  # paths and folders waiting for the next batch
    batches: int = 0  # incremental batches done (the reconcile not included)
    last_update: float | None = None  # wall-clock time the index last changed or was confirmed current
    last_batch_files: int = 0
    last_batch_seconds: float = 0.0
    files_indexed: int = 0
    files_deleted: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    events_queued: int = 0
    events_ignored: int = 0
    last_error: str | None = None
    work: str = ""  # what the running batch is doing, e.g. "embed 64/300"
    pid: int = field(default_factory=os.getpid)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The watchers running in this process, by index folder: query-time freshness flushes them instead of competing for
# the writer lock they hold.
_ACTIVE: dict[Path, "Watcher"] = {}
_ACTIVE_LOCK = threading.Lock()


def active_watcher(index_dir: Path) -> "Watcher | None":
    """The running watcher of ``index_dir`` in this process, if any."""
    with _ACTIVE_LOCK:
        return _ACTIVE.get(Path(index_dir).resolve())


def read_watch_status(index_dir: Path) -> dict[str, Any] | None:
    """The status a watcher (maybe in another process) last wrote, or None when no watcher holds the lock."""
    holder = lock_holder(index_dir)
    if not holder or holder.get("role") != "watch":
        return None
    try:
        return json.loads((Path(index_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {"pid": holder.get("pid"), "state": "starting"}


class _Filter:
    """The indexer's ignore rules, answered from a cache, for paths reported by the observer."""

    def __init__(self, root: Path, settings: IndexSettings) -> None:
        self.root = root
        self.rules = IgnoreRules(root, settings.ignore, extra_dirs=[settings.index_dir])
        try:
            self.index_rel: str | None = settings.index_dir.resolve().relative_to(root).as_posix()
        except ValueError:
            self.index_rel = None  # the index lives outside the tree: its writes raise no events here
        self._dirs: dict[str, bool] = {}

    def forget(self, rel_dir: str) -> None:
        """After the ``.gitignore`` of ``rel_dir`` changed: re-read it, and re-decide every folder."""
        self.rules.forget(rel_dir)
        self._dirs.clear()

    def dir_ignored(self, rel: str) -> bool:
        """Whether a folder (or any of its parents) is ignored; ``""`` is the root."""
        if not rel:
            return False
        hit = self._dirs.get(rel)
        if hit is None:
            parent = rel.rpartition("/")[0]
            hit = self.dir_ignored(parent) or self.rules.ignored(rel, is_dir=True) or is_denied(rel + "/")
            self._dirs[rel] = hit
        return hit

    def ignored(self, rel: str, is_dir: bool) -> bool:
        head = rel.split("/", 1)[0]
        if head in ALWAYS_SKIP_DIRS:
            return True
        if self.index_rel is not None and (rel == self.index_rel or rel.startswith(self.index_rel + "/")):
            return True
        if is_dir:
            return self.dir_ignored(rel)
        parent = rel.rpartition("/")[0]
        return self.dir_ignored(parent) or self.rules.ignored(rel) or is_denied(rel)


class Watcher:
    """Keeps one repository's index fresh. `start` it, `stop` it (or use it as a context manager).

    ``debounce``: seconds without events that close a batch. ``max_delay``: the longest a batch waits under a
    continuous stream of events. ``poll``: use a polling observer (file systems without native events); it scans
    every ``poll_interval`` seconds, skipping ignored folders. ``on_changed``: callbacks given the root-relative paths
    whose indexed content changed after each batch.
    """

    def __init__(
        self,
        root: Path,
        settings: IndexSettings,
        encoder: Encoder,
        *,
        debounce: float = DEFAULT_DEBOUNCE_S,
        max_delay: float = DEFAULT_MAX_DELAY_S,
        poll: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        on_changed: Iterable[OnChanged] = (),
        history: int = 50,
    ) -> None:
        if debounce < 0 or max_delay <= 0 or poll_interval <= 0:
            raise UserError("watch timings must be positive: check debounce, max_delay and poll_interval")
        self.root = root.resolve()
        if not self.root.is_dir():
            raise UserError(f"{self.root} is not a directory: pass the repository folder to watch")
        self.settings = settings
        self.encoder = encoder
        self.debounce = debounce
        self.max_delay = max(max_delay, debounce)
        self.poll = poll
        self.poll_interval = poll_interval
        self.on_changed: list[OnChanged] = list(on_changed)
        self.history: deque[BatchRecord] = deque(maxlen=history)
        self.status = WatchStatus(root=str(self.root), observer="polling" if poll else "native")

        self._filter = _Filter(self.root, settings)
        self._root_str = str(self.root)
        self._lock = WriterLock(settings.index_dir, role="watch")
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._pending_dirs: set[str] = set()
        self._first_event = 0.0
        self._last_event = 0.0
        self._flush_now = False
        self._taken = 0  # batches taken from the pending set (the reconcile is number 1)
        self._done = 0  # batches finished
        self._running = False
        self._ready = threading.Event()
        self._stopping = False
        self._abandon = False
        self._observer: Any = None
        self._worker: threading.Thread | None = None
        self._store: CodeStore | None = None
        self._failures = 0
        self._rules_changed = False
        self._index_mutex = threading.Lock()  # one index_repo run at a time in this process

    # -- life cycle -----------------------------------------------------------------------------------------
    def start(self, lock_wait: float = 0.0) -> "Watcher":
        """Take the writer lock, start the observer, and reconcile in the background (see `wait_ready`).

        Raises `WatcherRunning` when another watcher holds the lock, `UserError` when a one-off indexer still holds
        it after ``lock_wait`` seconds.
        """
        if not self._lock.acquire():
            # Another watcher never lets go: say so at once. A one-off indexer (`mcp-router index`) finishes: wait.
            holder = lock_holder(self.settings.index_dir) or {}
            if holder.get("role") == "watch" or not self._lock.acquire(wait=lock_wait):
                holder = lock_holder(self.settings.index_dir) or holder
        if not self._lock.held:
            pid = holder.get("pid", "?")
            if holder.get("role") == "watch":
                raise WatcherRunning(
                    f"a watcher is already running on {self.settings.index_dir} (pid {pid}); it keeps the index fresh, "
                    "so there is nothing to do here (stop it first to restart it)"
                )
            raise WatcherRunning(
                f"another process is writing {self.settings.index_dir} (pid {pid}, {holder.get('role', 'index')}): "
                "wait for it to finish, then start the watcher again"
            )
        try:
            self._start_observer()
        except BaseException:
            self._lock.release()
            raise
        with _ACTIVE_LOCK:
            _ACTIVE[self.settings.index_dir.resolve()] = self
        self._worker = threading.Thread(target=self._work, name="mcp-router-watch", daemon=True)
        self._worker.start()
        return self

    def _start_observer(self) -> None:
        from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileAttribEvent,
                                     FileClosedEvent, FileCreatedEvent, FileDeletedEvent, FileModifiedEvent,
                                     FileMovedEvent)

        # Only events that can change content: no opened / closed-without-write events (the indexer's own reads
        # would otherwise wake it up) and no folder "modified" events (the file events already say what changed).
        kinds = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileAttribEvent, FileDeletedEvent,
                 FileMovedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
        handler = _Handler(self)
        # watchdog warns when a folder moved inside the tree is re-watched under its new name; it handles that itself.
        warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning,
                                module="watchdog.observers.inotify")
        if not self.poll:
            observer = _pruning_inotify_observer(self._prune_watch) or _stock_observer()
            try:
                observer.schedule(handler, self._root_str, recursive=True, event_filter=kinds)
                observer.start()
                self._observer = observer
                return
            except OSError as exc:
                # Typically the inotify watch limit on a huge tree: polling still works, just slower.
                log.warning("native file events unavailable (%s); falling back to polling", exc)
                self.status.last_error = (f"native file events unavailable ({exc.strerror or exc}); polling instead. "
                                          "Raise fs.inotify.max_user_watches to use native events")
                try:
                    observer.stop()
                except Exception:  # noqa: BLE001
                    pass
        from watchdog.observers.polling import PollingObserverVFS

        observer = PollingObserverVFS(os.stat, self._poll_listdir, polling_interval=self.poll_interval)
        observer.schedule(handler, self._root_str, recursive=True, event_filter=kinds)
        observer.start()
        self._observer = observer
        self.status.observer = "polling"

    def _restart_observer(self) -> None:
        """New watches for the new ignore rules: start the new observer before stopping the old one, so no event
        falls in between (duplicates are harmless: the pending set is a set)."""
        if self.status.observer != "native":
            return  # the polling observer asks the filter on every scan
        old = self._observer
        try:
            self._start_observer()
        except Exception:  # noqa: BLE001 - keep the old observer rather than none
            log.exception("restarting the file observer failed")
            self._observer = old
            return
        try:
            old.stop()
        except Exception:  # noqa: BLE001
            pass

    def _prune_watch(self, path: bytes) -> bool:
        """Whether a folder needs no OS watch at all (``.git``, ignored folders such as node_modules, the index)."""
        rel = self._rel(os.fsdecode(path))
        return rel is not None and rel != "" and self._filter.ignored(rel, True)

    def _poll_listdir(self, path: str | None) -> Iterator[os.DirEntry]:
        """Directory listing for the polling observer that never descends into ignored folders."""
        base = self._rel(path or self._root_str)
        with os.scandir(path) as it:
            entries = list(it)
        for entry in entries:
            rel = f"{base}/{entry.name}" if base else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if not self._filter.ignored(rel, is_dir):
                yield entry

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the initial reconcile finished (True) or ``timeout`` passed (False)."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def idle(self) -> bool:
        """Ready, nothing pending and no batch running (events still in the OS queue are not counted)."""
        with self._cond:
            return self.ready and not self._running and not self._pending and not self._pending_dirs

    def stop(self, grace: float = 5.0, timeout: float | None = 60.0) -> bool:
        """Stop watching. The running batch gets ``grace`` seconds to finish; after that it is abandoned between two
        atomic commits (the next start redoes it). Returns True when the worker ended within ``timeout``.
        """
        with self._cond:
            self._stopping = True
            self.status.state = "stopping"
            self._cond.notify_all()
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=5)
            except Exception:  # noqa: BLE001 - a broken observer must not keep the lock
                log.exception("stopping the file observer failed")
        ended = True
        if self._worker is not None:
            self._worker.join(grace)
            if self._worker.is_alive():
                self._abandon = True
                self._worker.join(timeout)
            ended = not self._worker.is_alive()
        with _ACTIVE_LOCK:
            if _ACTIVE.get(self.settings.index_dir.resolve()) is self:
                del _ACTIVE[self.settings.index_dir.resolve()]
        if ended and self._lock.held:
            self.status.state = "stopped"
            self._write_status()  # only the lock holder may publish: never clobber another watcher's status
            self._lock.release()
        self._notify()
        return ended

    def __enter__(self) -> "Watcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- events ---------------------------------------------------------------------------------------------
    def _rel(self, path: str | bytes) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if path == self._root_str:
            return ""
        if path.startswith(self._root_str + os.sep):
            return path[len(self._root_str) + 1 :].replace(os.sep, "/")
        return None

    def _on_path(self, path: str | bytes, is_dir: bool) -> None:
        rel = self._rel(path)
        if rel is None or rel == "":
            return
        if self._filter.ignored(rel, is_dir):
            self.status.events_ignored += 1
            return
        if rel == ".gitignore" or rel.endswith("/.gitignore"):
            # Different rules: drop the cache and reconcile the folder the file governs.
            folder = rel.rpartition("/")[0]
            self._filter.forget(folder)
            self._rules_changed = True  # a folder that was ignored (so unwatched) may count now
            self._queue(folder, is_dir=True)
        self._queue(rel, is_dir)

    def _queue(self, rel: str, is_dir: bool) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._pending and not self._pending_dirs:
                self._first_event = now
            self._last_event = now
            (self._pending_dirs if is_dir else self._pending).add(rel)
            self.status.events_queued += 1
            self.status.pending = len(self._pending) + len(self._pending_dirs)
            self._cond.notify_all()

    def flush(self, paths: Iterable[str] = (), timeout: float = 10.0) -> bool:
        """Index ``paths`` plus everything pending now, without waiting for the quiet period.

        Blocks until that batch is committed. Returns False on timeout (e.g. during a long initial reconcile), when
        the batch failed, or when the watcher is not running.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stopping or self._worker is None:
                return False
            for rel in paths:
                rel = rel.strip("/")
                if rel:
                    self._pending.add(rel)
            if self._pending or self._pending_dirs:
                if self._first_event == 0.0:
                    self._first_event = time.monotonic()
                target = self._taken + 1
                self._flush_now = True
                self.status.pending = len(self._pending) + len(self._pending_dirs)
                self._cond.notify_all()
            elif self._running:
                target = self._taken
            else:
                return self.ready
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(left)
            return self.history[-1].error is None if self.history else True

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Block until ``predicate()`` is true, re-checking after every batch; False on timeout (tests, tools)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    # -- the worker -----------------------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._run_batch("reconcile", None, set())
            self._ready.set()
            self.status.work = ""
            self._set_state("watching")
            while True:
                taken = self._next_batch()
                if taken is None:
                    return
                files, dirs = taken
                if self._rules_changed:
                    self._rules_changed = False
                    self._restart_observer()
                self._run_batch("batch", files, dirs)
                if not self._stopping:
                    self.status.work = ""
                    self._set_state("watching")
        except Exception:  # noqa: BLE001 - the thread must never die silently
            log.exception("the watcher stopped unexpectedly")
            self.status.last_error = "the watcher stopped unexpectedly; see the log"
        finally:
            self._ready.set()
            self._notify()

    def _next_batch(self) -> tuple[set[str], set[str]] | None:
        """Wait for a closed batch: a quiet period after the last event, ``max_delay``, or a flush."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if self._pending or self._pending_dirs:
                    now = time.monotonic()
                    due = min(self._last_event + self.debounce, self._first_event + self.max_delay)
                    if self._flush_now or now >= due:
                        break
                    self._cond.wait(due - now)
                else:
                    self._cond.wait()  # idle: no timer, no polling
            files, dirs = self._pending, self._pending_dirs
            self._pending, self._pending_dirs = set(), set()
            self._flush_now = False
            self._first_event = 0.0
            self.status.pending = 0
            return files, dirs

    def _run_batch(self, kind: str, files: set[str] | None, dirs: set[str]) -> None:
        with self._cond:
            self._taken += 1
            self._running = True
            self.status.state = "reconciling" if kind == "reconcile" else "indexing"
        self._write_status()
        t0, wall = time.perf_counter(), time.time()
        record = BatchRecord(kind=kind, paths=[], changed=[], files_indexed=0, files_deleted=0, chunks_embedded=0,
                             chunks_reused=0, started=wall, seconds=0.0)
        try:
            before = self._file_hashes()
            scope: list[str] | None
            if files is None or "" in dirs:
                scope = None  # a full reconcile (start, or the root .gitignore changed)
            else:
                scope = sorted(files | self._expand(dirs, before))
            record.paths = scope or []
            with self._index_mutex:
                stats = index_repo(self.root, self.settings, self.encoder, paths=scope, progress=self._checkpoint,
                                   lock=self._lock)
            after = self._file_hashes()
            keys = set(before) | set(after) if scope is None else set(scope)
            record.changed = sorted(p for p in keys if before.get(p) != after.get(p))
            self._account(record, stats)
            self._failures = 0
        except BatchAbandoned:
            record.error = "abandoned at shutdown; the next start redoes it"
        except Exception as exc:  # noqa: BLE001 - keep watching; retry these paths with the next batch
            record.error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            log.warning("watch batch failed: %s", record.error, exc_info=not isinstance(exc, UserError))
            if files is not None and not self._stopping:
                with self._cond:
                    self._pending |= files
                    self._pending_dirs |= dirs
                    self._first_event = self._last_event = time.monotonic()
                    self.status.pending = len(self._pending) + len(self._pending_dirs)
                # Back off so a persistent failure (disk full, a model that cannot load) does not spin.
                self._failures += 1
                with self._cond:
                    self._cond.wait(min(60.0, 2.0 ** self._failures))
        record.seconds = time.perf_counter() - t0
        with self._cond:
            self.history.append(record)
            if record.error is None:
                self.status.last_update = time.time()
                if kind == "batch":
                    self.status.batches += 1
                self.status.last_batch_files = len(record.paths) or record.files_indexed + record.files_deleted
                self.status.last_batch_seconds = record.seconds
            self.status.last_error = record.error or (self.status.last_error if kind == "reconcile" else None)
            self._running = False
            self._done += 1
            self._cond.notify_all()
        self._write_status()
        if record.error is None and record.changed:
            for callback in list(self.on_changed):
                try:
                    callback(list(record.changed))
                except Exception:  # noqa: BLE001 - a broken listener must not stop indexing
                    log.exception("on_changed callback %r failed", callback)

    def _checkpoint(self, phase: str, done: int, total: int) -> None:
        # index_repo calls this between units of work, never inside a commit: raising here abandons the run with
        # every finished batch committed and the unfinished one untouched.
        if self._abandon:
            raise BatchAbandoned()
        self.status.work = f"{phase} {done}/{total}" if total else phase

    def reindex(self, paths: Iterable[str] | None = None, *, rebuild: bool = False,
                progress: Callable[[str, int, int], None] | None = None) -> IndexStats:
        """Run `index_repo` with the lock this watcher holds, between its batches.

        For explicit reindex requests (the CLI, the MCP reindex tool) in a process whose watcher owns the index.
        """
        with self._index_mutex:
            stats = index_repo(self.root, self.settings, self.encoder, paths=paths, rebuild=rebuild,
                               progress=progress, lock=self._lock)
        if rebuild:
            self._store = None
        with self._cond:
            self.status.last_update = time.time()
            self._cond.notify_all()
        return stats

    def _account(self, record: BatchRecord, stats: IndexStats) -> None:
        record.files_indexed, record.files_deleted = stats.files_indexed, stats.files_deleted
        record.chunks_embedded, record.chunks_reused = stats.chunks_embedded, stats.chunks_reused
        with self._cond:
            self.status.files_indexed += stats.files_indexed
            self.status.files_deleted += stats.files_deleted
            self.status.chunks_embedded += stats.chunks_embedded
            self.status.chunks_reused += stats.chunks_reused

    def _file_hashes(self) -> dict[str, str]:
        """The indexed files' content hashes (to tell which paths a batch really changed)."""
        if self._store is None:
            try:
                self._store = CodeStore.open(self.settings.index_dir)
            except UserError:
                return {}
        try:
            return {p: r["hash"] for p, r in self._store.file_rows().items()}
        except Exception:  # noqa: BLE001 - the index was rebuilt under us (model change): reopen next time
            self._store = None
            return {}

    def _expand(self, dirs: set[str], indexed: dict[str, str]) -> set[str]:
        """Every file under the queued folders: on disk now (not ignored) and in the index (maybe deleted)."""
        out: set[str] = set()
        for d in dirs:
            prefix = d + "/"
            out.update(p for p in indexed if p.startswith(prefix))
            top = self.root / d
            if not top.is_dir() or self._filter.ignored(d, True):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                rel_dir = self._rel(dirpath) or ""
                dirnames[:] = [n for n in dirnames if not self._filter.ignored(f"{rel_dir}/{n}" if rel_dir else n, True)]
                for name in filenames:
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    if not self._filter.ignored(rel, False):
                        out.add(rel)
        return out

    # -- status ---------------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        with self._cond:
            if not self._stopping:
                self.status.state = state
            self._cond.notify_all()
        self._write_status()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def snapshot(self) -> WatchStatus:
        """A copy of the status, safe to read from another thread."""
        with self._cond:
            return WatchStatus(**self.status.to_dict())

    def _write_status(self) -> None:
        """Publish the status for `mcp-router status` in other processes (atomic replace, a few hundred bytes)."""
        path = self.settings.index_dir / STATUS_FILE
        try:
            tmp = path.with_name(f"{STATUS_FILE}.tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.snapshot().to_dict()))
            os.replace(tmp, path)
        except OSError:
            pass


def _stock_observer() -> Any:
    from watchdog.observers import Observer

    return Observer()


def _pruning_inotify_observer(prune: Callable[[bytes], bool]) -> Any | None:
    """A Linux inotify observer that puts no watch on ignored folders, or None where that is not available.

    watchdog's recursive inotify watch covers every sub-folder, ignored or not: ``node_modules`` alone can exhaust
    ``fs.inotify.max_user_watches``, and ``.git`` and the index folder churn during every commit. watchdog has no
    public hook for this, so this subclasses its inotify watch group (watchdog 5-7 layout) and falls back to the stock
    observer (events filtered in the handler instead) when the layout differs.
    """
    try:
        from watchdog.observers import inotify as wi
    except Exception:  # noqa: BLE001 - not Linux
        return None
    group_cls = getattr(wi, "InotifyWatchGroup", None)
    if group_cls is None or not all(hasattr(group_cls, n) for n in ("_add_callback", "_add_all_callbacks")) \
            or not hasattr(wi.InotifyEmitter, "get_event_mask_from_filter"):
        return None

    class PruningGroup(group_cls):  # type: ignore[misc, valid-type]
        def _add_all_callbacks(self, path: bytes) -> None:
            self._add_callback(path)
            if os.path.isdir(path) and self.is_recursive:
                for top, dirnames, _files in os.walk(path, followlinks=self.follow_symlink):
                    keep = []
                    for name in dirnames:
                        full = os.path.join(top, name)
                        if prune(full) or (not self.follow_symlink and os.path.islink(full)):
                            continue
                        keep.append(name)
                        self._add_callback(full)
                    dirnames[:] = keep  # never walk into an ignored folder

        def _add_callback(self, path: bytes) -> None:
            if path != self.path and prune(path):
                return
            super()._add_callback(path)

    class PruningEmitter(wi.InotifyEmitter):
        def on_thread_start(self) -> None:
            self._inotify = PruningGroup(self._inotify_fd, os.fsencode(self.watch.path),
                                         is_recursive=self.watch.is_recursive,
                                         event_mask=self.get_event_mask_from_filter(),
                                         follow_symlink=self.watch.follow_symlink)

    try:
        observer = wi.InotifyObserver()
    except Exception:  # noqa: BLE001
        return None
    if not hasattr(observer, "_emitter_class"):
        return observer
    observer._emitter_class = PruningEmitter  # noqa: SLF001
    return observer


class _Handler(FileSystemEventHandler):
    """watchdog event handler: translate events into queued paths (filtered first)."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__()
        self.w = watcher

    def dispatch(self, event: Any) -> None:
        is_dir = bool(event.is_directory)
        if event.event_type == "moved":
            self.w._on_path(event.src_path, is_dir)  # noqa: SLF001
            self.w._on_path(event.dest_path, is_dir)  # noqa: SLF001
        else:
            self.w._on_path(event.src_path, is_dir)  # noqa: SLF001


__all__ = ["BatchRecord", "WatchStatus", "Watcher", "WatcherRunning", "active_watcher", "read_watch_status"]

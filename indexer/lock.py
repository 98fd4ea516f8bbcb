"""The single-writer lock of an index folder.

An OS advisory lock (``flock``) on ``<index>/writer.lock``: the kernel releases it when the holder dies, even by
``kill -9``, so a stale lock can never block the next writer. The file also records the holder's pid and role for
`mcp-router status`. Readers never take it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from indexer.errors import UserError


class WriterLock:
    """Exclusive writer lock. Use as a context manager, or `acquire`/`release` for long-lived holders (the watcher)."""

    def __init__(self, index_dir: Path, role: str = "index") -> None:
        self.path = index_dir / "writer.lock"
        self.role = role
        self._fh: Any = None

    def acquire(self, wait: float = 0.0) -> bool:
        """Try to take the lock, waiting up to ``wait`` seconds. Returns False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    return False
                time.sleep(0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "role": self.role, "since": time.time()}))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.seek(0)
                self._fh.truncate()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> "WriterLock":
        if not self.acquire(wait=self.default_wait):
            holder = lock_holder(self.path.parent)
            who = f" (pid {holder['pid']}, {holder.get('role', 'index')})" if holder else ""
            raise UserError(
                f"another process is writing this index{who}: wait for it to finish, or stop it "
                "(a running `mcp-router watch` keeps the index fresh by itself)"
            )
        return self

    default_wait = 30.0

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(index_dir: Path) -> dict[str, Any] | None:
    """Who holds the writer lock right now, or None. Probes the lock, so a dead holder is never reported."""
    path = index_dir / "writer.lock"
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                return json.loads(fh.read() or "{}") or {"pid": "?"}
            except ValueError:
                return {"pid": "?"}
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return None

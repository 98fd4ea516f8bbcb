"""`App`: one repository's settings plus the shared heavy objects (encoder, database), opened lazily.

The CLI and the MCP server each hold one `App`; every feature (code index, router, tool filter, cache) takes what it
needs from it, so the model is loaded once and there is one database connection per index folder.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from indexer.encoder import Encoder, get_encoder
from mcp_router.config import Config, find_root, load_config


class App:
    """Lazily opened resources of one repository."""

    def __init__(self, root: Path | None = None, overrides: dict[str, Any] | None = None) -> None:
        self.config: Config = load_config(root or find_root(), overrides)
        self._db: Any = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def index_dir(self) -> Path:
        return self.config.index_path

    @property
    def encoder(self) -> Encoder:
        """The process-wide encoder (not loaded until first used; call ``.load()`` to warm it)."""
        return get_encoder(self.config.model, self.config.backend)

    def db(self) -> Any:
        """The LanceDB connection for this repository's index folder (created on first use)."""
        with self._lock:
            if self._db is None:
                import lancedb

                self.index_dir.mkdir(parents=True, exist_ok=True)
                self._db = lancedb.connect(str(self.index_dir))
            return self._db

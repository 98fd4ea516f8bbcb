"""Records that cross module boundaries inside the indexer: chunks and per-file chunking results."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def content_hash(text: str) -> str:
    """Stable hash of a text, used to reuse vectors across files, renames and branches."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class Chunk:
    """One retrievable piece of a file.

    Lines are 1-based and inclusive. ``symbol`` is qualified (``Session.resolve_redirects``) or empty for module-level
    code; ``parent`` is the qualified enclosing symbol or empty.
    """

    path: str
    language: str
    start_line: int
    end_line: int
    text: str
    symbol: str = ""
    kind: str = "code"  # function | method | class | module | section | lines | ...
    parent: str = ""

    @property
    def hash(self) -> str:
        """Keyed on the symbol and code only, not the path: a moved file or renamed folder reuses its vectors."""
        return content_hash(f"{self.symbol}\n{self.text}")

    @property
    def embed_text(self) -> str:
        """What gets embedded: the path and qualified symbol give the vector context the code alone lacks."""
        head = f"{self.path} {self.symbol}".strip()
        return f"{head}\n{self.text}"


@dataclass
class FileChunks:
    """The chunks of one file plus how they were made: ``ast`` (tree-sitter), ``markdown`` or ``lines`` (fallback)."""

    path: str
    language: str
    method: str
    chunks: list[Chunk] = field(default_factory=list)

"""Configuration: where the repository root is, and the settings read from the repo.

Settings come from, in increasing priority:
1. built-in defaults (`Config`);
2. the ``[tool.mcp-router]`` table of ``<root>/pyproject.toml``;
3. ``<root>/.mcp-router.toml``;
4. command-line flags (passed as ``overrides``).
Feature sections (``[tool.mcp-router.routing]``, ``.tools``, ``.cache``, ``.watch``) are kept as plain tables and read by
their features.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from indexer.errors import UserError

INDEX_DIRNAME = ".mcp-router"
CONFIG_FILENAME = ".mcp-router.toml"


class Config(BaseModel):
    """Settings for one repository. Paths are absolute after `load_config`."""

    model_config = {"extra": "forbid"}

    root: Path = Path(".")
    index_dir: Path | None = Field(None, description="where the index lives; default <root>/.mcp-router")
    model: str = Field("all-MiniLM-L6-v2", description="embedding model name or local folder")
    backend: str = Field("auto", description="encoder backend: auto, onnx or torch")
    ignore: list[str] = Field(default_factory=list, description="extra gitignore-style globs to skip")
    max_file_bytes: int = Field(1_000_000, description="files larger than this are skipped and counted")
    batch_chunks: int = Field(512, description="chunks per atomic index commit")
    chunk_chars: int = Field(1500, description="chunk size budget in non-whitespace characters")
    result_max_chars: int = Field(24_000, description="size budget of one page of search results")
    ann_min_rows: int = Field(50_000, description="build an ANN vector index above this many chunks")
    routing: dict[str, Any] = Field(default_factory=dict)
    tools: dict[str, Any] = Field(default_factory=dict)
    cache: dict[str, Any] = Field(default_factory=dict)
    watch: dict[str, Any] = Field(default_factory=dict)
    server: dict[str, Any] = Field(default_factory=dict)

    @property
    def index_path(self) -> Path:
        return self.index_dir if self.index_dir is not None else self.root / INDEX_DIRNAME


def find_root(start: Path | None = None) -> Path:
    """The repository that contains ``start``: the nearest folder holding ``.git`` or ``.mcp-router/``.

    Falls back to ``start`` itself. The CLI and the MCP server share this rule, so what one indexes the other sees.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists() or (folder / INDEX_DIRNAME).is_dir():
            return folder
    return here


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML ({exc}): fix it or delete it") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None


def load_config(root: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read the settings of the repository at ``root`` (default: `find_root` of the working directory)."""
    root = (root or find_root()).resolve()
    if not root.is_dir():
        raise UserError(f"root {root} is not a directory: pass --root with an existing folder")
    merged: dict[str, Any] = {}
    sources: list[str] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("mcp-router")
        if table:
            merged.update(table)
            sources.append(str(pyproject))
    own = root / CONFIG_FILENAME
    if own.is_file():
        merged.update(_read_toml(own))
        sources.append(str(own))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    merged = {k.replace("-", "_"): v for k, v in merged.items()}
    merged["root"] = root
    try:
        cfg = Config(**merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = " or ".join(sources) or "the command line"
        field = ".".join(str(p) for p in err["loc"])
        raise UserError(f"bad setting `{field}` in {where}: {err['msg']}; fix it or remove it") from None
    if cfg.index_dir is not None and not cfg.index_dir.is_absolute():
        cfg.index_dir = (root / cfg.index_dir).resolve()
    if cfg.backend not in ("auto", "onnx", "torch"):
        raise UserError(f"bad setting `backend`={cfg.backend!r}: use auto, onnx or torch")
    return cfg


def root_from_env(explicit: str | os.PathLike[str] | None) -> Path:
    """The project root for the server: ``--root``, then ``CLAUDE_PROJECT_DIR``, then the working directory."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise UserError(f"--root {path} is not a directory")
        return find_root(path)
    env = os.environ.get("CLAUDE_PROJECT_DIR")
    if env and Path(env).is_dir():
        return find_root(Path(env))
    return find_root()

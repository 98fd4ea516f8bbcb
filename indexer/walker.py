"""Walking a repository: which files are indexed, and why the others are not.

Ignore rules, in order:
- ``.git/`` and the index folder itself;
- every ``.gitignore`` in the tree (nested ones apply below their folder; the deepest matching rule wins, as in git);
- user globs (gitignore syntax);
- a built-in deny-list of secret files (``.env*``, ``*.pem``, ``*.key``, ``id_rsa*``, credentials...), always;
- files over the size limit, and binary files (detected from content, not guessed from the extension).
Nothing is skipped silently: every skip is counted by reason in `WalkResult.skipped`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pathspec

DENY_PATTERNS = [
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "*secret*.json",
    "*.tfstate",
    "*.tfstate.*",
    ".aws/",
    ".ssh/",
    ".docker/config.json",
    ".git-credentials",
]

ALWAYS_SKIP_DIRS = {".git", ".hg", ".svn"}


@dataclass
class FileEntry:
    """A file chosen for indexing. ``rel`` is the POSIX path relative to the root."""

    rel: str
    path: Path
    size: int
    mtime_ns: int


@dataclass
class WalkResult:
    files: list[FileEntry] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines([ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")])


DENY_SPEC = _spec(DENY_PATTERNS)


def is_denied(rel: str) -> bool:
    """True for secret-looking files that are never indexed, whatever the ignore files say."""
    return DENY_SPEC.match_file(rel)


def looks_binary(head: bytes) -> bool:
    """Binary if the first block has a NUL byte, or is mostly control bytes that no text encoding uses."""
    if not head:
        return False
    if b"\x00" in head:
        # UTF-16/32 text has NULs too; it is rare in repos and we do not index it.
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return control / len(head) > 0.10


class IgnoreRules:
    """Gitignore files + user globs for one root, with a cache of parsed ``.gitignore`` files per folder."""

    def __init__(self, root: Path, user_globs: Iterable[str] = (), extra_dirs: Iterable[Path] = ()) -> None:
        self.root = root
        self.user = _spec(user_globs)
        self.extra_dirs = {p.resolve() for p in extra_dirs}
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}

    def _dir_spec(self, rel_dir: str) -> pathspec.GitIgnoreSpec | None:
        if rel_dir not in self._specs:
            gi = self.root / rel_dir / ".gitignore" if rel_dir else self.root / ".gitignore"
            try:
                self._specs[rel_dir] = _spec(gi.read_text(encoding="utf-8", errors="replace").splitlines())
            except OSError:
                self._specs[rel_dir] = None
        return self._specs[rel_dir]

    def forget(self, rel_dir: str) -> None:
        """Drop a cached ``.gitignore`` (after it changed)."""
        self._specs.pop(rel_dir, None)

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether a root-relative POSIX path is ignored by .gitignore files (deepest rule wins) or user globs."""
        parts = rel.split("/")
        if parts[0] in ALWAYS_SKIP_DIRS or any(p in ALWAYS_SKIP_DIRS for p in parts[:-1]):
            return True
        if self.extra_dirs and (self.root / rel).resolve() in self.extra_dirs:
            return True
        probe = rel + "/" if is_dir else rel
        if self.user.match_file(probe):
            return True
        verdict: bool | None = None
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._dir_spec(base)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            res = spec.check_file(sub)
            if res.include is not None:
                verdict = res.include
        return bool(verdict)

    def path_ignored(self, rel: str) -> bool:
        """Whether a file is ignored, including by an ignored parent folder (git does not look inside those)."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self.ignored("/".join(parts[:i]), is_dir=True):
                return True
        return self.ignored(rel) or is_denied(rel)


def walk_repo(
    root: Path,
    *,
    rules: IgnoreRules,
    max_file_bytes: int,
) -> WalkResult:
    """List the indexable files under ``root``; count every skip by reason and report unreadable folders."""
    out = WalkResult()

    def onerror(err: OSError) -> None:
        out.errors.append(f"cannot read {err.filename}: {err.strerror}")
        out.skip("unreadable")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if rules.ignored(rel, is_dir=True):
                out.skip("ignored folder")
                continue
            if is_denied(rel + "/"):
                out.skip("deny-list")
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rules.ignored(rel):
                out.skip("gitignored")
                continue
            if is_denied(rel):
                out.skip("deny-list")
                continue
            entry = check_file(root, rel, max_file_bytes, out)
            if entry is not None:
                out.files.append(entry)
    return out


def check_file(root: Path, rel: str, max_file_bytes: int, out: WalkResult) -> FileEntry | None:
    """Stat one file; count and return None for symlinks, oversize, binary or unreadable files."""
    path = root / rel
    try:
        st = path.lstat()
    except OSError as exc:
        out.errors.append(f"cannot read {rel}: {exc.strerror}")
        out.skip("unreadable")
        return None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        out.skip("not a regular file")
        return None
    if st.st_size > max_file_bytes:
        out.skip("too large")
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        out.errors.append(f"cannot read {rel}: {exc.strerror}")
        out.skip("unreadable")
        return None
    if looks_binary(head):
        out.skip("binary")
        return None
    if len(head) == 8192 and head.count(b"\n") < 3:
        # Minified bundles and generated one-line blobs: one giant "line" that neither chunks nor searches well.
        out.skip("minified")
        return None
    return FileEntry(rel=rel, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)

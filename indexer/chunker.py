"""Split one file into retrievable chunks: one generic algorithm driven by the tables in `indexer.languages`.

This module owns how a file becomes `Chunk` records. Three methods:

- ``ast`` (tree-sitter), cAST-style split-then-merge. Functions, methods and classes are the units. A unit over the size
  budget is split at its children's boundaries (a big class becomes a header chunk plus one chunk per method, named
  ``Class.method``); a big body with nothing left to split becomes line windows that keep the unit's symbol. Small
  adjacent siblings are then merged back up to the budget, while every definition of a useful size keeps a chunk of
  its own, so a search for ``parse_duration`` lands on a chunk whose symbol is ``parse_duration``.
- ``markdown``: one chunk per heading section (symbol = heading text), split further by paragraphs when too big.
- ``lines``: windows of about 60 lines (config, data, unknown text, and any file tree-sitter cannot parse).

Guarantees, whatever the input: chunks are in file order, never overlap in lines, together cover every non-blank line,
and each chunk's text is exactly the file's lines ``start_line..end_line`` (lines are split on ``"\\n"`` only, like
tree-sitter rows, so a ``"\\r"`` stays at the end of its line). Size is measured in non-whitespace characters, so
indentation style does not change where code is cut.

A merged chunk that holds several small definitions lists their names in ``symbol``, joined by `SYMBOL_SEPARATOR`
(see `split_symbols`).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from indexer.languages import (
    AST,
    LINES,
    MARKDOWN,
    TEXT,
    LanguageSpec,
    language_for_path,
    language_from_shebang,
    spec_for,
)
from indexer.models import Chunk, FileChunks

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 1500
# Line windows (``lines`` method) hold at most this many lines, whatever their size.
WINDOW_LINES = 60
SYMBOL_SEPARATOR = ", "

# A definition at least this big (non-whitespace chars, as a share of the budget) keeps a chunk of its own instead of
# being merged with its neighbours: merging it would hide its name among others for little gain in chunk count. For
# the same reason a class holding such a method is split even when it fits the budget, so ``LruCache.get`` is a symbol.
_OWN_CHUNK_SHARE = 10
_OWN_CHUNK_FLOOR = 64
# Lone closing tokens (``}``, ``end``, ``});``, ``fi``) belong to the chunk before them, even past the budget: a chunk
# holding only a closing brace is noise in search results. Inside a split class, any code this small (access labels
# like ``private`` or ``public:`` between methods) is treated the same way.
_GLUE_CHARS = 8
_GLUE_CHARS_IN_CLASS = 12

_WHITESPACE_AND_UTF8_CONTINUATION = b" \t\n\r\f\v" + bytes(range(0x80, 0xC0))
_IDENT = r"[~$@]?[^\W\d][\w$]*[?!]?"
_QUALIFIED_IDENT = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_SCOPE_SEPARATORS = re.compile(r"::|->|:|\\")

_tls = threading.local()


# ---------------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------------


def chunk_file(path: str, text: str, language: str | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> FileChunks:
    """Chunk one file. ``path`` is the repo-relative POSIX path stored in each chunk.

    ``language`` overrides detection (from the path, then a ``#!`` line); files of no known language are ``text``.
    Never raises on bad input: a grammar that is missing or fails falls back to ``lines``.
    """
    budget = max(int(max_chars), 1)
    if language is None:
        language = language_for_path(path) or language_from_shebang(text) or TEXT
    spec = spec_for(language)
    method = spec.method if spec is not None else LINES
    lines = text.split("\n")

    if method == AST and spec is not None:
        try:
            chunks = _chunk_ast(path, language, text, lines, spec, budget)
        except Exception:  # noqa: BLE001 - a grammar bug must cost one file's structure, never the index run
            log.warning("%s: tree-sitter chunking failed, chunking by lines", path, exc_info=True)
            chunks = None
        if chunks is not None:
            return FileChunks(path=path, language=language, method=AST, chunks=chunks)
        method = LINES
    if method == MARKDOWN:
        return FileChunks(path, language, MARKDOWN, _chunk_markdown(path, language, lines, budget))
    return FileChunks(path, language, LINES, _chunk_lines(path, language, lines, budget))


def split_symbols(symbol: str) -> list[str]:
    """The definition names held by a chunk's ``symbol`` (several when small definitions were merged)."""
    return [part for part in symbol.split(SYMBOL_SEPARATOR) if part]


def line_text(lines: list[str], start_line: int, end_line: int) -> str:
    """The text of 1-based inclusive lines, exactly as `Chunk.text` holds it."""
    return "\n".join(lines[start_line - 1 : end_line])


# ---------------------------------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------------------------------


def _parser(ts_name: str) -> Any | None:
    """A cached tree-sitter parser, or None if the grammar is unavailable.

    Cached per thread: a parser holds parse state and must not be shared by threads that index files concurrently.
    """
    cache: dict[str, Any | None] | None = getattr(_tls, "parsers", None)
    if cache is None:
        cache = _tls.parsers = {}
    if ts_name not in cache:
        try:
            from tree_sitter_language_pack import get_parser

            cache[ts_name] = get_parser(ts_name)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - LookupError for a missing grammar, ImportError without the package
            log.warning("no tree-sitter grammar for %s; its files are chunked by lines", ts_name)
            cache[ts_name] = None
    return cache[ts_name]


# ---------------------------------------------------------------------------------------------------------------------
# AST chunking
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class _Scope:
    """Where the walk is: the definition being split (``owner``), if any."""

    owner: str = ""  # qualified symbol of the enclosing split definition; "" at module level
    owner_kind: str = "module"
    owner_parent: str = ""
    in_container: bool = False  # the owner is class-like: functions directly inside it are methods


@dataclass
class _Piece:
    """A run of source the walk will not split further: a whole small node, or one child of a split node."""

    start: int  # 0-based rows, inclusive
    end: int
    size: int
    scope: _Scope
    symbol: str = ""  # set on definitions only
    kind: str = ""
    parent: str = ""
    is_def: bool = False
    lead: bool = False  # first piece of a split definition: its leading comments attach here
    prefix: bool = False  # comment/decorator: attaches to the definition right after it
    comment: bool = False
    is_import: bool = False
    token: bool = False  # an anonymous node: punctuation or a keyword such as ``end``


@dataclass
class _Bundle:
    """Pieces that must share a chunk: pieces on a common line, or a definition with its leading comments."""

    start: int
    end: int
    scope: _Scope
    starts_def: bool  # begins with a definition, or with the first piece of a split one
    size: int = 0
    code_size: int = 0  # without comments: what decides whether a bundle is only a closing brace
    defs: list[_Piece] = field(default_factory=list)
    has_code: bool = False  # holds something other than definitions and comments (statements, fields, a header)
    has_import: bool = False
    all_prefix: bool = True
    only_tokens: bool = True  # no named code: a closing brace, ``end``, ``fi``

    @classmethod
    def of(cls, piece: _Piece) -> _Bundle:
        bundle = cls(piece.start, piece.end, piece.scope, piece.is_def or piece.lead)
        bundle.add(piece)
        return bundle

    def add(self, piece: _Piece) -> None:
        self.end = max(self.end, piece.end)
        self.size += piece.size
        if not piece.comment:
            self.code_size += piece.size
            self.only_tokens = self.only_tokens and piece.token
        if piece.is_def:
            self.defs.append(piece)
        elif not piece.comment:
            self.has_code = True
        self.has_import = self.has_import or piece.is_import
        self.all_prefix = self.all_prefix and piece.prefix

    def attach_leading(self, prefixes: list[_Bundle]) -> None:
        """Comments and decorators just above a definition become part of it (and of its scope)."""
        self.start = prefixes[0].start
        self.size += sum(b.size for b in prefixes)


@dataclass
class _Group:
    """Consecutive bundles that become one chunk (or several line windows, if one piece alone is over budget)."""

    bundles: list[_Bundle] = field(default_factory=list)
    size: int = 0
    defs: list[_Piece] = field(default_factory=list)
    has_code: bool = False
    has_import: bool = False

    @property
    def start(self) -> int:
        return self.bundles[0].start

    @property
    def end(self) -> int:
        return self.bundles[-1].end

    @property
    def scope(self) -> _Scope:
        return self.bundles[0].scope

    @property
    def owner(self) -> str:
        return self.bundles[0].scope.owner

    def add(self, bundle: _Bundle, glued: bool = False) -> None:
        """Append a bundle; a ``glued`` one (a closing brace riding along) does not change what the group holds."""
        self.bundles.append(bundle)
        self.size += bundle.size
        if not glued:
            self.defs.extend(bundle.defs)
            self.has_code = self.has_code or bundle.has_code
            self.has_import = self.has_import or bundle.has_import


@dataclass
class _Def:
    node: Any  # the definition node itself (inside any wrapper)
    kind: str
    name: str


class _Walker:
    """Turns one syntax tree into pieces in file order, splitting only what is over budget."""

    def __init__(self, src: bytes, spec: LanguageSpec, budget: int) -> None:
        self.src = src
        self.spec = spec
        self.budget = budget
        self.own_chunk = _own_chunk_size(budget)
        self.pieces: list[_Piece] = []

    # -- measurements -------------------------------------------------------------------------------------------------

    def size(self, node: Any) -> int:
        """Non-whitespace characters (not bytes) of a node."""
        return len(self.src[node.start_byte : node.end_byte].translate(None, _WHITESPACE_AND_UTF8_CONTINUATION))

    def text(self, node: Any) -> str:
        return self.src[node.start_byte : node.end_byte].decode("utf-8", "replace")

    @staticmethod
    def rows(node: Any) -> tuple[int, int]:
        start, end = node.start_point, node.end_point
        # A node that ends with its newline (C ``#include``, some comments) ends on the row before.
        end_row = end.row - 1 if end.column == 0 and end.row > start.row else end.row
        return start.row, end_row

    # -- definitions --------------------------------------------------------------------------------------------------

    def definition(self, node: Any) -> _Def | None:
        """The definition a node stands for, or None. Wrappers stand for the single definition inside them."""
        spec, kind = self.spec, None
        if node.type in spec.definitions:
            kind = spec.definitions[node.type]
        elif node.type in spec.value_definitions:
            value = node.child_by_field_name("value")
            if value is not None:
                kind = spec.value_definitions[node.type].get(value.type)
        elif node.type in spec.wrappers:
            found = [d for d in (self.definition(c) for c in node.named_children) if d is not None]
            return found[0] if len(found) == 1 else None
        if kind is None:
            return None
        name = self.name(node)
        if not name:
            return None
        receiver_path = spec.receiver_paths.get(node.type)
        if receiver_path is not None:
            receiver = self.follow(node, receiver_path)
            owner = _clean_name(self.text(receiver)) if receiver is not None else ""
            if owner:
                name = f"{owner}.{name}"
        return _Def(node, kind, name)

    def follow(self, node: Any, path: tuple[str, ...]) -> Any | None:
        """Walk a name path: each step is a field name, or else the type of a named child."""
        for step in path:
            nxt = node.child_by_field_name(step)
            if nxt is None:
                nxt = next((c for c in node.named_children if c.type == step), None)
            if nxt is None:
                return None
            node = nxt
        return node

    def name(self, node: Any) -> str:
        path = self.spec.name_paths.get(node.type, ("name",))
        target = self.follow(node, path) if path else None
        # C-style declarators nest the name: ``*parse(int)`` -> pointer_declarator -> function_declarator -> name.
        while target is not None and target.type.endswith("declarator"):
            inner = target.child_by_field_name("declarator")
            if inner is None:
                inner = next((c for c in target.named_children if c.type != "parameter_list"), None)
            target = inner
        name = _clean_name(self.text(target)) if target is not None else ""
        return name or self.spec.default_names.get(node.type, "")

    # -- walk ---------------------------------------------------------------------------------------------------------
    # The walk is iterative: left-recursive grammars nest ``a + b + c + ...`` or ``else if`` chains one level per
    # term, and real files (generated tables, API headers) go deeper than Python's recursion limit allows.

    def walk(self, root: Any) -> None:
        """Emit the pieces of the whole tree, in file order."""
        # Items: (node, scope, body) to visit, or (None, index, None) to flag piece ``index`` as a split unit's lead.
        stack: list[tuple[Any, Any, Any]] = [(c, _Scope(), False) for c in reversed(root.children)]
        while stack:
            node, scope, body = stack.pop()
            if node is None:
                if len(self.pieces) > scope:
                    self.pieces[scope].lead = True
                continue
            stack.extend(reversed(self.visit(node, scope, body)))

    def visit(self, node: Any, scope: _Scope, body: bool = False) -> list[tuple[Any, Any, Any]]:
        """Emit a piece for one node, or return the children to walk instead. ``body``: the node is a direct child
        of a definition being split."""
        size = self.size(node)
        if size == 0:
            return []  # zero-width (MISSING) or blank nodes hold nothing to index
        found = self.definition(node)
        if found is None:
            # Walk into what is too big, into grouping nodes, and always into the body of a split definition: if
            # the body were kept whole, a unit just over budget would split into a lone header line plus the rest.
            if node.child_count > 0 and (
                size > self.budget or node.type in self.spec.transparent or (body and node.named_child_count > 0)
            ):
                return [(c, scope, False) for c in node.children]
            self.add_piece(node, size, scope)
            return []

        symbol = f"{scope.owner}.{found.name}" if scope.owner else found.name
        kind = found.kind
        if kind == "function" and (scope.in_container or "." in found.name):
            kind = "method"
        parent = symbol.rpartition(".")[0]
        split = size > self.budget or (found.node.type in self.spec.containers and self.has_own_member(found.node))
        if not split or node.child_count == 0:
            start, end = self.rows(node)
            self.pieces.append(_Piece(start, end, size, scope, symbol, kind, parent, is_def=True))
            return []

        # Over budget: split at the children's boundaries. What is not a nested definition (header, fields, body
        # statements) keeps this definition's symbol, so nothing loses its name. The first piece it yields is the
        # unit's lead, where comments above the unit attach: the marker after its children flags it once they ran.
        inner = _Scope(symbol, kind, parent, in_container=found.node.type in self.spec.containers)
        return [*self.def_children(node, found.node, inner), (None, len(self.pieces), None)]

    def has_own_member(self, container: Any) -> bool:
        """Whether a class-like node holds a definition big enough for a chunk of its own (in it or in its body)."""
        for child in container.named_children:
            candidates = [child] if self.definition(child) is not None else child.named_children
            for member in candidates:
                if self.size(member) >= self.own_chunk and self.definition(member) is not None:
                    return True
        return False

    def def_children(self, node: Any, target: Any, scope: _Scope) -> list[tuple[Any, Any, Any]]:
        """Children to walk for a split definition; a wrapper's own tokens (decorators, ``export``) join it.

        Recursive only through wrappers, which nest a few levels at most.
        """
        if node.id == target.id:
            return [(child, scope, True) for child in node.children]
        out: list[tuple[Any, Any, Any]] = []
        for child in node.children:
            if child.child_count and child.start_byte <= target.start_byte and target.end_byte <= child.end_byte:
                out.extend(self.def_children(child, target, scope))
            else:
                out.append((child, scope, False))
        return out

    def add_piece(self, node: Any, size: int, scope: _Scope) -> None:
        start, end = self.rows(node)
        is_comment = node.type in self.spec.comments
        self.pieces.append(
            _Piece(
                start,
                end,
                size,
                scope,
                prefix=is_comment or node.type in self.spec.prefixes,
                comment=is_comment,
                is_import=node.type in self.spec.imports,
                token=not node.is_named,
            )
        )


def _clean_name(raw: str) -> str:
    """``Foo::bar`` / ``Inventory:add`` / ``*Server[T]`` / ``LruCache<K, V>`` -> a dotted identifier path."""
    match = _QUALIFIED_IDENT.search(_SCOPE_SEPARATORS.sub(".", raw))
    return match.group(0) if match else ""


def _chunk_ast(
    path: str, language: str, text: str, lines: list[str], spec: LanguageSpec, budget: int
) -> list[Chunk] | None:
    """AST chunks of one file, or None when there is no grammar for it."""
    parser = _parser(spec.ts_name or language)
    if parser is None:
        return None
    src = text.encode("utf-8", "surrogatepass")
    tree = parser.parse(src)
    walker = _Walker(src, spec, budget)
    walker.walk(tree.root_node)
    groups = _merge(_bundle(walker.pieces), budget)
    spans = [span for group in groups for span in _group_spans(group, lines, budget)]
    return _to_chunks(path, language, lines, spans)


def _bundle(pieces: list[_Piece]) -> list[_Bundle]:
    """Bundle pieces that must share a chunk: pieces on a common line, and comments/decorators with what follows."""
    by_line: list[_Bundle] = []
    for piece in pieces:
        if by_line and piece.start <= by_line[-1].end:
            by_line[-1].add(piece)  # a line cannot be cut in two
        else:
            by_line.append(_Bundle.of(piece))
    out: list[_Bundle] = []
    pending: list[_Bundle] = []  # a run of comment/decorator-only bundles, line after line
    for bundle in by_line:
        if pending and bundle.start > pending[-1].end + 1:
            out.extend(pending)  # a blank line ends the run: these comments are not about what follows
            pending = []
        if bundle.all_prefix:
            pending.append(bundle)
            continue
        if pending and bundle.starts_def:
            bundle.attach_leading(pending)
        else:
            out.extend(pending)
        out.append(bundle)
        pending = []
    out.extend(pending)
    return out


def _merge(bundles: list[_Bundle], budget: int) -> list[_Group]:
    """Greedy cAST merge of adjacent siblings up to the budget, then even out the windows of split bodies."""
    own_chunk = _own_chunk_size(budget)
    groups: list[_Group] = []
    for bundle in bundles:
        if groups and _glues(bundle):
            groups[-1].add(bundle, glued=True)
            continue
        if not (groups and _joins(groups[-1], bundle, budget, own_chunk)):
            groups.append(_Group())
        groups[-1].add(bundle)
    for first, second in zip(groups, groups[1:]):
        _rebalance(first, second, budget)
    return groups


def _own_chunk_size(budget: int) -> int:
    return max(_OWN_CHUNK_FLOOR, budget // _OWN_CHUNK_SHARE)


def _rebalance(first: _Group, second: _Group, budget: int) -> None:
    """Move trailing bundles of ``first`` into ``second`` while that evens them out.

    Greedy packing of a split function body leaves a full window and then a tail of one or two lines; two windows of
    similar size read better and embed better. Only plain code of the same unit moves (never a definition).
    """
    if not first.owner or first.owner != second.owner or first.defs or second.defs:
        return
    while len(first.bundles) > 1:
        size = first.bundles[-1].size
        if second.size + size >= first.size - size or second.size + size > budget:
            return
        second.bundles.insert(0, first.bundles.pop())
        first.size -= size
        second.size += size


def _glues(bundle: _Bundle) -> bool:
    """A closing brace or ``end`` (or an access label inside a class) stays with what comes before it."""
    if bundle.code_size == 0 or bundle.defs or bundle.has_import or bundle.starts_def:
        return False
    if bundle.only_tokens and bundle.code_size <= _GLUE_CHARS:
        return True
    return bundle.scope.in_container and bundle.code_size <= _GLUE_CHARS_IN_CLASS


def _joins(group: _Group, nxt: _Bundle, budget: int, own_chunk: int) -> bool:
    """Whether a bundle may be merged into the group before it (cAST merge, plus rules that keep names findable)."""
    if group.size + nxt.size > budget or group.owner != nxt.scope.owner:
        return False
    if any(p.size >= own_chunk for p in nxt.defs) or any(p.size >= own_chunk for p in group.defs):
        return False  # a definition of useful size keeps its own chunk and its own name
    if (group.defs and nxt.has_import) or (group.has_import and nxt.defs):
        return False  # the import block stays a clean file header
    if group.owner and ((group.defs and nxt.has_code) or (group.has_code and nxt.defs)):
        return False  # inside a split class: the header chunk is the class, method chunks are methods
    return True


@dataclass
class _Span:
    start: int  # 0-based rows, inclusive
    end: int
    symbol: str
    kind: str
    parent: str


def _group_spans(group: _Group, lines: list[str], budget: int) -> Iterator[_Span]:
    """Name a group and, if it is still over budget (one unsplittable piece), cut it into line windows."""
    defs, scope = group.defs, group.scope
    if defs:
        names = list(dict.fromkeys(p.symbol for p in defs))
        parents = {p.parent for p in defs}
        symbol = SYMBOL_SEPARATOR.join(names)
        # The first definition names the chunk's kind: search treats definition kinds specially, a vague "code" not.
        kind = defs[0].kind
        parent = parents.pop() if len(parents) == 1 else scope.owner
    else:
        symbol, kind, parent = scope.owner, scope.owner_kind, scope.owner_parent
    if group.size <= budget:
        yield _Span(group.start, group.end, symbol, kind, parent)
        return
    for start, end in _windows(lines, group.start, group.end, budget):
        yield _Span(start, end, symbol, kind, parent)


def _to_chunks(path: str, language: str, lines: list[str], spans: list[_Span]) -> list[Chunk]:
    """Make spans line-disjoint and gap-free over non-blank lines, then cut the text."""
    blank = [not line.strip() for line in lines]
    chunks: list[Chunk] = []
    prev_end = -1
    for i, span in enumerate(spans):
        # Uncovered lines before a span (blank, or stray text outside every node) belong to it; text after the last
        # node belongs to the last chunk. Blank edges are trimmed afterwards.
        start = prev_end + 1
        end = len(lines) - 1 if i == len(spans) - 1 else span.end
        while start <= end and blank[start]:
            start += 1
        while end >= start and blank[end]:
            end -= 1
        if start > end:
            continue
        chunks.append(
            Chunk(
                path=path,
                language=language,
                start_line=start + 1,
                end_line=end + 1,
                text=line_text(lines, start + 1, end + 1),
                symbol=span.symbol,
                kind=span.kind,
                parent=span.parent,
            )
        )
        prev_end = end
    return chunks


def _windows(lines: list[str], start: int, end: int, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive row windows over ``start..end`` with at most ``budget`` non-whitespace chars each.

    A last window under a quarter of the budget folds into the one before: a unit a little over budget (a function
    plus its doc comment) stays whole instead of leaving its closing brace alone.
    """
    windows: list[tuple[int, int, int]] = []
    row = start
    while row <= end:
        first, size = row, 0
        while row <= end:
            width = _line_size(lines[row])
            if row > first and size + width > budget:
                break
            size += width
            row += 1
        windows.append((first, row - 1, size))
    if len(windows) > 1 and windows[-1][2] < budget // 4:
        tail = windows.pop()
        windows[-1] = (windows[-1][0], tail[1], windows[-1][2] + tail[2])
    for first, last, _size in windows:
        yield first, last


def _line_size(line: str) -> int:
    return len("".join(line.split()))


# ---------------------------------------------------------------------------------------------------------------------
# Markdown and lines
# ---------------------------------------------------------------------------------------------------------------------

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _chunk_markdown(path: str, language: str, lines: list[str], budget: int) -> list[Chunk]:
    """One chunk per heading section (headings inside code fences do not count), split by paragraphs if too big."""
    # (start_row, level, title) for every heading; a section runs to the next heading.
    headings: list[tuple[int, int, str]] = []
    fence: str | None = None
    row = 0
    if lines and lines[0].strip() == "---":
        # YAML front matter: skip to its closing line so its ``---`` is not read as a setext underline.
        row = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 1)
    while row < len(lines):
        line = lines[row]
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif (atx := _ATX_HEADING.match(line)) is not None:
            headings.append((row, len(atx.group(1)), (atx.group(2) or "").strip()))
        elif (
            row + 1 < len(lines)
            and line.strip()
            and not line.startswith(("    ", "\t", "-", "*", ">"))
            and _SETEXT_UNDERLINE.match(lines[row + 1])
            and (row == 0 or not lines[row - 1].strip() or headings and headings[-1][0] == row - 1)
        ):
            level = 1 if lines[row + 1].strip().startswith("=") else 2
            headings.append((row, level, line.strip()))
            row += 1
        row += 1

    bounds = [(0, 0, "")] if not headings or headings[0][0] > 0 else []
    bounds += headings
    spans: list[_Span] = []
    stack: list[tuple[int, str]] = []  # open headings: (level, title)
    for i, (start, level, title) in enumerate(bounds):
        end = bounds[i + 1][0] - 1 if i + 1 < len(bounds) else len(lines) - 1
        parent = ""
        if title or level:
            while stack and stack[-1][0] >= level:
                stack.pop()
            parent = stack[-1][1] if stack else ""
            stack.append((level, title))
        for first, last in _paragraph_windows(lines, start, end, budget):
            spans.append(_Span(first, last, title, "section", parent))
    return _to_chunks(path, language, lines, spans)


def _paragraph_windows(lines: list[str], start: int, end: int, budget: int) -> Iterator[tuple[int, int]]:
    """Split ``start..end`` at blank lines outside code fences, merging paragraphs up to the budget."""
    if sum(_line_size(lines[r]) for r in range(start, end + 1)) <= budget:
        yield start, end
        return
    blocks: list[tuple[int, int]] = []
    fence: str | None = None
    first = start
    for row in range(start, end + 1):
        fence_match = _FENCE.match(lines[row])
        if fence_match:
            fence = None if fence is not None else fence_match.group(1)
        if fence is None and not lines[row].strip() and row > first:
            blocks.append((first, row))
            first = row + 1
    if first <= end:
        blocks.append((first, end))
    window: tuple[int, int] | None = None
    size = 0
    for a, b in blocks:
        block_size = sum(_line_size(lines[r]) for r in range(a, b + 1))
        if window is not None and size + block_size <= budget:
            window, size = (window[0], b), size + block_size
            continue
        if window is not None:
            yield window
        if block_size > budget:
            yield from _windows(lines, a, b, budget)
            window, size = None, 0
        else:
            window, size = (a, b), block_size
    if window is not None:
        yield window


def _chunk_lines(path: str, language: str, lines: list[str], budget: int) -> list[Chunk]:
    """Windows of up to `WINDOW_LINES` lines and the size budget, cut preferably at a blank line."""
    spans: list[_Span] = []
    row, last = 0, len(lines) - 1
    while row <= last:
        window_end, size = row, 0
        while window_end <= last and window_end - row < WINDOW_LINES:
            size += _line_size(lines[window_end])
            if size > budget and window_end > row:
                break
            window_end += 1
        window_end -= 1
        if window_end < last:
            # Back up to a blank line in the second half of the window, so paragraphs and config blocks stay whole.
            for cut in range(window_end, row + (window_end - row) // 2, -1):
                if not lines[cut].strip():
                    window_end = cut
                    break
        spans.append(_Span(row, window_end, "", "lines", ""))
        row = window_end + 1
    return _to_chunks(path, language, lines, spans)

"""Language support as data: which files are which language, and how each tree-sitter grammar spells its definitions.

This module owns every per-language fact the chunker needs. `indexer.chunker` is one generic algorithm that reads
these tables; supporting a new language means adding one `LanguageSpec` to `_SPECS`, never a new code path.

A spec says:
- how files are recognised (extensions, file-name globs, shebang interpreters);
- how they are chunked (``ast`` with a tree-sitter grammar, ``markdown`` by headings, or ``lines``);
- for ``ast``: which node types are definitions (and of which kind), which definitions are class-like containers
  (their functions are methods), where a definition's name lives, and which nodes are comments, decorators or imports.

Grammar names are those of tree-sitter-language-pack 0.13 (``csharp``, not ``c_sharp``; ``php`` parses files that
start with ``<?php``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

AST = "ast"
MARKDOWN = "markdown"
LINES = "lines"

# Name of the catch-all language for text files nobody declared.
TEXT = "text"


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only mapping, so a shared spec cannot be changed by accident at run time."""
    return MappingProxyType(dict(mapping or {}))


# eq=False: a spec compares and hashes by identity (one instance per language); its mapping fields are unhashable.
@dataclass(frozen=True, eq=False)
class LanguageSpec:
    """Everything the chunker knows about one language.

    Name paths: a definition's name is found by walking ``name_paths[node_type]`` from the definition node; each step
    is a field name or, when the node has no such field, the type of a named child (Kotlin has no ``name`` field, Go
    keeps the name of ``type X struct`` in a ``type_spec`` child). The default path is ``("name",)``. C-style
    declarators (``*foo(int)``, ``Foo::bar``) are unwrapped by the chunker after the path is walked.
    """

    name: str
    method: str = AST
    ts_name: str | None = None
    extensions: tuple[str, ...] = ()
    # Globs matched against the file's base name, checked before extensions (``CMakeLists.txt`` is not plain text).
    filenames: tuple[str, ...] = ()
    # Interpreters named on a ``#!`` line, for extension-less scripts.
    interpreters: tuple[str, ...] = ()
    # node type -> kind (function, method, class, struct, interface, enum, trait, impl, module, type, ...).
    definitions: Mapping[str, str] = field(default_factory=_frozen)
    # Definition node types whose nested functions are methods and whose name qualifies what they contain.
    containers: frozenset[str] = frozenset()
    # Nodes that stand for the single definition they wrap (decorators, ``export``, ``template <...>``).
    wrappers: frozenset[str] = frozenset()
    # Grouping nodes that are not units of their own (namespaces, ``#ifndef`` include guards, ``extern "C"``): always
    # walked into, even when small, so the definitions inside get their own names. They do not qualify names.
    transparent: frozenset[str] = frozenset()
    # node type -> {type of its ``value`` field -> kind}: ``const parse = (s) => ...`` is a function definition.
    value_definitions: Mapping[str, Mapping[str, str]] = field(default_factory=_frozen)
    name_paths: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    # node type -> path to the type a method belongs to, when it is written outside the type (Go receivers).
    receiver_paths: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    # Names for definitions that have none in the source (Swift ``init``, Kotlin ``companion object``).
    default_names: Mapping[str, str] = field(default_factory=_frozen)
    comments: frozenset[str] = frozenset()
    # Non-comment nodes that belong to the definition after them (Rust ``#[derive]``, TS method decorators).
    prefixes: frozenset[str] = frozenset()
    imports: frozenset[str] = frozenset()


def _spec(name: str, **kwargs: object) -> LanguageSpec:
    """Build a spec, freezing dict arguments and turning sets/lists into frozensets/tuples."""
    for key in ("definitions", "value_definitions", "name_paths", "receiver_paths", "default_names"):
        if key in kwargs:
            value = kwargs[key]
            assert isinstance(value, dict)
            if key == "value_definitions":
                value = {k: _frozen(v) for k, v in value.items()}
            kwargs[key] = _frozen(value)
    for key in ("containers", "wrappers", "transparent", "comments", "prefixes", "imports"):
        if key in kwargs:
            kwargs[key] = frozenset(kwargs[key])  # type: ignore[arg-type]
    for key in ("extensions", "filenames", "interpreters"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])  # type: ignore[arg-type]
    if "ts_name" not in kwargs and kwargs.get("method", AST) == AST:
        kwargs["ts_name"] = name
    return LanguageSpec(name=name, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# Tree-sitter languages
# ---------------------------------------------------------------------------------------------------------------------

PYTHON = _spec(
    "python",
    extensions=[".py", ".pyi", ".pyw"],
    filenames=["SConstruct", "SConscript"],
    interpreters=["python", "python2", "python3"],
    definitions={"function_definition": "function", "class_definition": "class"},
    containers={"class_definition"},
    wrappers={"decorated_definition"},
    comments={"comment"},
    imports={"import_statement", "import_from_statement", "future_import_statement"},
)

JAVASCRIPT = _spec(
    "javascript",
    extensions=[".js", ".mjs", ".cjs", ".jsx"],
    interpreters=["node", "nodejs"],
    definitions={
        "function_declaration": "function",
        "generator_function_declaration": "function",
        "class_declaration": "class",
        "method_definition": "method",
    },
    containers={"class_declaration", "class"},
    wrappers={"export_statement", "lexical_declaration", "variable_declaration"},
    value_definitions={
        "variable_declarator": {
            "arrow_function": "function",
            "function_expression": "function",
            "function": "function",
            "generator_function": "function",
            "class": "class",
        }
    },
    comments={"comment"},
    prefixes={"decorator"},
    imports={"import_statement"},
)

TYPESCRIPT = dataclasses.replace(
    JAVASCRIPT,
    name="typescript",
    ts_name="typescript",
    extensions=(".ts", ".mts", ".cts"),
    interpreters=("ts-node", "deno", "bun"),
    definitions=_frozen(
        {
            **JAVASCRIPT.definitions,
            "abstract_class_declaration": "class",
            "interface_declaration": "interface",
            "type_alias_declaration": "type",
            "enum_declaration": "enum",
            "internal_module": "module",
            "module": "module",
            "function_signature": "function",
        }
    ),
    containers=JAVASCRIPT.containers | {"abstract_class_declaration"},
    # ``namespace Foo {}`` is an expression statement wrapping an ``internal_module``; ``declare`` wraps anything.
    wrappers=JAVASCRIPT.wrappers | {"ambient_declaration", "expression_statement"},
)

TSX = dataclasses.replace(TYPESCRIPT, name="tsx", ts_name="tsx", extensions=(".tsx",), interpreters=())

GO = _spec(
    "go",
    extensions=[".go"],
    definitions={"function_declaration": "function", "method_declaration": "method", "type_declaration": "type"},
    name_paths={"type_declaration": ("type_spec", "name")},
    receiver_paths={"method_declaration": ("receiver", "parameter_declaration", "type")},
    comments={"comment"},
    imports={"import_declaration", "package_clause"},
)

RUST = _spec(
    "rust",
    extensions=[".rs"],
    definitions={
        "function_item": "function",
        "struct_item": "struct",
        "enum_item": "enum",
        "union_item": "struct",
        "trait_item": "trait",
        "impl_item": "impl",
        "mod_item": "module",
        "macro_definition": "macro",
        "type_item": "type",
    },
    containers={"impl_item", "trait_item"},
    # ``impl<T> Display for Foo<T>``: the block is named after the type it implements for.
    name_paths={"impl_item": ("type",)},
    comments={"line_comment", "block_comment"},
    prefixes={"attribute_item"},
    imports={"use_declaration", "extern_crate_declaration"},
)

JAVA = _spec(
    "java",
    extensions=[".java"],
    definitions={
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "class",
        "annotation_type_declaration": "interface",
        "method_declaration": "method",
        "constructor_declaration": "method",
        "compact_constructor_declaration": "method",
    },
    containers={"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"},
    comments={"line_comment", "block_comment"},
    imports={"import_declaration", "package_declaration"},
)

C = _spec(
    "c",
    extensions=[".c", ".h"],
    definitions={
        "function_definition": "function",
        "struct_specifier": "struct",
        "union_specifier": "struct",
        "enum_specifier": "enum",
        "type_definition": "type",
    },
    name_paths={"function_definition": ("declarator",), "type_definition": ("declarator",)},
    # ``declaration_list`` is the ``{ ... }`` of ``extern "C"`` (and of C++ namespaces).
    transparent={
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "linkage_specification",
        "declaration_list",
    },
    comments={"comment"},
    imports={"preproc_include"},
)

CPP = dataclasses.replace(
    C,
    name="cpp",
    ts_name="cpp",
    extensions=(".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".inl", ".tpp"),
    definitions=_frozen({**C.definitions, "class_specifier": "class"}),
    containers=frozenset({"class_specifier", "struct_specifier", "union_specifier"}),
    wrappers=frozenset({"template_declaration"}),
    transparent=C.transparent | {"namespace_definition"},
)

CSHARP = _spec(
    "csharp",
    extensions=[".cs", ".csx"],
    definitions={
        "class_declaration": "class",
        "struct_declaration": "struct",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "class",
        "record_struct_declaration": "struct",
        "method_declaration": "method",
        "constructor_declaration": "method",
        "destructor_declaration": "method",
        "operator_declaration": "method",
        "property_declaration": "property",
        "local_function_statement": "function",
    },
    containers={"class_declaration", "struct_declaration", "interface_declaration", "record_declaration"},
    default_names={"operator_declaration": "operator"},
    transparent={"namespace_declaration", "declaration_list"},
    comments={"comment"},
    imports={"using_directive"},
)

RUBY = _spec(
    "ruby",
    extensions=[".rb", ".rake", ".gemspec", ".ru"],
    filenames=["Rakefile", "Gemfile", "Guardfile", "Vagrantfile", "Podfile", "Fastfile"],
    interpreters=["ruby"],
    definitions={
        "class": "class",
        "module": "module",
        "method": "function",
        "singleton_method": "function",
        "singleton_class": "class",
    },
    containers={"class", "module", "singleton_class"},
    default_names={"singleton_class": "self"},
    comments={"comment"},
)

PHP = _spec(
    "php",
    extensions=[".php", ".phtml", ".php8"],
    interpreters=["php"],
    definitions={
        "class_declaration": "class",
        "interface_declaration": "interface",
        "trait_declaration": "trait",
        "enum_declaration": "enum",
        "function_definition": "function",
        "method_declaration": "method",
    },
    containers={"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"},
    transparent={"namespace_definition", "compound_statement"},
    comments={"comment"},
    prefixes={"attribute_list"},
    imports={"namespace_use_declaration"},
)

KOTLIN = _spec(
    "kotlin",
    extensions=[".kt", ".kts"],
    definitions={
        "class_declaration": "class",
        "object_declaration": "class",
        "companion_object": "class",
        "function_declaration": "function",
    },
    containers={"class_declaration", "object_declaration", "companion_object"},
    # The Kotlin grammar has no ``name`` fields: the name is the first identifier child of the right type.
    name_paths={
        "class_declaration": ("type_identifier",),
        "object_declaration": ("type_identifier",),
        "companion_object": ("type_identifier",),
        "function_declaration": ("simple_identifier",),
    },
    default_names={"companion_object": "Companion"},
    comments={"line_comment", "multiline_comment"},
    imports={"import_list", "package_header"},
)

SWIFT = _spec(
    "swift",
    extensions=[".swift"],
    definitions={
        # ``class``, ``struct``, ``enum``, ``actor`` and ``extension`` are all ``class_declaration``.
        "class_declaration": "class",
        "protocol_declaration": "interface",
        "function_declaration": "function",
        "protocol_function_declaration": "method",
        "init_declaration": "method",
        "deinit_declaration": "method",
        "subscript_declaration": "method",
    },
    containers={"class_declaration", "protocol_declaration"},
    # ``init`` has a ``name`` field only for its parameters' names, so it must not be read as the method's name.
    name_paths={"init_declaration": (), "deinit_declaration": (), "subscript_declaration": ()},
    default_names={"init_declaration": "init", "deinit_declaration": "deinit", "subscript_declaration": "subscript"},
    comments={"comment", "multiline_comment"},
    imports={"import_declaration"},
)

SCALA = _spec(
    "scala",
    extensions=[".scala", ".sc", ".sbt"],
    interpreters=["scala"],
    definitions={
        "class_definition": "class",
        "object_definition": "class",
        "trait_definition": "trait",
        "enum_definition": "enum",
        "function_definition": "function",
        "function_declaration": "function",
    },
    containers={"class_definition", "object_definition", "trait_definition", "enum_definition"},
    comments={"comment", "block_comment"},
    imports={"import_declaration", "package_clause"},
)

BASH = _spec(
    "bash",
    extensions=[".sh", ".bash", ".zsh", ".ksh"],
    filenames=[".bashrc", ".bash_profile", ".bash_logout", ".profile", ".zshrc", ".zprofile", ".envrc"],
    interpreters=["bash", "sh", "zsh", "dash", "ksh"],
    definitions={"function_definition": "function"},
    comments={"comment"},
)

LUA = _spec(
    "lua",
    extensions=[".lua"],
    interpreters=["lua", "luajit"],
    definitions={"function_declaration": "function"},
    comments={"comment"},
)

# ---------------------------------------------------------------------------------------------------------------------
# Markdown and line-chunked text
# ---------------------------------------------------------------------------------------------------------------------

MARKDOWN_SPEC = _spec("markdown", method=MARKDOWN, extensions=[".md", ".markdown", ".mdown", ".mkd", ".mdx"])


def _lines(name: str, extensions: tuple[str, ...] = (), filenames: tuple[str, ...] = ()) -> LanguageSpec:
    """A language chunked by line windows only."""
    return _spec(name, method=LINES, extensions=extensions, filenames=filenames)


_LINE_SPECS: tuple[LanguageSpec, ...] = (
    _lines("yaml", (".yaml", ".yml"), (".clang-format", ".yamllint")),
    _lines("json", (".json", ".jsonc", ".json5", ".jsonl", ".ndjson", ".ipynb"), (".babelrc", ".eslintrc")),
    _lines("toml", (".toml",), ("Pipfile", "Cargo.lock", "poetry.lock", "uv.lock")),
    _lines("ini", (".ini", ".cfg", ".conf", ".properties"), (".editorconfig", ".flake8", ".pylintrc")),
    _lines("rst", (".rst",)),
    _lines("html", (".html", ".htm", ".xhtml", ".vue", ".svelte", ".jinja", ".j2", ".hbs", ".mustache")),
    _lines("css", (".css", ".scss", ".sass", ".less")),
    _lines("sql", (".sql",)),
    _lines("xml", (".xml", ".xsd", ".xsl", ".xslt", ".svg", ".plist", ".csproj", ".fsproj", ".pom")),
    _lines("dockerfile", (".dockerfile",), ("Dockerfile", "Dockerfile.*", "*.Dockerfile", "Containerfile")),
    _lines("make", (".mk", ".mak"), ("Makefile", "makefile", "GNUmakefile")),
    _lines("cmake", (".cmake",), ("CMakeLists.txt",)),
    _lines("protobuf", (".proto",)),
    _lines("graphql", (".graphql", ".gql")),
    _lines("terraform", (".tf", ".tfvars", ".hcl")),
    _lines("csv", (".csv", ".tsv")),
    _lines("dotenv", (".env",), (".env", ".env.*")),
    _lines("ignore", (), (".gitignore", ".dockerignore", ".npmignore", ".gitattributes", "CODEOWNERS")),
    _lines(TEXT, (".txt", ".text", ".log"), ("LICENSE", "LICENSE.*", "COPYING", "NOTICE", "AUTHORS", "README")),
)

_SPECS: tuple[LanguageSpec, ...] = (
    _lines("yaml", [".yaml", ".yml"], [".clang-format", ".yamllint"]),
    _lines("json", [".json", ".jsonc", ".json5", ".jsonl", ".ndjson", ".ipynb"], [".babelrc", ".eslintrc"]),
    _lines("toml", [".toml"], ["Pipfile", "Cargo.lock", "poetry.lock", "uv.lock"]),
    _lines("ini", [".ini", ".cfg", ".conf", ".properties", ".editorconfig"], [".editorconfig", ".flake8", ".pylintrc"]),
    _lines("rst", [".rst"]),
    _lines("html", [".html", ".htm", ".xhtml", ".vue", ".svelte", ".jinja", ".j2", ".hbs", ".mustache"]),
    _lines("css", [".css", ".scss", ".sass", ".less"]),
    _lines("sql", [".sql"]),
    _lines("xml", [".xml", ".xsd", ".xsl", ".xslt", ".svg", ".plist", ".csproj", ".fsproj", ".pom"]),
    _lines("dockerfile", [".dockerfile"], ["Dockerfile", "Dockerfile.*", "*.Dockerfile", "Containerfile"]),
    _lines("make", [".mk", ".mak"], ["Makefile", "makefile", "GNUmakefile", "*.mk"]),
    _lines("cmake", [".cmake"], ["CMakeLists.txt"]),
    _lines("protobuf", [".proto"]),
    _lines("graphql", [".graphql", ".gql"]),
    _lines("terraform", [".tf", ".tfvars", ".hcl"]),
    _lines("csv", [".csv", ".tsv"]),
    _lines("dotenv", [".env"], [".env", ".env.*"]),
    _lines("ignore", [], [".gitignore", ".dockerignore", ".npmignore", ".gitattributes", "CODEOWNERS"]),
    _lines(TEXT, [".txt", ".text", ".log"], ["LICENSE", "LICENSE.*", "COPYING", "NOTICE", "AUTHORS", "README"]),
)

_SPECS: tuple[LanguageSpec, ...] = (
    PYTHON,
    JAVASCRIPT,
    TYPESCRIPT,
    TSX,
    GO,
    RUST,
    JAVA,
    C,
    CPP,
    CSHARP,
    RUBY,
    PHP,
    KOTLIN,
    SWIFT,
    SCALA,
    BASH,
    LUA,
    MARKDOWN_SPEC,
    *_LINE_SPECS,
)

LANGUAGES: Mapping[str, LanguageSpec] = _frozen({spec.name: spec for spec in _SPECS})

# Languages chunked with a tree-sitter grammar (the list the tests and docs promise).
AST_LANGUAGES: tuple[str, ...] = tuple(spec.name for spec in _SPECS if spec.method == AST)

_BY_EXTENSION: Mapping[str, str] = _frozen({ext: spec.name for spec in _SPECS for ext in spec.extensions})
_BY_INTERPRETER: Mapping[str, str] = _frozen({i: spec.name for spec in _SPECS for i in spec.interpreters})
_FILENAME_GLOBS: tuple[tuple[str, str], ...] = tuple((g, spec.name) for spec in _SPECS for g in spec.filenames)

_SHEBANG = re.compile(r"^#!\s*(\S+)(?:\s+(?:-\S+\s+)*(\S+))?")


def spec_for(language: str) -> LanguageSpec | None:
    """The spec of a language name (as returned by `language_for_path`), or None if unknown."""
    return LANGUAGES.get(language)


def language_for_path(path: str) -> str | None:
    """The language of a file from its name alone: special file names first, then the extension.

    Returns None when the name says nothing (the caller may still treat the file as ``text``).
    """
    base = posixpath.basename(path.replace("\\", "/"))
    for glob, language in _FILENAME_GLOBS:
        if fnmatch.fnmatchcase(base, glob):
            return language
    # A dot-file like ``.bashrc`` is matched above; otherwise its whole name is not an extension.
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        return None
    return _BY_EXTENSION.get("." + ext.lower())


def language_from_shebang(text: str) -> str | None:
    """The language named by a ``#!`` first line (``#!/usr/bin/env python3`` -> ``python``), or None."""
    if not text.startswith("#!"):
        return None
    match = _SHEBANG.match(text[: text.find("\n") if "\n" in text else len(text)])
    if not match:
        return None
    program = posixpath.basename(match.group(1))
    if program == "env" and match.group(2):
        program = posixpath.basename(match.group(2))
    # ``python3.11`` is looked up as itself, then as ``python``.
    for candidate in (program, re.sub(r"[\d.]+$", "", program)):
        if candidate in _BY_INTERPRETER:
            return _BY_INTERPRETER[candidate]
    return None

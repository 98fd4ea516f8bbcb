"""Tool catalogues: read tool definitions from files and live MCP servers into one normalised form.

What this module owns:
- `ToolDef`: one tool, keyed by ``(server, name)``, carrying its full original definition unchanged (so a host can pass
  it on as is) plus the fields the index reads (description, parameters).
- Parsing of the formats agents meet: an MCP ``tools/list`` result (``{"tools": [...]}`` or a bare list of
  ``{name, description, inputSchema}``), the OpenAI function-calling format (``{"type": "function", "function":
  {...}}``, or a bare ``{name, description, parameters}``), and a catalogue of downstream MCP servers in the usual
  ``{"mcpServers": {NAME: {"command": ..., "args": [...], "env": {...}} | {"url": ...}}}`` shape.
- Fetching the tools of downstream servers with the mcp SDK client, and deciding when a fetched listing is stale (TTL).

Malformed definitions never abort a load: each is reported as a `CatalogProblem` and skipped, the rest are kept.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from indexer.errors import UserError

DEFAULT_SERVER = "local"
_NAME_OK = re.compile(r"^[A-Za-z0-9_.\-/:]{1,128}$")


@dataclass(frozen=True)
class ToolDef:
    """One tool of one server. ``definition`` is the original JSON object, untouched."""

    server: str
    name: str
    description: str
    parameters: dict[str, Any]
    definition: dict[str, Any]
    title: str = ""
    fmt: str = "mcp"  # "mcp" or "openai": which shape ``definition`` has

    @property
    def key(self) -> str:
        """``server/name``: unique in a catalogue (the same name on two servers gives two keys)."""
        return f"{self.server}/{self.name}"

    @property
    def definition_hash(self) -> str:
        """Changes when anything the index reads changes; drives re-embedding."""
        blob = json.dumps([self.server, self.definition], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def param_items(self) -> list[tuple[str, str]]:
        """``(parameter name, description)`` for the top-level properties of the input schema."""
        props = self.parameters.get("properties") if isinstance(self.parameters, dict) else None
        if not isinstance(props, dict):
            return []
        out = []
        for pname, spec in props.items():
            desc = spec.get("description", "") if isinstance(spec, dict) else ""
            out.append((str(pname), desc if isinstance(desc, str) else ""))
        return out


@dataclass(frozen=True)
class CatalogProblem:
    """A definition that was skipped, and why (shown to the user; never fatal)."""

    source: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} {self.where}: {self.reason}"


@dataclass(frozen=True)
class ServerSpec:
    """A downstream MCP server: a stdio command or an HTTP URL."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.url:
            return {"url": self.url}
        out: dict[str, Any] = {"command": self.command, "args": list(self.args)}
        if self.env:
            out["env"] = dict(self.env)
        if self.cwd:
            out["cwd"] = self.cwd
        return out


@dataclass
class CatalogLoad:
    """What reading one or more sources produced."""

    tools: list[ToolDef] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)
    servers: list[ServerSpec] = field(default_factory=list)
    # Servers whose tools this load holds in full: the index replaces their previous tools with these.
    complete_servers: set[str] = field(default_factory=set)

    def extend(self, other: "CatalogLoad") -> None:
        self.tools += other.tools
        self.problems += other.problems
        self.servers += other.servers
        self.complete_servers |= other.complete_servers


# ---------------------------------------------------------------------------------------------------------------
# parsing


def _parse_one(obj: Any, server: str, source: str, where: str) -> ToolDef | CatalogProblem:
    """One tool definition in MCP or OpenAI shape, or the reason it cannot be used."""
    if not isinstance(obj, dict):
        return CatalogProblem(source, where, f"expected a JSON object, got {type(obj).__name__}")
    fmt = "mcp"
    body = obj
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        fmt, body = "openai", obj["function"]
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return CatalogProblem(source, where, "missing a string `name`")
    if not _NAME_OK.match(name):
        return CatalogProblem(source, where, f"tool name {name[:60]!r} has characters a tool name cannot have")
    desc = body.get("description", "")
    if desc is None:
        desc = ""
    if not isinstance(desc, str):
        return CatalogProblem(source, f"{where} ({name})", "`description` is not a string")
    if "inputSchema" in body:
        params = body["inputSchema"]
    elif "input_schema" in body:  # the Anthropic API shape
        params = body["input_schema"]
    elif "parameters" in body:
        params, fmt = body["parameters"], ("openai" if fmt == "openai" else "function")
    else:
        params = {"type": "object", "properties": {}}
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        return CatalogProblem(source, f"{where} ({name})", "the input schema is not a JSON object")
    props = params.get("properties")
    if props is not None and not isinstance(props, dict):
        return CatalogProblem(source, f"{where} ({name})", "`properties` of the input schema is not an object")
    title = body.get("title")
    if not title and isinstance(body.get("annotations"), dict):
        title = body["annotations"].get("title")
    return ToolDef(
        server=server,
        name=name,
        description=desc,
        parameters=params,
        definition=obj,
        title=title if isinstance(title, str) else "",
        fmt=fmt,
    )


def parse_tools(data: Any, server: str = DEFAULT_SERVER, source: str = "<input>") -> CatalogLoad:
    """Tool definitions from parsed JSON: a ``tools/list`` result, a list of tools, or an OpenAI ``tools`` array.

    A mapping ``{server: listing}`` (several servers in one file) is accepted too. Duplicate names within one server
    keep the first definition and report the others.
    """
    load = CatalogLoad()
    if isinstance(data, dict) and "tools" in data:
        items = data["tools"]
        if not isinstance(items, list):
            load.problems.append(CatalogProblem(source, "tools", "`tools` is not a list"))
            return load
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict) and ("name" in data or data.get("type") == "function"):
        items = [data]
    elif isinstance(data, dict) and data and all(isinstance(v, (dict, list)) for v in data.values()):
        for sub_server, listing in data.items():
            load.extend(parse_tools(listing, str(sub_server), source))
        return load
    else:
        load.problems.append(CatalogProblem(source, "top level", "not a tools/list result, a list of tools, or an "
                                            "OpenAI tools array"))
        return load
    seen: set[str] = set()
    for i, obj in enumerate(items):
        got = _parse_one(obj, server, source, f"tools[{i}]")
        if isinstance(got, CatalogProblem):
            load.problems.append(got)
        elif got.name in seen:
            load.problems.append(CatalogProblem(source, f"tools[{i}]", f"duplicate tool name {got.name!r} on server "
                                                f"{server!r}; kept the first"))
        else:
            seen.add(got.name)
            load.tools.append(got)
    load.complete_servers.add(server)
    return load


def parse_servers(data: dict[str, Any], source: str = "<input>") -> CatalogLoad:
    """Server specs from an ``{"mcpServers": {...}}`` catalogue (bad entries are reported and skipped)."""
    load = CatalogLoad()
    entries = data.get("mcpServers")
    if not isinstance(entries, dict):
        load.problems.append(CatalogProblem(source, "mcpServers", "`mcpServers` is not an object of servers"))
        return load
    for name, spec in entries.items():
        where = f"mcpServers.{name}"
        if not isinstance(spec, dict):
            load.problems.append(CatalogProblem(source, where, "expected an object with `command` or `url`"))
            continue
        url = spec.get("url")
        cmd = spec.get("command")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            load.servers.append(ServerSpec(name=str(name), url=url))
        elif isinstance(cmd, str) and cmd:
            args = spec.get("args") or []
            env = spec.get("env") or {}
            if not isinstance(args, list) or not isinstance(env, dict):
                load.problems.append(CatalogProblem(source, where, "`args` must be a list and `env` an object"))
                continue
            load.servers.append(ServerSpec(
                name=str(name), command=cmd, args=tuple(str(a) for a in args),
                env=tuple(sorted((str(k), str(v)) for k, v in env.items())), cwd=spec.get("cwd"),
            ))
        else:
            load.problems.append(CatalogProblem(source, where, "needs a `command` (stdio) or an http(s) `url`"))
    return load


def read_catalog_file(path: Path, server: str | None = None) -> CatalogLoad:
    """Read one catalogue file: tool definitions (server = ``server`` or the file stem) or an ``mcpServers`` list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"catalogue file {path} does not exist: check the path") from None
    except OSError as exc:
        raise UserError(f"cannot read catalogue file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"catalogue file {path} is not valid JSON (line {exc.lineno}: {exc.msg}): fix it and "
                        "index again") from None
    if isinstance(data, dict) and "mcpServers" in data:
        return parse_servers(data, str(path))
    return parse_tools(data, server or path.stem, str(path))


# ---------------------------------------------------------------------------------------------------------------
# live servers


def _client_target(spec: ServerSpec) -> Any:
    if spec.url:
        return spec.url
    from mcp.client.stdio import StdioServerParameters

    import os

    env = {**os.environ, **dict(spec.env)} if spec.env else None
    return StdioServerParameters(command=spec.command or "", args=list(spec.args), env=env, cwd=spec.cwd)


async def fetch_server_tools(spec: ServerSpec, timeout: float = 60.0, mode: str = "auto") -> CatalogLoad:
    """All tools a live server lists (every page), parsed like a file. A server that cannot be reached is a problem,
    not an exception, so one broken server does not stop the others."""
    from mcp import Client

    load = CatalogLoad()
    raw: list[dict[str, Any]] = []
    source = f"server {spec.name}"
    try:
        import anyio

        with anyio.fail_after(timeout):
            async with Client(_client_target(spec), mode=mode, read_timeout_seconds=timeout) as client:  # type: ignore[arg-type]
                cursor = None
                for _ in range(1000):
                    page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                    raw += [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools]
                    cursor = page.next_cursor
                    if not cursor:
                        break
    except Exception as exc:  # noqa: BLE001 - reported per server
        detail = str(exc) or type(exc).__name__
        if hasattr(exc, "exceptions"):  # an ExceptionGroup from the transport's task group
            detail = "; ".join(str(e) or type(e).__name__ for e in exc.exceptions)  # type: ignore[attr-defined]
        load.problems.append(CatalogProblem(source, spec.url or spec.command or "", f"could not list tools: {detail}"))
        return load
    got = parse_tools({"tools": raw}, spec.name, source)
    load.extend(got)
    return load


async def fetch_servers(specs: Iterable[ServerSpec], timeout: float = 60.0) -> CatalogLoad:
    """`fetch_server_tools` for several servers, concurrently."""
    import anyio

    specs = list(specs)
    results: list[CatalogLoad | None] = [None] * len(specs)

    async def one(i: int, spec: ServerSpec) -> None:
        results[i] = await fetch_server_tools(spec, timeout)

    async with anyio.create_task_group() as tg:
        for i, spec in enumerate(specs):
            tg.start_soon(one, i, spec)
    load = CatalogLoad()
    for r in results:
        if r is not None:
            load.extend(r)
    return load


def is_stale(fetched_at: float, ttl_seconds: float, now: float | None = None) -> bool:
    """Whether a listing fetched at ``fetched_at`` must be fetched again (``ttl_seconds <= 0`` means never stale)."""
    if ttl_seconds <= 0:
        return False
    return (now if now is not None else time.time()) - fetched_at >= ttl_seconds


# ---------------------------------------------------------------------------------------------------------------
# text for the index

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def split_identifier(name: str) -> list[str]:
    """``getUserByID`` / ``get_user.by-id`` -> ``["get", "user", "by", "id"]`` (lower case)."""
    words: list[str] = []
    for part in _SPLIT.split(name):
        if part:
            words += [w.lower() for w in _CAMEL.split(part) if w]
    return words


def tool_fields(tool: ToolDef) -> dict[str, str]:
    """The text of each field the filter scores: name (split into words), server, description, parameters."""
    params = "; ".join(
        f"{' '.join(split_identifier(p))}: {d}" if d else " ".join(split_identifier(p)) for p, d in tool.param_items()
    )
    name_words = " ".join(split_identifier(tool.name))
    if tool.title and tool.title.lower() != name_words:
        name_words = f"{name_words} ({tool.title})"
    return {
        "name": name_words,
        "server": " ".join(split_identifier(tool.server)),
        "description": tool.description.strip(),
        "params": params,
    }


def embed_text(tool: ToolDef) -> str:
    """The text embedded for a tool: name words, server, description, then parameters with their descriptions.

    The name and description come first because the encoder truncates long texts at 256 tokens.
    """
    f = tool_fields(tool)
    parts = [f"{f['name']}.", f"{f['description']}"]
    if f["params"]:
        parts.append(f"Parameters: {f['params']}")
    parts.append(f"(server: {f['server']})")
    return " ".join(p for p in parts if p.strip())


def estimate_tokens(definition: dict[str, Any]) -> int:
    """Rough prompt cost of a definition: compact JSON length / 4 (the usual chars-per-token rule for English+JSON)."""
    return max(1, len(json.dumps(definition, separators=(",", ":"), ensure_ascii=False)) // 4)

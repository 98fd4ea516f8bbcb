"""Start-up and first-search latency of `mcp-router serve`, against a trivial one-tool `mcp` server.

1. Time from process start to the `tools/list` answer, through the SDK's stdio client (a fresh server process per
   measurement), interleaved with `benchmarks/trivial_server.py` run the same way; median of ``--runs`` each, per
   protocol era (``auto`` = 2026-07-28 discovery, ``legacy`` = the initialize handshake). Reported as a ratio.
2. The first `search_code` call of a fresh server (the model still loading in the background: cold) against later calls
   in the same process (warm).

    python benchmarks/bench_server_startup.py                # builds a small indexed repo from fixtures/languages
    python benchmarks/bench_server_startup.py --repo PATH    # or serve an already indexed repository

Prints a rich table and writes benchmarks/results/bench_server_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_server_startup.json"
QUERIES = ["parse_duration", "where are redirects followed", "retry with backoff", "Session.send",
           "read the configuration file", "strip the fragment of a url", "http status codes", "is the url secure",
           "cookie handling", "markdown section about installation", "timeout default"]


def mcp_router_command() -> list[str]:
    script = shutil.which("mcp-router") or shutil.which("mcp-router", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mcp_router"]


def build_sample_repo(dest: Path) -> Path:
    """Every file of fixtures/languages under src/, indexed with the real model (one-off, before timing)."""
    root = dest / "repo"
    shutil.copytree(REPO / "fixtures" / "languages", root / "src")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*mcp_router_command(), "--root", str(root), "index", "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    return root


def params(command: list[str]) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    return StdioServerParameters(command=command[0], args=command[1:], env=env, cwd="/")


async def time_to_tools_list(server: StdioServerParameters, mode: str) -> float:
    """Seconds from spawning the server to holding its tools/list answer (shutdown is not counted)."""
    t0 = time.perf_counter()
    async with Client(server, mode=mode, read_timeout_seconds=120) as client:
        tools = (await client.list_tools()).tools
        elapsed = time.perf_counter() - t0
    assert tools
    return elapsed


async def search_latencies(server: StdioServerParameters, n_warm: int) -> tuple[float, float, list[float]]:
    """(start→first result, first search_code call, later calls) in one fresh server process, in seconds."""
    t0 = time.perf_counter()
    async with Client(server, mode="auto", read_timeout_seconds=120) as client:
        await client.list_tools()
        t1 = time.perf_counter()
        first = await client.call_tool("search_code", {"query": QUERIES[0], "k": 5})
        t2 = time.perf_counter()
        assert not first.is_error, first.content
        warm = []
        for query in QUERIES[1 : 1 + n_warm]:
            t = time.perf_counter()
            r = await client.call_tool("search_code", {"query": query, "k": 5})
            warm.append(time.perf_counter() - t)
            assert not r.is_error, r.content
    return t2 - t0, t2 - t1, warm


def med_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


async def run(args: argparse.Namespace, repo: Path, console: Console) -> dict[str, Any]:
    ours_cmd = [*mcp_router_command(), "serve", "--root", str(repo)]
    trivial_cmd = [sys.executable, str(REPO / "benchmarks" / "trivial_server.py")]
    ours, trivial = params(ours_cmd), params(trivial_cmd)
    startup: dict[str, dict[str, list[float]]] = {m: {"ours": [], "trivial": []} for m in args.modes}
    for i in range(args.runs):
        for mode in args.modes:  # interleaved, so machine noise hits both servers alike
            startup[mode]["trivial"].append(await time_to_tools_list(trivial, mode))
            startup[mode]["ours"].append(await time_to_tools_list(ours, mode))
        console.print(f"[dim]start-up round {i + 1}/{args.runs} done[/]")
    cold_total, cold_first, warm = [], [], []
    for i in range(args.cold_runs):
        total, first, later = await search_latencies(ours, args.warm_queries)
        cold_total.append(total)
        cold_first.append(first)
        warm.extend(later)
        console.print(f"[dim]search round {i + 1}/{args.cold_runs} done[/]")
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "mcp": version("mcp"),
                    "platform": platform.platform()},
        "repo": str(repo),
        "command_ours": " ".join(ours_cmd),
        "command_trivial": " ".join(trivial_cmd),
        "runs": args.runs,
        "startup": {},
        "search": {
            "runs": args.cold_runs,
            "cold_first_call_ms_median": med_ms(cold_first),
            "cold_start_to_first_result_ms_median": med_ms(cold_total),
            "warm_call_ms_median": med_ms(warm),
            "cold_first_call_ms": [round(v * 1000, 1) for v in cold_first],
            "warm_call_ms": [round(v * 1000, 1) for v in warm],
        },
    }
    for mode, series in startup.items():
        o, t = statistics.median(series["ours"]), statistics.median(series["trivial"])
        result["startup"][mode] = {
            "ours_ms_median": round(o * 1000, 1), "trivial_ms_median": round(t * 1000, 1),
            "ratio": round(o / t, 3), "target_ratio": 1.5,
            "ours_ms": [round(v * 1000, 1) for v in series["ours"]],
            "trivial_ms": [round(v * 1000, 1) for v in series["trivial"]],
        }
    return result


def render(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"mcp-router serve: start-up and first search ({result['machine']['cpus']} CPUs, "
                        f"median of {result['runs']})")
    for col, justify in (("measurement", "left"), ("mcp-router", "right"), ("trivial mcp server", "right"),
                         ("ratio", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for mode, row in result["startup"].items():
        ok = "green" if row["ratio"] <= row["target_ratio"] else "red"
        table.add_row(f"process start → tools/list ({mode})", f"{row['ours_ms_median']:.0f} ms",
                      f"{row['trivial_ms_median']:.0f} ms", f"[{ok}]{row['ratio']:.2f}×[/] (target ≤ 1.5×)")
    s = result["search"]
    table.add_row("first search_code call, cold model", f"{s['cold_first_call_ms_median']:.0f} ms", "-", "-")
    table.add_row("process start → first search result", f"{s['cold_start_to_first_result_ms_median']:.0f} ms",
                  "-", "-")
    table.add_row("search_code call, warm model", f"{s['warm_call_ms_median']:.1f} ms", "-", "-")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=None, help="an indexed repository to serve (default: a sample)")
    parser.add_argument("--runs", type=int, default=10, help="start-up measurements per server and mode")
    parser.add_argument("--modes", nargs="+", default=["auto", "legacy"], choices=["auto", "legacy"])
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes for the cold-search measurement")
    parser.add_argument("--warm-queries", type=int, default=10, help="warm search calls per process")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="mcp-router-bench-") as tmp:
        repo = args.repo.resolve() if args.repo else build_sample_repo(Path(tmp))
        result = anyio.run(run, args, repo, console)
    render(result, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(f"[dim]wrote {args.out}[/]")


if __name__ == "__main__":
    main()

"""Watch mode: edit-to-searchable latency, the cost of a 200-file branch switch, and idle CPU.

Dataset: the sources of a few installed packages copied into a temp repository (default ≥ 300 Python files).

1. Full index of the tree (the baseline: seconds and chunks embedded).
2. Edit-to-searchable latency, from the file write to the first search that returns the new content, p50/p95 over
   ``--edits`` edits, two ways:
   - ``watcher``: searches without query-time refresh, so only the watcher (events + quiet period + incremental
     index) makes the edit visible;
   - ``freshness``: the default search (refresh on): the search hands the edited file to the watcher itself.
3. Branch switch: ``--switch`` files rewritten at once (a function added to each, one line changed), as ``git checkout``
   does; how many batches the watcher made, seconds until all are indexed, chunks embedded vs reused.
4. Idle CPU of the watching process over ``--idle`` seconds.

Usage: python benchmarks/bench_watch.py [--packages mcp,pathspec,...] [--edits 20] [--switch 200]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

DEFAULT_PACKAGES = "mcp,pathspec,watchdog,uvicorn,starlette,h11,tqdm"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", default=DEFAULT_PACKAGES, help="installed packages whose sources form the tree")
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--switch", type=int, default=200)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--debounce-ms", type=int, default=300)
    ap.add_argument("--tree", default=None, help="reuse a tree (and its index) left by an earlier run instead of copying")
    ap.add_argument("--full-seconds", type=float, default=None, help="with --tree: the full-index time measured before")
    ap.add_argument("--full-chunks", type=int, default=None, help="with --tree: the chunks that full index embedded")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "watch.json"))
    args = ap.parse_args()
    console = Console()

    import importlib.util

    from indexer.store import CodeStore
    from mcp_router import codeindex
    from mcp_router.app import App
    from mcp_router.watch import watcher_for

    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-")) if not args.tree else Path(args.tree).parent
    root = tmp / "repo" if not args.tree else Path(args.tree)
    (root / ".git").mkdir(parents=True, exist_ok=True)
    for name in ([] if args.tree else args.packages.split(",")):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"package {name} is not installed as a folder: pick another with --packages")
        src = Path(list(spec.submodule_search_locations)[0])
        shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    py_files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    console.print(f"tree: {len(py_files)} Python files from {args.packages} in {root}")

    app = App(root)
    app.encoder.load()
    console.print("full index (baseline)...")
    full = codeindex.reindex(app)
    if args.tree:  # the index exists: the baseline was measured by the run that built it
        full.seconds = args.full_seconds or full.seconds
        full.chunks_embedded = args.full_chunks or full.chunks_embedded
    console.print(f"  {full.seconds:.1f}s, {full.chunks_embedded} chunks embedded, {full.chunks_total} in index")

    w = watcher_for(app, debounce_ms=args.debounce_ms)
    w.start()
    assert w.wait_ready(600)
    rng = random.Random(7)

    def edit(i: int, tag: str) -> tuple[str, str]:
        rel = rng.choice(py_files)
        token = f"bench_{tag}_{i}_{rng.randrange(10**9)}"
        path = root / rel
        path.write_text(path.read_text() + f"\n\ndef {token}():\n    return '{token} edited'\n")
        return rel, token

    def visible(token: str, refresh: bool) -> bool:
        res = codeindex.search_code(app, token, k=3, refresh=refresh)
        return any(token in h.code for h in res.results)

    latencies: dict[str, list[float]] = {"watcher": [], "freshness": []}
    misses: list[dict] = []
    for mode in ("watcher", "freshness"):
        for i in range(args.edits):
            w.wait_for(lambda: w.idle, 120)
            time.sleep(0.5)  # let the previous edit's events drain
            rel, token = edit(i, mode)
            t0 = time.perf_counter()
            while not visible(token, refresh=(mode == "freshness")):
                if time.perf_counter() - t0 > 60:
                    indexed = any(token in t for t in CodeStore.open(app.index_dir).table("chunks").to_arrow()
                                  .column("text").to_pylist())
                    misses.append({"mode": mode, "file": rel, "chunk_indexed": indexed})
                    console.print(f"[red]miss[/]: {rel} not returned within 60 s (chunk indexed: {indexed})")
                    break
                time.sleep(0.02)
            else:
                latencies[mode].append(time.perf_counter() - t0)
        console.print(f"  {mode}: p50 {statistics.median(latencies[mode]):.2f}s")

    # Branch switch: rewrite many files at once.
    w.wait_for(lambda: w.idle, 120)
    time.sleep(1.0)
    start_hist = len(w.history)
    embedded0, reused0 = w.status.chunks_embedded, w.status.chunks_reused
    switched = rng.sample(py_files, min(args.switch, len(py_files)))
    t0 = time.perf_counter()
    for j, rel in enumerate(switched):
        path = root / rel
        text = path.read_text()
        lines = text.splitlines()
        if lines:
            k = rng.randrange(len(lines))
            lines[k] = lines[k] + f"  # branch change {j}"
        path.write_text("\n".join(lines) + f"\n\ndef branch_helper_{j}(x):\n    return x + {j}\n")
    write_s = time.perf_counter() - t0
    store = CodeStore.open(app.index_dir)

    def all_indexed() -> bool:
        rows = store.file_rows()
        for rel in switched:
            st = (root / rel).stat()
            row = rows.get(rel)
            if row is None or row["mtime_ns"] != st.st_mtime_ns:
                return False
        return True

    w.wait_for(lambda: w.idle and all_indexed(), 1200)
    switch_s = time.perf_counter() - t0
    switch_batches = [r for r in list(w.history)[start_hist:] if r.kind == "batch"]
    switch_embedded = w.status.chunks_embedded - embedded0
    switch_reused = w.status.chunks_reused - reused0

    # Idle CPU of this process (the watcher's threads) while nothing changes.
    w.wait_for(lambda: w.idle, 120)
    time.sleep(1.0)
    c0, t0 = time.process_time(), time.perf_counter()
    time.sleep(args.idle)
    idle_cpu = (time.process_time() - c0) / (time.perf_counter() - t0) * 100
    w.stop()

    result = {
        "date": date.today().isoformat(),
        "dataset": {"packages": args.packages, "python_files": len(py_files), "chunks": full.chunks_total},
        "debounce_ms": args.debounce_ms,
        "full_index": {"seconds": round(full.seconds, 2), "chunks_embedded": full.chunks_embedded},
        "edit_to_searchable_s": {m: {"p50": round(statistics.median(v), 3), "p95": round(pct(v, 0.95), 3),
                                     "n": len(v), "all": [round(x, 3) for x in v]} for m, v in latencies.items()},
        "branch_switch": {"files": len(switched), "write_seconds": round(write_s, 3), "batches": len(switch_batches),
                          "seconds_to_indexed": round(switch_s, 2), "chunks_embedded": switch_embedded,
                          "chunks_reused": switch_reused},
        "idle_cpu_percent": round(idle_cpu, 3),
        "misses": misses,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if not args.tree:
        shutil.rmtree(tmp, ignore_errors=True)

    t = Table(title=f"watch mode · {len(py_files)} files, {full.chunks_total} chunks · debounce {args.debounce_ms} ms")
    t.add_column("metric")
    t.add_column("ours", justify="right")
    t.add_column("baseline", justify="right")
    for m, label in (("watcher", "edit → searchable, watcher only"), ("freshness", "edit → searchable, search refresh")):
        v = result["edit_to_searchable_s"][m]
        t.add_row(f"{label} (p50 / p95, n={v['n']})", f"{v['p50']:.2f}s / {v['p95']:.2f}s", "-")
    b = result["branch_switch"]
    t.add_row(f"{b['files']}-file branch switch: time to indexed", f"{b['seconds_to_indexed']:.1f}s",
              f"full index {full.seconds:.1f}s")
    t.add_row(f"{b['files']}-file branch switch: chunks embedded", f"{b['chunks_embedded']} (reused {b['chunks_reused']})",
              f"full index {full.chunks_embedded}")
    t.add_row(f"{b['files']}-file branch switch: batches", str(b["batches"]), "-")
    t.add_row(f"idle CPU over {args.idle:.0f}s", f"{result['idle_cpu_percent']:.2f}%", "-")
    console.print(t)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

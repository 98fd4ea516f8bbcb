"""Indexing cost and search latency on a real project we did not write.

Runs the CLI (`mcp-router index --json`) as a user would, on a copy of installed package sources:
1. full index, compared with the raw `Encoder.encode()` time of the same (unique) chunk texts, measured in this run;
2. a no-change re-run;
3. one file edited, then a re-run;
4. a directory renamed, then a re-run (must embed nothing);
5. search latency p50/p95 (hybrid, warm, in-process) on that index, and on a >= 50k-chunk index built by
   replicating the real rows with small vector noise (a scale test of the store: the semantic content is
   repeated, the row count and vector maths are real), with and without the ANN index.

    python benchmarks/bench_indexing.py                       # rich + pygments sources
    python benchmarks/bench_indexing.py --packages rich,pygments --big-rows 60000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console()
QUERIES = [
    "render a table with borders", "progress bar with ETA", "parse command line options", "syntax highlighting",
    "wrap long lines of text", "measure the width of a unicode string", "read configuration from environment",
    "Console.print", "Table.add_row", "handle keyboard interrupt", "color conversion rgb to hex",
    "pretty print nested data", "markdown rendering", "live updating display", "prompt for a password",
    "format a traceback", "click.option", "echo to stderr", "split text into segments", "file size formatting",
]


def run_index(work: Path) -> tuple[float, dict]:
    exe = shutil.which("mcp-router") or sys.executable
    cmd = [exe, "--root", str(work), "index", "--json"] if exe.endswith("mcp-router") else \
        [exe, "-m", "mcp_router", "--root", str(work), "index", "--json"]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", default="rich,pygments", help="installed packages whose source is indexed")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mcp-router-bench-indexing"))
    ap.add_argument("--big-rows", type=int, default=60_000)
    args = ap.parse_args()

    from indexer.chunker import chunk_file
    from indexer.encoder import get_encoder
    from indexer.search import search
    from indexer.store import CHUNKS, CodeStore
    from mcp_router.app import App

    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / ".git").mkdir(parents=True)
    for name in args.packages.split(","):
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, f"package {name} not installed"
        shutil.copytree(list(spec.submodule_search_locations)[0], args.work / "src" / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    n_files = sum(1 for p in args.work.rglob("*") if p.is_file() and ".git" not in p.parts)

    rows = []
    full_s, full = run_index(args.work)
    rows.append(("full index (CLI, incl. start-up + model load)", f"{full_s:.1f} s",
                 f"{full['chunks_embedded']} chunks embedded, {full['files_indexed']} files"))

    # The raw encoder on the same unique chunk texts, in this process.
    texts = {}
    for p in sorted(args.work.rglob("*")):
        if p.is_file() and ".git" not in p.parts and ".mcp-router" not in p.parts:
            try:
                fc = chunk_file(p.relative_to(args.work).as_posix(), p.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                continue
            for ch in fc.chunks:
                texts.setdefault(ch.hash, ch.embed_text)
    enc = get_encoder().load()
    t = time.perf_counter()
    enc.encode(list(texts.values()))
    raw_s = time.perf_counter() - t
    overhead = full_s / raw_s - 1
    rows.append(("raw encode() of the same unique chunk texts", f"{raw_s:.1f} s",
                 f"{len(texts)} texts; indexing overhead {overhead:+.1%} (target <= 25%)"))

    noop_s, noop = run_index(args.work)
    rows.append(("no-change re-run", f"{noop_s:.2f} s", f"{noop_s / full_s:.1%} of full (target <= 3%)"))

    victim = sorted((args.work / "src").rglob("*.py"))[len(list((args.work / "src").rglob("*.py"))) // 2]
    victim.write_text(victim.read_text() + "\n\ndef added_by_benchmark():\n    return 42\n")
    one_s, one = run_index(args.work)
    rows.append(("one file edited, re-run", f"{one_s:.2f} s",
                 f"{one_s / full_s:.1%} of full (target <= 5%); {one['chunks_embedded']} chunks embedded"))

    first_pkg = args.packages.split(",")[0]
    shutil.move(args.work / "src" / first_pkg, args.work / "src" / f"{first_pkg}_renamed")
    mv_s, mv = run_index(args.work)
    rows.append(("directory renamed, re-run", f"{mv_s:.2f} s",
                 f"{mv['chunks_embedded']} chunks embedded, {mv['chunks_reused']} reused (target: 0 embedded)"))

    app = App(args.work)
    store = CodeStore.open(app.index_dir)
    disk = store.disk_bytes()
    rows.append(("index size on disk", f"{disk / 1e6:.1f} MB", f"{store.count()} chunks"))

    def latency(st: CodeStore, reps: int = 3) -> tuple[float, float]:
        lat = []
        for _ in range(reps):
            for q in QUERIES:
                t = time.perf_counter()
                search(st, enc, q, k=10)
                lat.append(time.perf_counter() - t)
        lat.sort()
        return statistics.median(lat) * 1000, lat[int(len(lat) * 0.95)] * 1000

    p50, p95 = latency(store)
    rows.append((f"search latency, {store.count()} chunks", f"p50 {p50:.1f} ms", f"p95 {p95:.1f} ms"))

    # Scale test: replicate the real rows (with vector noise) into a >= big-rows index in another folder.
    big_dir = args.work / "big-index"
    shutil.rmtree(big_dir, ignore_errors=True)
    shutil.copytree(app.index_dir, big_dir)
    big = CodeStore.open(big_dir)
    tbl = big.table(CHUNKS)
    base = tbl.to_arrow()
    rng = np.random.default_rng(0)
    import pyarrow as pa

    copies = max(1, args.big_rows // base.num_rows)
    dim = len(base.column("vector")[0])
    for c in range(copies):
        vec = np.asarray(base.column("vector").combine_chunks().flatten()).reshape(base.num_rows, dim)
        vec = vec + rng.normal(0, 0.02, vec.shape).astype(np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        part = base.set_column(base.schema.get_field_index("id"), "id",
                               pa.array([f"{i}~{c}" for i in base.column("id").to_pylist()]))
        part = part.set_column(part.schema.get_field_index("path"), "path",
                               pa.array([f"copy{c}/{p}" for p in base.column("path").to_pylist()]))
        part = part.set_column(part.schema.get_field_index("vector"), "vector",
                               pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dim))
        tbl.add(part)
    big.finish(changed=True, ann_min_rows=10**12)
    n_big = big.count()
    p50b, p95b = latency(big)
    rows.append((f"search latency, {n_big} chunks, no ANN index", f"p50 {p50b:.1f} ms", f"p95 {p95b:.1f} ms"))
    t = time.perf_counter()
    big.finish(changed=False, ann_min_rows=1)
    ann_build = time.perf_counter() - t
    p50a, p95a = latency(big)
    rows.append((f"search latency, {n_big} chunks, ANN (IVF_HNSW_SQ, built in {ann_build:.0f} s)",
                 f"p50 {p50a:.1f} ms", f"p95 {p95a:.1f} ms"))

    table = Table(title=f"Indexing + search on {args.packages} ({n_files} files)")
    for col in ("measure", "value", "detail"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    out = REPO / "benchmarks" / "results" / "indexing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"packages": args.packages, "files": n_files, "rows": rows,
                               "full_s": full_s, "raw_encode_s": raw_s, "overhead": overhead, "noop_s": noop_s,
                               "one_file_s": one_s, "rename_embedded": mv["chunks_embedded"],
                               "latency": {"small": [p50, p95], "big_no_ann": [p50b, p95b], "big_ann": [p50a, p95a]},
                               "big_rows": n_big, "date": time.strftime("%Y-%m-%d")}, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: answers die with the files they depended on, and only those.

A scripted scenario on a temporary repository with the real `AnswerCache`:
1. write N modules; cache two answers about each module (tied to that file), answers tied to two files at once, and
   answers tied to no file;
2. edit some modules, re-save others byte-for-byte unchanged, delete one;
3. look every question up again, twice over: once relying on the lookup-time freshness check alone, and once after
   the watcher hook `invalidate_paths` ran on every touched path. Lookups use both the original wording (exact stage)
   and a paraphrase (semantic stage).

Target: every answer about an edited (or deleted) file misses, every other answer still hits.

    python benchmarks/bench_cache_invalidation.py [--modules 30] [--edit 10]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mcp_router.app import App  # noqa: E402
from mcp_router.cache import AnswerCache, invalidate_paths  # noqa: E402


def build(root: Path, n: int) -> list[dict]:
    """Write the modules and return the planned answers (question, paraphrase, files)."""
    (root / ".git").mkdir(parents=True)
    (root / "pkg").mkdir()
    plan = []
    topics = ["parse_config", "retry_request", "hash_password", "render_page", "open_session", "resize_image",
              "send_email", "score_tokens", "merge_ranges", "format_date"]
    for i in range(n):
        name = f"{topics[i % len(topics)]}_{i}"
        (root / "pkg" / f"mod_{i}.py").write_text(f"def {name}(x):\n    return x + {i}\n")
        plan.append({"q": f"what does {name} in pkg/mod_{i}.py return",
                     "p": f"what is returned by {name} in pkg/mod_{i}.py", "files": [f"pkg/mod_{i}.py"]})
        plan.append({"q": f"where is {name} defined", "p": f"in which file is {name} defined",
                     "files": [f"pkg/mod_{i}.py"]})
    for i in range(0, n - 1, 3):
        plan.append({"q": f"how does pkg/mod_{i}.py use pkg/mod_{i + 1}.py",
                     "p": f"how is pkg/mod_{i + 1}.py used by pkg/mod_{i}.py",
                     "files": [f"pkg/mod_{i}.py", f"pkg/mod_{i + 1}.py"]})
    for q, p in [("how do I reverse a list in Python", "reverse a python list"),
                 ("how do I delete a remote branch in git", "git delete remote branch"),
                 ("how to center a div with CSS", "center a div in css"),
                 ("how do I create a virtual environment in Python", "create a python virtual environment")]:
        plan.append({"q": q, "p": p, "files": []})
    return plan


def run(args: argparse.Namespace, watcher: bool) -> dict:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        plan = build(root, args.modules)
        cache = AnswerCache(App(root))
        cache.encoder.load()
        for item in plan:
            cache.store(item["q"], f"answer to {item['q']}", files=item["files"])
        modules = [f"pkg/mod_{i}.py" for i in range(args.modules)]
        rng.shuffle(modules)
        edited = set(modules[: args.edit])
        deleted = {modules[args.edit]}
        touched = set(modules[args.edit + 1 : args.edit + 1 + args.touch])
        for rel in edited:
            path = root / rel
            path.write_text(path.read_text() + "# edited\n")
        for rel in touched:
            path = root / rel
            path.write_text(path.read_text())  # saved, bytes unchanged
        for rel in deleted:
            (root / rel).unlink()
        changed = edited | deleted
        invalidated, inval_ms = 0, 0.0
        if watcher:
            t0 = time.perf_counter()
            invalidated = invalidate_paths(App(root), sorted(changed | touched))
            inval_ms = (time.perf_counter() - t0) * 1000
        rows = []
        for item in plan:
            must_miss = bool(set(item["files"]) & changed)
            for wording in ("q", "p"):
                res = cache.lookup(item[wording])
                rows.append({"question": item[wording], "wording": wording, "must_miss": must_miss,
                             "hit": res.hit, "reason": res.reason, "stale_file": res.stale_file})
            # The exact wording is looked up first, so a stale entry is already gone for the paraphrase.
    about_changed = [r for r in rows if r["must_miss"]]
    others = [r for r in rows if not r["must_miss"]]
    return {
        "mode": "watcher hook + lookup" if watcher else "lookup freshness check only",
        "entries": len(plan), "lookups": len(rows), "edited": len(edited), "deleted": len(deleted),
        "touched_unchanged": len(touched), "invalidated_by_hook": invalidated, "hook_ms": round(inval_ms, 1),
        "changed_lookups": len(about_changed), "changed_missed": sum(not r["hit"] for r in about_changed),
        "other_lookups": len(others), "other_hit": sum(r["hit"] for r in others),
        "wrong": [r for r in about_changed if r["hit"]] + [r for r in others if not r["hit"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=30)
    ap.add_argument("--edit", type=int, default=10)
    ap.add_argument("--touch", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/bench_cache_invalidation.json"))
    args = ap.parse_args()
    console = Console(width=150)
    results = [run(args, watcher=False), run(args, watcher=True)]
    table = Table(title="Invalidation scenario (target: every answer about a changed file misses, every other hits)")
    for col in ("mode", "entries", "changed files", "lookups about changed", "missed", "other lookups", "hit",
                "evicted by hook", "target"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in results:
        ok = r["changed_missed"] == r["changed_lookups"] and r["other_hit"] == r["other_lookups"]
        r["target_met"] = ok
        table.add_row(r["mode"], str(r["entries"]), f"{r['edited']} edited + {r['deleted']} deleted",
                      str(r["changed_lookups"]), str(r["changed_missed"]), str(r["other_lookups"]),
                      str(r["other_hit"]), str(r["invalidated_by_hook"]), "met" if ok else "MISSED")
    console.print(table)
    for r in results:
        for w in r["wrong"]:
            console.print(f"[red]wrong[/] ({r['mode']}): {w}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()

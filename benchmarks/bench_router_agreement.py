"""Is the coding intent target above what the labels allow? Two annotators vs the router.

    python benchmarks/bench_router_agreement.py

`fixtures/routing/agreement/second_annotator_blind{12,13}.jsonl` hold a second, independent route label for every
query of blind sets 12 and 13: a separate helper session that saw only the route definitions and the queries,
shuffled under arbitrary ids (a first run whose ids kept the authors' route order was discarded). Both annotators
are language models, which may share biases. Prints author-vs-second agreement and the router's accuracy against
each, and on the rows where both annotators agree; writes benchmarks/results/router_agreement.json.

The shipped examples include sets 12 and 13 now, so by default their rows are taken out of the registry first (a
fresh route model is built, several minutes on 2 cores): the router columns then measure queries it never saw.
`--as-shipped` skips that (the router columns are then memorised, not a measurement).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _routing_data import REPO, write_result  # noqa: E402
from mcp_router.routing.tune import default_router_encoder  # noqa: E402
from mcp_router.routing import Router, load_registry  # noqa: E402
from mcp_router.routing.evaluation import load_labelled  # noqa: E402

SETS = ("blind12", "blind13")


def main() -> None:
    fx = REPO / "fixtures" / "routing"
    registry = load_registry()
    if "--as-shipped" not in sys.argv[1:]:
        held = {r.query for name in SETS for r in load_labelled(fx / f"coding_{name}.jsonl")}
        for route in registry.routes:
            route.utterances = [u for u in route.utterances if u not in held]
        registry.out_of_scope = [u for u in registry.out_of_scope if u not in held]
        registry.tier_examples = [e for e in registry.tier_examples if e[0] not in held]
    with tempfile.TemporaryDirectory() as tmp:
        router = Router(registry, default_router_encoder(), cache_dir=Path(tmp))
        out = {}
        for name in SETS:
            author = load_labelled(fx / f"coding_{name}.jsonl")
            second = load_labelled(fx / "agreement" / f"second_annotator_{name}.jsonl")
            if [r.query for r in author] != [r.query for r in second]:
                sys.exit(f"{name}: the second annotator's file does not list the same queries in the same order")
            pred = [d.route for d in router.route_batch([r.query for r in author])]
            a, b = [r.route for r in author], [r.route for r in second]
            agreed = [i for i in range(len(a)) if a[i] == b[i]]
            out[name] = {"rows": len(a), "agreed_rows": len(agreed),
                         "author_vs_second": len(agreed) / len(a),
                         "router_vs_author": sum(p == x for p, x in zip(pred, a)) / len(a),
                         "router_vs_second": sum(p == x for p, x in zip(pred, b)) / len(a),
                         "router_on_agreed_rows": sum(pred[i] == a[i] for i in agreed) / len(agreed)}
    tab = Table(title="route labels: two annotators and the router (blind sets 12, 13)")
    for col in ("set", "rows", "author vs second", "router vs author", "router vs second", "router where both agree"):
        tab.add_column(col)
    for name, v in out.items():
        tab.add_row(name, str(v["rows"]), f"{v['author_vs_second']:.1%}", f"{v['router_vs_author']:.1%}",
                    f"{v['router_vs_second']:.1%}", f"{v['router_on_agreed_rows']:.1%} (n={v['agreed_rows']})")
    console = Console()
    console.print(tab)
    console.print(f"wrote {write_result('router_agreement', out)}")


if __name__ == "__main__":
    main()

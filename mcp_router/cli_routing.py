"""CLI of the query router: ``route`` (decide / feedback), ``fit``, ``eval`` and ``stats``.

Thin commands over `mcp_router.routing`: parse, call one library function, render with rich (or ``--json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from indexer.errors import UserError
from mcp_router.cli import console, err_console, pass_state


class _DefaultGroup(click.Group):
    """``mcp-router route "QUERY"`` runs the default subcommand; ``mcp-router route feedback ...`` the named one."""

    default_command = "decide"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _router(state: Any) -> Any:
    from mcp_router.routing import Router

    return Router.from_app(state.app())


def _print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def register(main: click.Group) -> None:
    @main.group("route", cls=_DefaultGroup, invoke_without_command=False)
    def route_group() -> None:
        """Decide which route and model tier a query needs: `mcp-router route "QUERY"`."""

    @route_group.command("decide")
    @click.argument("query", nargs=-1, required=True)
    @click.option("--history", "-H", multiple=True, help="A previous user turn, oldest first (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
    @pass_state
    def decide(state: Any, query: tuple[str, ...], history: tuple[str, ...], as_json: bool) -> None:
        """Route QUERY and print the decision with its reason (the default subcommand)."""
        router = _router(state)
        d = router.route(" ".join(query), list(history))
        router.flush()
        if as_json:
            _print_json(d.model_dump())
            return
        t = Table(show_header=False, box=None)
        t.add_row("route", f"[bold]{d.route or 'none (out of scope)'}[/]")
        t.add_row("tier", f"[bold]{d.tier}[/] -> {d.model}")
        t.add_row("confidence", f"{d.confidence:.2f} (margin {d.margin:.2f} over {d.runner_up or '-'})")
        if d.signals:
            t.add_row("signals", ", ".join(d.signals))
        if d.private:
            t.add_row("privacy", "[yellow]secrets or personal data found: kept on the local tier, text not logged[/]")
        t.add_row("reason", d.reason)
        t.add_row("latency", f"{d.latency_ms:.1f} ms")
        console.print(t)

    @route_group.command("feedback")
    @click.argument("query")
    @click.option("--tier", required=True, help="The tier that was used.")
    @click.option("--outcome", required=True, type=click.Choice(["ok", "too_weak", "overkill"]),
                  help="ok: the tier was enough; too_weak: it needed more; overkill: a lower tier would do.")
    @click.option("--route", "route_name", default=None, help="The route of the query, if known.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_state
    def feedback(state: Any, query: str, tier: str, outcome: str, route_name: str | None, as_json: bool) -> None:
        """Record whether TIER was enough for QUERY; similar future queries move tier accordingly."""
        res = _router(state).record_feedback(query, tier, outcome, route_name)
        if as_json:
            _print_json(res)
        else:
            console.print(f"recorded: {tier} was {outcome} -> this kind of query needs [bold]{res['needed_tier']}[/] "
                          f"({res['feedback_rows']} feedback rows)")

    @main.command("fit")
    @click.option("--data", "data", type=click.Path(dir_okay=False), help="Labelled JSONL or CSV (query, route[, tier]).")
    @click.option("--per-route/--global-only", default=True, help="Also fit per-route thresholds (routes with 10+ rows).")
    @click.option("--calibrate-only", is_flag=True,
                  help="Keep the registry's classifier; only learn when to trust it (acceptor and thresholds).")
    @click.option("--reset", is_flag=True, help="Forget what earlier fits learned, a tuned encoder too: back to the registry alone.")
    @click.option("--force", is_flag=True, help="Save the retrained model even if it scores below the registry alone.")
    @click.option("--tune-encoder", is_flag=True,
                  help="First fine-tune the embedded model on the registry (+ --data rows) and route with it "
                       "(minutes on a CPU; see docs/routing.md).")
    @click.option("--epochs", default=1, show_default=True, type=int, help="Passes over the rows for --tune-encoder.")
    @click.option("--steps", default=None, type=int, help="Cap the --tune-encoder optimiser steps (a quick trial).")
    @click.option("--json", "as_json", is_flag=True)
    @pass_state
    def fit(state: Any, data: str | None, per_route: bool, calibrate_only: bool, reset: bool, force: bool,
            tune_encoder: bool, epochs: int, steps: int | None, as_json: bool) -> None:
        """Retrain the router's classifier on the registry plus labelled queries, calibrate it, and save it.

        The accuracy "after" is out-of-fold: each query is scored by a model that did not train on it.
        With --tune-encoder the embedded model itself is fine-tuned first (`--reset` undoes it).
        """
        from mcp_router.routing.evaluation import load_labelled

        if reset:
            found = _router(state).unfit()
            if as_json:
                _print_json({"reset": found})
            else:
                console.print("back to the registry alone" if found else "nothing was fitted")
            return
        if not data and not tune_encoder:
            raise UserError("fit needs --data FILE (labelled JSONL or CSV), --tune-encoder, or --reset")
        rows = load_labelled(Path(data)) if data else []
        router = _router(state)
        tuned = None
        if tune_encoder:
            tuned = _tune(router, rows, epochs, steps, quiet=as_json)
            if not data:
                with err_console.status("building the route and tier models on the tuned encoder..."):
                    router.warm()
                if as_json:
                    _print_json({"tuned_encoder": tuned})
                return
        what = "calibrating" if calibrate_only else "retraining the classifier on the registry + your rows (5 folds)"
        with err_console.status(f"{what}, {len(rows)} rows..."):
            res = router.fit([r.query for r in rows], [r.route for r in rows], per_route=per_route,
                             retrain=not calibrate_only, force=force, tiers=[r.tier for r in rows])
        if as_json:
            _print_json(res | {"tuned_encoder": tuned})
            return
        what = "retrained the classifier and calibrated it" if res["retrained"] else "calibrated the registry's classifier"
        console.print(f"{what} on {res['rows']} rows ({res['oos_rows']} out of scope): threshold {res['threshold']:.3f}, "
                      f"{len(res['route_thresholds'])} per-route thresholds")
        console.print(f"accuracy on these rows: {res['accuracy_before']:.1%} (registry only) -> "
                      f"{res['accuracy_after']:.1%} ({res['after_is']}); balanced "
                      f"{res['balanced_accuracy_before']:.3f} -> {res['balanced_accuracy_after']:.3f}")
        t = res.get("tiers")
        if t:
            console.print(f"tier model on the {t['rows']} rows with a tier: accuracy {t['accuracy_before']:.1%} -> "
                          f"{t['accuracy_after']:.1%}, under-routing {t['under_before']:.1%} -> {t['under_after']:.1%} "
                          f"(out-of-fold); {'saved' if t['saved'] else 'not saved: no better than the registry alone'}")
        if res["saved"]:
            console.print(f"saved {res['path']}")
        else:
            console.print("[yellow]not saved[/]: the retrained model scored below the registry alone on these rows "
                          "(out-of-fold); nothing changed. Add more rows (and some labelled `none`), use "
                          "--calibrate-only, or --force to save it anyway.")

    @main.command("eval")
    @click.option("--data", "data", required=True, type=click.Path(dir_okay=False), help="Labelled JSONL or CSV.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_state
    def evaluate(state: Any, data: str, as_json: bool) -> None:
        """Accuracy, per-route precision/recall, out-of-scope P/R, tier accuracy and a confusion matrix."""
        from mcp_router.routing.evaluation import evaluation_report, load_labelled

        rows = load_labelled(Path(data))
        router = _router(state)
        decisions = router.route_batch([r.query for r in rows])
        rep = evaluation_report(rows, decisions, router.registry.route_names, router.registry.tier_names)
        if as_json:
            _print_json(rep)
            return
        _render_eval(rep)

    @main.command("stats")
    @click.option("--tokens-per-call", default=None, type=int, help="Assumed input tokens per call for the cost estimate.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_state
    def stats(state: Any, tokens_per_call: int | None, as_json: bool) -> None:
        """Route and tier distribution, mean margin per route per day (drift), and cost saved vs the top tier."""
        from mcp_router.routing.telemetry import read_log, summarise

        app = state.app()
        tpc = tokens_per_call or int((app.config.routing or {}).get("tokens_per_call", 2000))
        rep = summarise(read_log(app.db()), tpc)
        if as_json:
            _print_json(rep)
            return
        if not rep["decisions"]:
            console.print("no routing decisions logged yet: run `mcp-router route \"...\"` or use the route_query tool")
            return
        t = Table(title=f"{rep['decisions']} decisions")
        t.add_column("route")
        t.add_column("count", justify="right")
        for k, v in rep["routes"].items():
            t.add_row(k, str(v))
        console.print(t)
        t = Table(title="tiers")
        t.add_column("tier")
        t.add_column("count", justify="right")
        for k, v in rep["tiers"].items():
            t.add_row(k, str(v))
        console.print(t)
        days = sorted({d for v in rep["margin_by_day"].values() for d in v})[-7:]
        t = Table(title="mean margin per route per day (falling = add examples to the route)")
        t.add_column("route")
        for d in days:
            t.add_column(d, justify="right")
        for r, v in rep["margin_by_day"].items():
            t.add_row(r, *[f"{v[d]:.2f}" if d in v else "" for d in days])
        console.print(t)
        c = rep["cost"]
        console.print(f"estimated cost at {c['tokens_per_call']} tokens/call: ${c['spent_usd']:.4f} vs "
                      f"${c['top_tier_usd']:.4f} always on the top tier: saved ${c['saved_usd']:.4f} "
                      f"({c['saved_share']:.0%}); decision latency p50 {rep['latency_ms_p50']} ms")


def _tune(router: Any, rows: list, epochs: int, steps: int | None, quiet: bool) -> dict:
    """`Router.tune_encoder` behind a progress bar; prints what it did unless ``quiet``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("tuning the encoder"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True, disable=quiet) as bars:
        task = bars.add_task("tune", total=None)
        info = router.tune_encoder([r.query for r in rows], [r.route for r in rows], epochs=epochs, max_steps=steps,
                                   progress=lambda step, total: bars.update(task, completed=step, total=total))
    if not quiet:
        if info["reused"]:
            console.print(f"the encoder is already tuned on these {info['rows']} rows: {info['path']}")
        else:
            console.print(f"tuned the encoder on {info['rows']} rows ({info['routes']} routes): {info['steps']} steps "
                          f"in {info['train_seconds']:.0f} s, loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}; "
                          f"the router uses {info['path']} (`mcp-router fit --reset` goes back)")
    return info


def _render_eval(rep: dict) -> None:
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    console.print(f"[bold]{rep['rows']} queries[/]: accuracy {pct(rep['accuracy'])}, in-scope {pct(rep['in_scope_accuracy'])}, "
                  f"out-of-scope precision {pct(rep['oos']['precision'])} recall {pct(rep['oos']['recall'])}; "
                  f"tier accuracy {pct(rep['tier_accuracy'])}, under-routed {pct(rep['under_routing_rate'])}, "
                  f"over-routed {pct(rep['over_routing_rate'])}")
    t = Table(title="per route")
    for col in ("route", "precision", "recall", "support"):
        t.add_column(col, justify="right" if col != "route" else "left")
    for name, v in list(rep["per_route"].items()) + [("none", rep["oos"])]:
        t.add_row(name, pct(v["precision"]), pct(v["recall"]), str(v["support"]))
    console.print(t)
    classes = list(rep["confusion"])
    short = {c: c[:6] for c in classes}
    t = Table(title="confusion (rows: label, columns: predicted)")
    t.add_column("label")
    for c in classes:
        t.add_column(short[c], justify="right")
    for a in classes:
        cells = []
        for b in classes:
            v = rep["confusion"][a][b]
            cells.append("" if not v else (f"[green]{v}[/]" if a == b else f"[red]{v}[/]"))
        t.add_row(a, *cells)
    console.print(t)

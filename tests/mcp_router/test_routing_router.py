"""The router end to end with the real embedded model: decisions, out of scope, session, privacy, feedback,
telemetry, the CLI (click's CliRunner) and the two MCP tools in both protocol eras."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.errors import UserError
from mcp_router.app import App
from mcp_router.routing import Router, load_registry
from mcp_router.routing.telemetry import read_log

CLEAR = {
    "syntax_help": ["what's the syntax for a lambda in kotlin", "how do I write a for loop over a range in rust"],
    "debugging": ["TypeError: 'NoneType' object is not subscriptable when I index the result",
                  "my node server crashes with ECONNREFUSED when it starts"],
    "test_writing": ["write pytest unit tests for the date parser", "add jest tests for this reducer"],
    "architecture": ["design a scalable architecture for a chat service with millions of users"],
    "security": ["is this login endpoint vulnerable to SQL injection"],
    "performance": ["this database query is very slow, how do I speed it up"],
    "devops": ["write a github actions workflow that deploys to kubernetes"],
    "documentation": ["write a docstring for this function"],
    "code_review": ["please review my pull request"],
    "refactoring": ["refactor this long function into smaller ones"],
    "code_generation": ["write a python function that merges two sorted lists"],
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One route-model cache for the module: the model is fitted once, then copied into each test's index folder."""
    return tmp_path_factory.mktemp("routing-cache")


@pytest.fixture
def app(tmp_path: Path, shared_cache: Path, encoder) -> App:  # noqa: ANN001 - the conftest encoder fixture
    (tmp_path / ".git").mkdir()
    target = tmp_path / ".mcp-router" / "routing"
    if any(shared_cache.iterdir()):
        shutil.copytree(shared_cache, target, dirs_exist_ok=True)
    a = App(tmp_path)
    Router.from_app(a).warm()
    if not any(shared_cache.iterdir()):
        for f in target.glob("*.np*"):
            shutil.copy(f, shared_cache / f.name)
    return a


@pytest.fixture
def router(app: App) -> Router:
    return Router.from_app(app)


@pytest.fixture
def shared_router(app: App) -> Router:
    """The router on the code index's encoder (`routing.encoder = "shared"`). The `fit` tests teach conventions that
    run against the registry; the shipped router encoder was tuned on that registry, so it takes more rows (or
    `fit --tune-encoder --data`) to move it than the plain model (docs/routing.md)."""
    (app.root / ".mcp-router.toml").write_text('[routing]\nencoder = "shared"\n')
    r = Router.from_app(App(app.root))
    assert r.encoder is r.base_encoder
    return r


def test_clear_queries_get_their_route_and_a_reason(router: Router) -> None:
    wrong = []
    for route, queries in CLEAR.items():
        for q in queries:
            d = router.route(q, record=False)
            if d.route != route:
                wrong.append((q, d.route))
            assert d.model == router.registry.tiers[d.tier].model and d.reason and d.latency_ms > 0
    assert not wrong, wrong
    arch = router.route(CLEAR["architecture"][0], record=False)
    assert arch.tier == "lrm" and arch.runner_up and 0 < arch.confidence <= 1


def test_off_topic_queries_are_out_of_scope(router: Router) -> None:
    for q in ("what is a good recipe for banana bread", "who won the world cup in 2010", "tell me a bedtime story"):
        d = router.route(q, record=False)
        assert d.route is None, (q, d.route)
        assert d.tier == router.registry.fallback and "out of scope" in d.reason


def test_signals_move_the_tier(router: Router) -> None:
    rules = Router(router.registry, router.encoder, cache_dir=router.cache_dir, tier_model=False)
    wide = rules.route("refactor the duplicated code across the entire codebase", record=False)
    assert wide.route == "refactoring" and "complexity:scope:codebase" in wide.signals
    assert router.registry.tier_index(wide.tier) == router.registry.tier_index(wide.route_tier) + 1
    secret = router.route("why does boto3 reject my key AKIAIOSFODNN7EXAMPLE with a design review of our IAM",
                          record=False)
    assert secret.private and secret.tier == router.registry.local_tier
    assert any(s.startswith("privacy:aws") for s in secret.signals)
    hard = {"query": "design the sharding strategy for our multi-tenant postgres cluster", "tier": "lrm"}
    follow = router.route("ok, do it", history=[hard], record=False)
    assert follow.tier == "lrm"
    failed = router.route("that didn't work, still the same error",
                          history=[{"query": "fix the KeyError in my flask view", "tier": "srm"}], record=False)
    assert failed.tier == "llm" and "session:failed-attempt" in failed.signals


def test_feedback_knn_changes_the_tier_of_similar_queries(router: Router, app: App) -> None:
    q = "write a python function that merges two sorted lists"
    before = router.route(q, record=False)
    assert before.tier == "srm"
    for text in (q, "write a python function to merge two sorted lists", "python function merging two sorted lists"):
        router.record_feedback(text, "srm", "too_weak", "code_generation")
    after = router.route(q, record=False)
    assert after.tier == "llm" and any(s.startswith("feedback:+1") for s in after.signals)
    # persisted: a fresh router over the same index folder learns the same
    again = Router.from_app(app).route(q, record=False)
    assert again.tier == "llm"
    # an unrelated query is untouched
    assert router.route("add comments to explain this code", record=False).tier == "srm"


def test_telemetry_rows_are_written_without_the_query_text(router: Router, app: App) -> None:
    secret_text = "write unit tests for the invoice total calculation ZZ-UNIQUE-TOKEN"
    router.route(secret_text)
    router.route("what's the weather like in Rome")
    router.flush()
    df = read_log(app.db())
    assert len(df) == 2
    assert set(df["route"]) == {"test_writing", "none"}
    assert all(len(h) == 32 for h in df["query_hash"])
    dumped = df.astype(str).to_csv()
    assert "ZZ-UNIQUE-TOKEN" not in dumped and "invoice" not in dumped and "Rome" not in dumped


# -- CLI ----------------------------------------------------------------------------------------------------------

def _run(app: App, *args: str):  # noqa: ANN202
    from mcp_router.cli import main

    res = CliRunner().invoke(main, ["--root", str(app.root), *args], catch_exceptions=False)
    return res


def test_cli_route_feedback_fit_eval_stats(app: App, tmp_path: Path) -> None:
    res = _run(app, "route", "--json", "write a docstring for this function")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["route"] == "documentation"
    res = _run(app, "route", "how", "do", "I", "profile", "a", "slow", "python", "script")
    assert res.exit_code == 0 and "performance" in res.output and "reason" in res.output
    res = _run(app, "route", "feedback", "write a docstring for this function", "--tier", "srm",
               "--outcome", "overkill", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["needed_tier"] == "slm"

    data = tmp_path / "labelled.jsonl"
    rows = [("the build fails with a linker error", "debugging", "srm"),
            ("my python script throws KeyError on a missing key", "debugging", "srm"),
            ("write jest tests for the login form", "test_writing", "srm"),
            ("pytest tests for the csv parser please", "test_writing", "srm"),
            ("design a queue-based architecture for image processing", "architecture", "lrm"),
            ("monolith vs microservices for our startup", "architecture", "lrm"),
            ("how tall is mount everest", "none", "srm"),
            ("suggest a board game for four players", "none", "srm"),
            ("what's the syntax for a python decorator", "syntax_help", "slm"),
            ("add a README section about installation", "documentation", "srm"),
            ("write a bedtime story about dragons", "none", "srm")]
    data.write_text("".join(json.dumps({"query": q, "route": r, "tier": t}) + "\n" for q, r, t in rows))
    res = _run(app, "eval", "--data", str(data), "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["rows"] == 11 and rep["accuracy"] >= 0.8 and rep["tier_accuracy"] is not None
    assert set(rep["confusion"]) >= {"debugging", "none"} and rep["oos"]["support"] == 3
    res = _run(app, "eval", "--data", str(data))
    assert res.exit_code == 0 and "confusion" in res.output and "per route" in res.output
    res = _run(app, "fit", "--data", str(data), "--json")
    assert res.exit_code == 0, res.output
    fitted = json.loads(res.output)
    assert fitted["rows"] == 11 and Path(fitted["path"]).is_file()
    res = _run(app, "stats", "--json")
    assert res.exit_code == 0
    st = json.loads(res.output)
    assert st["decisions"] == 2 and st["cost"]["saved_usd"] > 0 and st["margin_by_day"]
    assert _run(app, "stats").exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x", "route": "no_such_route"}\n' * 12)
    res = CliRunner().invoke(__import__("mcp_router.cli", fromlist=["main"]).main,
                             ["--root", str(app.root), "fit", "--data", str(bad)])
    assert res.exit_code == 1 and "no_such_route" in res.output


def test_user_registry_error_is_one_clear_line(app: App) -> None:
    (app.index_dir / "routes.yaml").write_text("routes:\n  debugging:\n    tier: gigantic\n")
    from mcp_router.cli import main

    res = CliRunner().invoke(main, ["--root", str(app.root), "route", "hello"])
    assert res.exit_code == 1 and "routes.yaml:3" in res.output and "gigantic" in res.output


def test_registry_embeddings_are_cached_on_disk(app: App, tmp_path: Path) -> None:
    """The registry's vectors and model are cached machine-wide: another repository (another index folder) encodes
    and trains nothing."""
    first = Router.from_app(app)
    key = first._model_key()
    assert list(first.shared_dir.glob("emb-*.npy")) and (first.shared_dir / f"{key}.npz").is_file()
    cache = tmp_path / "other-repo-index" / "routing"

    class NoEncode:
        model_id = first.encoder.model_id

        def encode(self, texts):  # noqa: ANN001, ANN202
            raise AssertionError("the registry was re-encoded despite the cache")

    r = Router(load_registry(), NoEncode(), cache_dir=cache)
    assert r.model.n_routes == 12
    fresh = Router.from_app(app).model
    assert r.model.lex is not None and r.model.alpha == fresh.alpha  # the lexical part is cached with the model
    assert r.model.lex.vocab == fresh.lex.vocab and np.array_equal(r.model.lex.w, fresh.lex.w)


# -- MCP ----------------------------------------------------------------------------------------------------------

@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_route_query_and_feedback(app: App, mode: str) -> None:
    from mcp import Client

    from mcp_router.server import build_server

    async with Client(build_server(app), mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"route_query", "route_feedback"} <= names
        res = await c.call_tool("route_query", {"query": "write pytest tests for the tokenizer"})
        assert not res.is_error, res.content
        assert res.structured_content["route"] == "test_writing"
        assert res.structured_content["tier"] == "srm" and res.structured_content["reason"]
        res = await c.call_tool("route_query", {"query": "ok go ahead",
                                                "history": ["design an event-sourced architecture for billing"]})
        assert not res.is_error and res.structured_content["tier"] == "lrm"
        res = await c.call_tool("route_feedback", {"query": "write pytest tests for the tokenizer", "tier": "srm",
                                                   "outcome": "too_weak"})
        assert not res.is_error and res.structured_content["needed_tier"] == "llm"
        res = await c.call_tool("route_feedback", {"query": "x", "tier": "giant", "outcome": "ok"})
        assert res.is_error and "unknown tier" in res.content[0].text
        res = await c.call_tool("route_query", {"query": "   "})
        assert res.is_error and "empty" in res.content[0].text


PORTING = [("translate this python function to go", "refactoring"), ("port this java class to kotlin", "refactoring"),
           ("convert this javascript to typescript", "refactoring"), ("rewrite this bash script in python", "refactoring"),
           ("turn this ruby method into elixir", "refactoring"), ("convert this C code to rust", "refactoring"),
           ("port this php controller to node", "refactoring"), ("translate the perl script to python 3", "refactoring"),
           ("write a bedtime story about dragons", None), ("what's the weather like in paris", None),
           ("recommend a good pizza place", None),
           ("write a python function that merges two sorted lists", "code_generation"),
           ("what's the syntax for a python decorator", "syntax_help"),
           ("TypeError: 'NoneType' object is not subscriptable", "debugging"),
           ("write pytest tests for the parser", "test_writing")]
HELD_OUT_PORTING = ["port this swift view to jetpack compose kotlin", "convert my python 2 script to go",
                    "translate this C# service into java", "rewrite this coffeescript file in modern javascript",
                    "port these matlab functions to numpy"]


def test_fit_retrains_the_classifier_and_generalises_to_unseen_queries(shared_router: Router, app: App) -> None:
    """A team convention ("porting between languages is refactoring") taught with 8 examples carries over to
    queries that were not in the file, survives a restart, and `unfit` restores the registry's behaviour."""
    router = shared_router
    before = [d.route for d in router.route_batch(HELD_OUT_PORTING)]
    assert before.count("refactoring") < len(HELD_OUT_PORTING)  # the registry alone does not know the convention
    res = router.fit([q for q, _ in PORTING], [r for _, r in PORTING])
    assert res["retrained"] and res["after_is"] == "out-of-fold"
    assert res["accuracy_after"] > res["accuracy_before"]
    assert (router.cache_dir / res["classifier"]).is_file()
    assert [d.route for d in router.route_batch(HELD_OUT_PORTING)] == ["refactoring"] * len(HELD_OUT_PORTING)
    fresh = Router.from_app(App(app.root))  # a new process reads the fitted classifier from disk
    assert [d.route for d in fresh.route_batch(HELD_OUT_PORTING)] == ["refactoring"] * len(HELD_OUT_PORTING)
    clear = [q for qs in CLEAR.values() for q in qs]
    assert [d.route for d in fresh.route_batch(clear)] == [r for r, qs in CLEAR.items() for _ in qs]
    assert fresh.unfit() and not list(fresh.cache_dir.glob("fitted-model-*.npz"))
    assert [d.route for d in fresh.route_batch(HELD_OUT_PORTING)] == before


def test_fit_calibrate_only_keeps_the_registry_classifier(shared_router: Router) -> None:
    router = shared_router
    res = router.fit([q for q, _ in PORTING], [r for _, r in PORTING], retrain=False)
    assert not res["retrained"] and res["classifier"] is None and res["after_is"] == "in-sample"
    probs_routes = {d.route for d in router.route_batch(HELD_OUT_PORTING)}
    assert probs_routes != {"refactoring"}  # thresholds moved, but the classifier did not learn the convention


def test_fit_with_a_missing_classifier_file_falls_back_to_the_registry(router: Router, app: App) -> None:
    res = router.fit([q for q, _ in PORTING], [r for _, r in PORTING])
    (router.cache_dir / res["classifier"]).unlink()
    fresh = Router.from_app(App(app.root))
    assert fresh.route("write a python function that merges two sorted lists", record=False).route == "code_generation"


def test_a_close_runner_up_lends_its_higher_tier(router: Router, app: App) -> None:
    """Under-routing costs a failed answer, over-routing only money: when the runner-up route is close and needs a
    higher tier, that tier wins (and the decision says so). `ambiguity_share = 0` turns it off. (It is the rules'
    answer to route uncertainty; the tier model replaces it, so this runs with `tier_model=False`.)"""
    queries = [q for qs in CLEAR.values() for q in qs] + [
        "is this a reasonable way to structure the redux slice", "memoize an expensive python function with a ttl",
        "review this function for readability", "sketch the components of a url shortener",
        "how should i hash passwords in node", "check this Dockerfile for problems",
        "split this service into smaller pieces?", "where should validation go in this api",
        "should this helper live in utils or in its own module", "restructure these modules"]
    rules = Router(router.registry, router.encoder, cache_dir=router.cache_dir, tier_model=False)
    on = rules.route_batch(queries)
    off = Router(router.registry, router.encoder, cache_dir=router.cache_dir, ambiguity_share=0,
                 tier_model=False).route_batch(queries)
    tiers = router.registry.tier_names
    lifted = [(a, b) for a, b in zip(on, off) if a.tier != b.tier]
    assert lifted and all(tiers.index(a.tier) > tiers.index(b.tier) for a, b in lifted)  # it only ever lifts
    assert all(any(s.startswith("ambiguity:") for s in a.signals) for a, _ in lifted)
    assert all(a.route == b.route for a, b in zip(on, off))  # the route itself never changes
    bad = app.root / ".mcp-router.toml"
    bad.write_text('[routing]\nambiguity_share = "high"\n')
    with pytest.raises(Exception, match="ambiguity_share"):
        Router.from_app(App(app.root))


def test_the_tier_model_learns_from_labelled_examples_and_can_be_turned_off(router: Router, app: App) -> None:
    """With the shipped tier-labelled examples, a learned model has the last word on the tier (the rules' tier is one
    of its inputs); `tier_under_cost` trades under- for over-routing; `tier_model = false` is the rules alone."""
    queries = ["review this function for readability", "is this regex safe from ReDoS: ^(a+)+$",
               "what does git rebase -i do", "write a docstring for this function",
               "design a scalable architecture for a chat service with millions of users",
               "refactor the duplicated code across the entire codebase"]
    tiers = router.registry.tier_names
    assert router.tier_model is not None
    learned = router.route_batch(queries)
    assert all(any(s.startswith("tier-model:") for s in d.signals) for d in learned)
    rules = Router(router.registry, router.encoder, cache_dir=router.cache_dir, tier_model=False).route_batch(queries)
    assert not any(s.startswith("tier-model:") for d in rules for s in d.signals)
    assert [d.route for d in learned] == [d.route for d in rules]  # the route is never the tier model's business
    # the route defaults of review and security over-shoot a one-line ask; the examples taught the model so
    assert [d.tier for d in rules[:2]] == ["llm", "llm"] and [d.tier for d in learned[:2]] == ["srm", "srm"]
    assert "learned from labelled examples" in learned[0].reason and "rules said llm" in learned[0].reason
    assert learned[4].tier == "lrm"  # design work stays at the top
    cheap = Router(router.registry, router.encoder, cache_dir=router.cache_dir, tier_under_cost=1.0).route_batch(queries)
    safe = Router(router.registry, router.encoder, cache_dir=router.cache_dir, tier_under_cost=10.0).route_batch(queries)
    order = [(tiers.index(c.tier), tiers.index(d.tier), tiers.index(s.tier)) for c, d, s in zip(cheap, learned, safe)]
    assert all(c <= d <= s for c, d, s in order) and any(c < s for c, _, s in order)
    (app.root / ".mcp-router.toml").write_text('[routing]\ntier_model = "yes"\n')
    with pytest.raises(Exception, match="tier_model = 'yes' is not true or false"):
        Router.from_app(App(app.root))
    (app.root / ".mcp-router.toml").write_text("[routing]\ntier_model = false\n")
    assert Router.from_app(App(app.root)).tier_model is None


def test_fit_teaches_the_tier_model_a_team_convention(shared_router: Router) -> None:
    """A team whose documentation requests need the large model says so in 40 labelled rows: `fit` retrains the tier
    model on the registry's examples plus those rows, scores it out-of-fold, keeps it, and unseen documentation
    requests follow (other routes do not); `unfit` forgets it."""
    import itertools

    router = shared_router

    things = ["the payment client", "parse_config", "the retry decorator", "our CLI", "the cache module",
              "UserService", "the webhook handler", "the rate limiter", "export_csv", "the auth middleware"]
    forms = ["write a docstring for {}", "document {} for the wiki", "add usage docs for {}",
             "explain in the README how to use {}"]
    rows = [f.format(t) for f, t in itertools.product(forms, things)]
    probe = ["write docs for the image resizer", "what's the syntax for a python decorator"]
    before = [d.tier for d in router.route_batch(probe)]
    assert before[0] == "srm"
    res = router.fit(rows, ["documentation"] * len(rows), tiers=["llm"] * len(rows))
    t = res["tiers"]
    assert t["rows"] == 40 and t["after_is"] == "out-of-fold" and t["saved"]
    assert t["accuracy_after"] > t["accuracy_before"] and t["cost_after"] < t["cost_before"]
    fresh = Router(router.registry, router.encoder, cache_dir=router.cache_dir)  # reads fitted.json from disk
    assert [d.tier for d in fresh.route_batch(probe)] == ["llm", before[1]]
    assert fresh.unfit() and [d.tier for d in fresh.route_batch(probe)] == before
    with pytest.raises(Exception, match="tier 'huge' is unknown"):
        router.fit(rows, ["documentation"] * len(rows), tiers=["huge"] * len(rows))


def test_a_torn_cached_model_is_rebuilt_not_fatal(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached route or tier model that is cut short (a full disk, a copy interrupted) is rebuilt on load. The
    machine-wide cache is redirected to a copy first: a test never touches the user's real cache."""
    real = Router.from_app(app).shared_dir
    shared = tmp_path / "machine-cache"
    monkeypatch.setenv("MCP_ROUTER_CACHE", str(shared))
    first = Router.from_app(app)
    shutil.copytree(real, first.shared_dir)
    expected = first.route("write pytest unit tests for the date parser", record=False)
    cached = [p for folder in (first.cache_dir, first.shared_dir) for p in folder.glob("*.npz")
              if p.name.startswith(("model-", "tiers-"))]
    assert {p.name.split("-")[0] for p in cached} == {"model", "tiers"}
    assert all(str(p).startswith(str(tmp_path)) or str(p).startswith(str(app.root)) for p in cached)
    for p in cached:
        p.write_bytes(b"PK\x03\x04 cut short")
    again = Router.from_app(app).route("write pytest unit tests for the date parser", record=False)
    assert (again.route, again.tier) == (expected.route, expected.tier)


def test_a_low_confidence_query_naming_a_tool_stays_in_scope(router: Router) -> None:
    """Below the acceptance threshold, a request that names a language, tool or file keeps its best route (and says
    why); off-topic queries without such words are still rejected; `evidence_share = 0` turns it off."""
    queries = ["pandas or polars", "how do noise cancelling headphones work",
               "arduino or micro:bit for my kid"]
    on = router.route_batch(queries)
    off = Router(router.registry, router.encoder, cache_dir=router.cache_dir, evidence_share=0).route_batch(queries)
    assert off[0].route is None and on[0].route is not None
    assert "in-scope:pandas" in on[0].signals and on[0].confidence < 0.5
    assert on[1].route is None and on[2].route is None  # no code words / confidence far below the threshold
    pasted = "thoughts?\n\nfriends = load_friends()\nfor f in friends:\n    wave(f)\nsmile()"  # a bare paste
    kept, dropped = router.route(pasted, record=False), Router(
        router.registry, router.encoder, cache_dir=router.cache_dir, evidence_share=0).route(pasted, record=False)
    assert dropped.route is None and kept.route is not None  # pasted code is in scope at any confidence
    assert "in-scope:pasted code" in kept.signals and kept.confidence < 0.25
    assert kept.tier != "slm"  # pasted code has to be read: never the lookup tier, whatever the tier model says


@pytest.mark.anyio
async def test_server_builds_the_route_model_in_the_background(app: App) -> None:
    """After the embedding model loads, the server prepares the router too, so the first route_query is fast."""
    import anyio
    from mcp import Client

    from mcp_router.server import build_server

    server = build_server(App(app.root), warm=True)
    async with Client(server, mode="auto") as c:
        await c.list_tools()
        services = server.services  # type: ignore[attr-defined]
        for _ in range(240):
            router = services._extras.get("router")
            if router is not None and router._model is not None:
                break
            await anyio.sleep(0.25)
        assert router is not None and router._model is not None, "the route model was not prepared in the background"
        res = await c.call_tool("route_query", {"query": "write pytest tests for the date parser"})
        assert not res.is_error and res.structured_content["route"] == "test_writing"


def test_fit_does_not_save_a_model_worse_than_the_registry(router: Router) -> None:
    """Twelve near-identical rows of one route and no `none` rows: the out-of-fold estimate falls below the registry
    alone, so nothing is written unless forced."""
    rows = [f"write pytest tests for module {i}" for i in range(12)]
    res = router.fit(rows, ["test_writing"] * 12)
    assert res["balanced_accuracy_after"] < res["balanced_accuracy_before"]
    assert not res["saved"] and res["path"] is None and not router.fitted_path.exists()
    assert not list(router.cache_dir.glob("fitted-model-*.npz"))
    forced = router.fit(rows, ["test_writing"] * 12, force=True)
    assert forced["saved"] and router.fitted_path.exists()


SMALL_REGISTRY = """
tiers:
  slm: {model: small-model}
  srm: {model: mid-model}
fallback: srm
privacy: {local_tier: slm}
out_of_scope: [how tall is mount everest, recommend a novel for the beach, what is the capital of peru]
routes:
  tests:
    tier: srm
    utterances: [write pytest tests for the parser, add jest tests for this reducer, unit tests for the date helper,
                 mock the http client in my tests, a test for the retry loop, cover this class with tests]
  deploy:
    tier: srm
    utterances: [deploy the app to kubernetes, a dockerfile for this service, github actions workflow for releases,
                 helm chart values for staging, terraform for an s3 bucket, the ci pipeline times out]
  syntax:
    tier: slm
    utterances: [syntax of a lambda in kotlin, how to write a list comprehension, rust match arm syntax,
                 what is the ternary operator in go, bash for loop over files, sql case when syntax]
"""


def test_tune_encoder_fine_tunes_a_router_specific_model(tmp_path: Path, encoder) -> None:  # noqa: ANN001
    """The library path on a small registry: a real fine-tune, ONNX export, reuse, torn pointer, forget."""
    import lancedb

    from mcp_router.routing import tune

    (tmp_path / "routes.yaml").write_text(SMALL_REGISTRY)
    reg = load_registry([tmp_path / "routes.yaml"], include_default=False)
    folder = tmp_path / "routing"
    router = Router(reg, encoder, cache_dir=folder, db=lancedb.connect(str(tmp_path / "db")))
    before = router.route("add pytest tests for the cache module", record=False)
    router.record_feedback("add pytest tests for the cache module", "srm", "ok")  # a base-encoder feedback row
    stale = folder / ".encoder-0123456789ab.tmp999999999"  # what a tune killed mid-export leaves behind
    (stale / "torch").mkdir(parents=True)
    info = router.tune_encoder(["integration tests for the login flow", "how tall is mount everest"],
                               ["tests", "none"], max_steps=3)
    assert info["steps"] == 3 and not info["reused"] and info["rows"] == len(reg.training_texts()[0]) + 1
    assert router.tuned and router.encoder.model_id == info["path"] and Path(info["path"]).parent == folder
    assert (Path(info["path"]) / "onnx" / "model.onnx").is_file() and not list(folder.glob(".encoder-*"))  # stale gone
    q = "write jest tests for the login form"
    assert float(encoder.encode([q])[0] @ router.encoder.encode([q])[0]) < 0.9999  # the weights moved
    after = router.route("add pytest tests for the cache module", record=False)
    assert before.route == after.route == "tests"
    assert len(router.feedback) == 0  # base-encoder vectors never enter the tuned encoder's kNN
    router.record_feedback("add pytest tests for the cache module", "srm", "too_weak")
    assert len(router.feedback) == 1 and router.feedback.table != "route_feedback"

    again = router.tune_encoder(["integration tests for the login flow"], ["tests"], max_steps=3)
    assert again["reused"] and again["folder"] == info["folder"]  # same rows and settings: nothing retrained
    other = router.tune_encoder(["integration tests for the login flow"], ["tests"], max_steps=2)
    assert other["folder"] != info["folder"] and not Path(info["path"]).exists()  # the old tune is cleaned up

    pointer = folder / tune.POINTER
    good = pointer.read_text()
    pointer.write_text("{torn")
    assert tune.tuned_encoder(folder) is None  # an unreadable pointer: the shared encoder routes
    pointer.write_text(good)
    assert tune.tuned_encoder(folder) is not None
    assert router.unfit() and not router.tuned and not pointer.exists() and not Path(other["path"]).exists()
    with pytest.raises(UserError, match="at least two routes"):
        tune.tune_encoder(["a", "b"], [0, 0], folder)


def test_cli_fit_tune_encoder_and_reset(app: App, tmp_path: Path) -> None:
    """`mcp-router fit --tune-encoder` on the shipped registry (a two-step fine-tune), then routing, then --reset."""
    data = tmp_path / "labelled.jsonl"
    rows = [("the build fails with a linker error", "debugging"), ("my script throws KeyError on a missing key", "debugging"),
            ("write jest tests for the login form", "test_writing"), ("pytest tests for the csv parser", "test_writing"),
            ("design a queue-based architecture for image processing", "architecture"),
            ("monolith vs microservices for our startup", "architecture"), ("how tall is mount everest", "none"),
            ("suggest a board game for four players", "none"), ("syntax for a python decorator", "syntax_help"),
            ("add a README section about installation", "documentation"), ("a bedtime story about dragons", "none")]
    data.write_text("".join(json.dumps({"query": q, "route": r}) + "\n" for q, r in rows))
    res = _run(app, "fit", "--tune-encoder", "--steps", "2", "--data", str(data), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # --json on stdout; progress and warnings go to stderr
    info = out["tuned_encoder"]
    assert info["steps"] == 2 and not info["reused"] and info["rows"] > 1000  # the registry's utterances + 8 rows
    folder = Path(info["path"])
    assert folder.parent == app.index_dir / "routing" and (folder / "onnx" / "model.onnx").is_file()
    assert out["saved"] and folder.name in json.loads(Path(out["path"]).read_text())["model_key"]
    assert Router.from_app(app).encoder.model_id == str(folder)
    res = _run(app, "route", "--json", "write pytest unit tests for the date parser")
    assert res.exit_code == 0 and json.loads(res.stdout)["route"] == "test_writing"
    res = _run(app, "fit", "--tune-encoder", "--epochs", "0")
    assert res.exit_code == 1 and "--epochs must be at least 1" in res.output
    res = _run(app, "fit", "--reset", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["reset"]
    assert not folder.exists() and not Router.from_app(app).tuned


def test_the_router_routes_with_the_shipped_router_encoder_unless_told_to_share(app: App) -> None:
    """The package ships an int8 router encoder tuned on the shipped registry; `routing.encoder = "shared"` routes
    with the code index's encoder instead."""
    from mcp_router.routing import tune

    folder = tune.shipped_folder()
    assert folder is not None, "the shipped router encoder is missing: run fixtures/routing/make_router_encoder.py"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["registry_hash"] == load_registry().content_hash(), (
        "the registry changed since the router encoder was built: run fixtures/routing/make_router_encoder.py")
    model_hash = __import__("hashlib").sha256((folder / "onnx" / "model.onnx").read_bytes()).hexdigest()[:12]
    assert folder.name == f"router-encoder-{model_hash}" == f"router-encoder-{manifest['model_hash']}"
    router = Router.from_app(app)
    assert router.encoder.model_id == str(folder) and not router.tuned and router.base_encoder is app.encoder
    q = "my flutter build fails with a gradle error"
    assert router.route(q, record=False).route == "debugging"
    assert float(app.encoder.encode([q])[0] @ router.encoder.encode([q])[0]) < 0.99  # really another model
    (app.root / ".mcp-router.toml").write_text('[routing]\nencoder = "shared"\n')
    shared = Router.from_app(App(app.root))
    assert shared.encoder is shared.base_encoder and shared.encoder.model_id == app.encoder.model_id
    (app.root / ".mcp-router.toml").write_text('[routing]\nencoder = "mine"\n')
    with pytest.raises(UserError, match='routing.encoder = .mine. is unknown: use "tuned"'):
        Router.from_app(App(app.root))

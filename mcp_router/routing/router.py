"""`Router`: one query in, one `RouteDecision` out (route, tier, model, confidence, why), in milliseconds.

Pipeline for one query (one encode; everything else is regexes, two small matrix-vector products and a sparse
lexical dot product):
1. rules: regex/keyword pins and blocks from the registry;
2. semantic scoring (`scoring.decide`): best route, confidence, margin, runner-up, or out of scope;
3. complexity signal: scope, paste length, reasoning cues move the tier from the route's default;
4. feedback kNN: past outcomes of similar queries lift or lower the tier;
5. session signal: "that didn't work" escalates; a short follow-up keeps the task's tier;
6. privacy: secrets or PII force the configured local tier (last, so nothing overrides it).
The same object serves the CLI, the MCP tools and library users.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import logging
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, Field

from indexer.encoder import get_encoder
from indexer.errors import UserError
from mcp_router.routing import scoring
from mcp_router.routing import tiers as tiermodel
from mcp_router.routing import tune
from mcp_router.routing.feedback import TABLE as FEEDBACK_TABLE
from mcp_router.routing.lexical import LexicalModel
from mcp_router.routing.registry import Registry, cached_embeddings, load_registry
from mcp_router.routing.signals import SessionTurn, code_evidence, complexity_signal, privacy_signal, session_signal

log = logging.getLogger(__name__)

MODEL_VERSION = 5  # bump when the scorer changes, so cached models are rebuilt
# the runner-up's probability from which its (higher) tier wins; 0 turns it off. Rule used to choose it: the largest
# share that keeps under-routing <= 5% on the coding dev, test and hold-out sets (0.1: 0.5% / 3.9% / 3.8%, for
# 2-4 points of tier accuracy; 0.15 left the hold-out set at 5.9%, 0.2 at 6.7%)
AMBIGUITY_SHARE = 0.1
# a query below its acceptance threshold stays in scope when it names a language, tool or file (`code_evidence`) and
# its confidence is at least this share of the threshold; 0 turns it off. On blind sets 4 and 5, 23 of 656 coding
# queries were rejected (18 with such words) against 1 of 61 off-topic ones with them (at confidence 0.00).
EVIDENCE_SHARE = 0.5


class RouteDecision(BaseModel):
    """Where one query should go, and why."""

    route: str | None = Field(description="the matched route (intent), or null when the query is out of scope")
    tier: str = Field(description="the model tier to use: slm, srm, llm or lrm (cheapest first)")
    model: str = Field(description="the model id configured for that tier")
    confidence: float = Field(description="0-1: how sure the router is that the route is right and in scope")
    margin: float = Field(description="route probability minus the runner-up's; small margins are ambiguous")
    runner_up: str | None = Field(None, description="the second most likely route")
    route_tier: str = Field(description="the route's default tier before signals moved it")
    signals: list[str] = Field(default_factory=list, description="the signals and rules that fired")
    private: bool = Field(False, description="true when secrets or personal data were found: forced to the local tier")
    reason: str = Field(description="one line explaining the decision")
    latency_ms: float = Field(description="time taken for the decision, embedding included")


class Router:
    """Routes queries with a validated `Registry` and a shared encoder.

    Args:
        registry: tiers and routes (`load_registry`).
        encoder: anything with ``encode(list[str]) -> (n, d)`` unit vectors and ``model_id`` (the shared `Encoder`).
        cache_dir: where route embeddings, the fitted model and fitted thresholds live.
        db: a LanceDB connection for the decision log and feedback (None: neither is kept).
        log_queries: store the query text in the log (off by default; a keyed hash is always stored).
        base_encoder: the shared encoder, which `tune_encoder` fine-tunes (default: ``encoder``).
        default_encoder: what routes when no repository tune exists, the shipped router encoder or the shared one;
            `unfit` goes back to it (default: ``encoder``).
    """

    def __init__(self, registry: Registry, encoder: Any, *, cache_dir: Path | None = None, db: Any = None,
                 log_queries: bool = False, telemetry: bool = True, feedback_k: int = 10,
                 feedback_min_similarity: float = 0.8, ambiguity_share: float = AMBIGUITY_SHARE,
                 evidence_share: float = EVIDENCE_SHARE, tier_model: bool = True,
                 tier_under_cost: float = tiermodel.UNDER_COST, base_encoder: Any = None,
                 default_encoder: Any = None) -> None:
        from indexer.encoder import cache_root

        self.registry = registry
        self.encoder = encoder
        self.base_encoder = base_encoder if base_encoder is not None else encoder
        self.default_encoder = default_encoder if default_encoder is not None else encoder
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "routing"
        self.db = db
        self.feedback_k = feedback_k
        self.feedback_min_similarity = feedback_min_similarity
        self.ambiguity_share = float(ambiguity_share)
        self.evidence_share = float(evidence_share)
        self.use_tier_model = bool(tier_model)
        self.tier_under_cost = float(tier_under_cost)
        self._model: scoring.RouteModel | None = None
        self._tier_model: tiermodel.TierModel | None | bool = False  # False: not built yet; None: none to build
        self._lock = threading.Lock()
        self._feedback: Any = None
        self._log: Any = None
        self._salt: bytes | None = None
        self._telemetry = telemetry and db is not None
        self._log_queries = log_queries
        self._recent: OrderedDict[str, str] = OrderedDict()  # query hash -> tier, for session history
        self._pins = [(i, [re.compile(p, re.IGNORECASE) for p in r.regex], r.keywords)
                      for i, r in enumerate(registry.routes)]
        self._blocks = [(i, [re.compile(p, re.IGNORECASE) for p in r.block_regex], r.block_keywords)
                        for i, r in enumerate(registry.routes)]

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_app(cls, app: Any) -> "Router":
        """The router of a repository: default registry + the repo's own, caches in its index folder.

        Settings (``[tool.mcp-router.routing]``): ``registry`` (path of the user registry, default
        ``.mcp-router/routes.yaml``), ``log_queries`` (false), ``telemetry`` (true), ``feedback_k`` (10),
        ``feedback_min_similarity`` (0.8), ``ambiguity_share`` (0.1: a runner-up route at least this likely lends
        its higher tier; 0 turns it off), ``evidence_share`` (0.5: a query naming a language, tool or file stays in
        scope down to this share of the acceptance threshold; 0 turns it off), ``tier_model`` (true: the tier is
        learned from the registry's tier-labelled examples; false: route default moved by the rules),
        ``tier_under_cost`` (4.0: how much worse one tier too low is than one tier too high; higher = safer, dearer),
        ``encoder`` ("tuned": the repository's own tune from `fit --tune-encoder`, else the router encoder that ships
        with the package; "shared": the encoder of the code index, as before the router had its own).
        """
        cfg = dict(app.config.routing or {})
        known = {"registry", "log_queries", "telemetry", "feedback_k", "feedback_min_similarity", "tokens_per_call",
                 "ambiguity_share", "evidence_share", "tier_model", "tier_under_cost", "encoder"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise UserError(f"unknown routing setting(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
        user = cfg.get("registry")
        paths: list[Path] = []
        if user:
            p = Path(user).expanduser()
            p = p if p.is_absolute() else app.root / p
            if not p.is_file():
                raise UserError(f"routing.registry points to {p}, which does not exist: create it or fix the setting")
            paths.append(p)
        elif (app.index_dir / "routes.yaml").is_file():
            paths.append(app.index_dir / "routes.yaml")
        registry = load_registry(paths)

        def number(key: str, default: float, kind: type = float) -> Any:
            try:
                return kind(cfg.get(key, default))
            except (TypeError, ValueError):
                raise UserError(f"routing.{key} = {cfg.get(key)!r} is not a number: set it like "
                                f"{key} = {default}") from None

        cache_dir = app.index_dir / "routing"
        choice = cfg.get("encoder", "tuned")
        if choice not in ("tuned", "shared"):
            raise UserError(f"routing.encoder = {choice!r} is unknown: use \"tuned\" (the default) or \"shared\"")
        default = (tune.shipped_encoder() if choice == "tuned" else None) or app.encoder
        encoder = (tune.tuned_encoder(cache_dir) if choice == "tuned" else None) or default
        return cls(registry, encoder, cache_dir=cache_dir, db=app.db(), base_encoder=app.encoder,
                   default_encoder=default,
                   log_queries=bool(cfg.get("log_queries", False)), telemetry=bool(cfg.get("telemetry", True)),
                   feedback_k=number("feedback_k", 10, int),
                   feedback_min_similarity=number("feedback_min_similarity", 0.8),
                   ambiguity_share=number("ambiguity_share", AMBIGUITY_SHARE),
                   evidence_share=number("evidence_share", EVIDENCE_SHARE),
                   tier_model=_flag(cfg, "tier_model", True),
                   tier_under_cost=number("tier_under_cost", tiermodel.UNDER_COST))

    @property
    def tuned(self) -> bool:
        """True when routing uses this repository's own fine-tuned encoder (`tune_encoder`)."""
        return self.encoder is not self.default_encoder

    # -- the model ------------------------------------------------------------------------------------------------
    @property
    def model(self) -> scoring.RouteModel:
        """The fitted scorer; built from cached embeddings on first use (and cached on disk itself)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._build_model()
        return self._model

    def _model_key(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(self.encoder.model_id).name)
        return f"model-v{MODEL_VERSION}-{safe}-{self.registry.content_hash()}"

    @property
    def shared_dir(self) -> Path:
        """Machine-wide cache of registry models and utterance vectors. Keys hold the model id and the registry's
        content hash, so every repository using the same registry shares one build (seconds to a minute on 2 cores)
        instead of paying it per index folder."""
        from indexer.encoder import cache_root

        return cache_root() / "routing"

    def _registry_model(self) -> scoring.RouteModel:
        """The scorer trained on the registry alone (self-calibrated); cached on disk by model + registry content."""
        name = f"{self._model_key()}.npz"
        for folder in (self.cache_dir, self.shared_dir):
            model = _load_model(folder / name, self.registry.route_names)
            if model is not None:
                return model
        texts, labels = self.registry.training_texts()
        x, neg = self._registry_vectors()
        model = scoring.fit_route_model(x, np.asarray(labels), self.registry.route_names, neg=neg,
                                        texts=texts, neg_texts=self.registry.out_of_scope)
        for folder in (self.shared_dir, self.cache_dir):
            try:
                _save_model(folder / name, model)
                break
            except OSError as exc:  # a read-only home folder: fall back to the index folder
                log.debug("cannot cache the route model in %s: %s", folder, exc)
        return model

    def _registry_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the registry's utterances and of its out-of-scope examples (cached machine-wide)."""
        texts, _ = self.registry.training_texts()
        for folder in (self.shared_dir, self.cache_dir):
            try:
                return (cached_embeddings(texts, self.encoder, folder),
                        cached_embeddings(self.registry.out_of_scope, self.encoder, folder))
            except OSError as exc:
                log.debug("cannot cache utterance vectors in %s: %s", folder, exc)
        raise UserError(f"cannot write the routing cache in {self.cache_dir}: check its permissions")

    def _build_model(self) -> scoring.RouteModel:
        fitted = self._read_fitted()
        model = None
        if fitted is not None and fitted.get("classifier"):
            model = _load_model(self.cache_dir / fitted["classifier"], self.registry.route_names)
            if model is None:
                log.warning("the classifier trained by `mcp-router fit` (%s) is missing or unreadable: using the "
                            "registry's own; rerun `mcp-router fit`", self.cache_dir / fitted["classifier"])
                fitted = None  # its calibration belongs to that classifier
        if model is None:
            model = self._registry_model()
        if fitted is not None:
            model.acceptor = scoring.Acceptor.from_dict(fitted["acceptor"])
            model.threshold = float(fitted["threshold"])
            model.route_thresholds = {self.registry.route_names.index(k): float(v)
                                      for k, v in fitted.get("route_thresholds", {}).items()
                                      if k in self.registry.route_names}
        for i, r in enumerate(self.registry.routes):
            if r.threshold is not None:  # an explicit threshold in the registry wins over fitted ones
                model.route_thresholds[i] = r.threshold
        return model

    @property
    def fitted_path(self) -> Path:
        return self.cache_dir / "fitted.json"

    def _read_fitted(self) -> dict | None:
        try:
            data = json.loads(self.fitted_path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("model_key") != self._model_key():
            log.warning("ignoring %s: it was fitted for another registry or model; rerun `mcp-router fit`",
                        self.fitted_path)
            return None
        return data

    @property
    def tier_model(self) -> tiermodel.TierModel | None:
        """The tier model trained on the registry's tier-labelled examples (None: off, or too few examples)."""
        if not self.use_tier_model:
            return None
        if self._tier_model is False:
            with self._lock:
                if self._tier_model is False:
                    self._tier_model = self._build_tier_model()
        return self._tier_model  # type: ignore[return-value]

    def _build_tier_model(self) -> tiermodel.TierModel | None:
        fitted = self._read_fitted()
        if fitted is not None and fitted.get("tier_model") and fitted.get("tier_key") == self.registry.tier_hash():
            model = tiermodel.load(self.cache_dir / fitted["tier_model"], len(self.registry.tiers))
            if model is not None:
                return model
            log.warning("the tier model trained by `mcp-router fit` (%s) is missing or unreadable: using the "
                        "registry's own; rerun `mcp-router fit`", self.cache_dir / fitted["tier_model"])
        return self._registry_tier_model()

    def _registry_tier_model(self) -> tiermodel.TierModel | None:
        """The tier model trained on the registry's tier-labelled examples alone (cached on disk)."""
        reg = self.registry
        if len(reg.tier_examples) < tiermodel.MIN_EXAMPLES:
            return None
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(self.encoder.model_id).name)
        name = f"tiers-v{tiermodel.VERSION}-{safe}-{reg.tier_hash()}.npz"
        for folder in (self.cache_dir, self.shared_dir):
            model = tiermodel.load(folder / name, len(reg.tiers))
            if model is not None:
                return model
        model = tiermodel.fit_tier_model(*self.tier_training_data(reg.tier_examples), len(reg.tiers))
        if model is not None:
            for folder in (self.shared_dir, self.cache_dir):
                try:
                    tiermodel.save(folder / name, model)
                    break
                except OSError as exc:
                    log.debug("cannot cache the tier model in %s: %s", folder, exc)
        return model

    def tier_training_data(self, examples: Sequence[tuple[str, str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows and tier indices of (query, route, tier) examples, each read with its labelled route's
        default tier. Vectors come from the registry's cached utterance vectors (every registry example is an
        utterance); only queries not among them are encoded."""
        reg, tiers = self.registry, self.registry.tier_names
        texts, _ = reg.training_texts()
        vecs = dict(zip(texts, self._registry_vectors()[0]))
        qs = [q for q, _, _ in examples]
        missing = [q for q in dict.fromkeys(qs) if q not in vecs]
        if missing:
            vecs.update(zip(missing, self.encoder.encode(missing)))
        defaults = [tiers.index(reg.route(r).tier) for _, r, _ in examples]
        x = np.vstack([vecs[q] for q in qs]) if qs else np.zeros((0, self.encoder.dim), np.float32)
        return (tiermodel.training_matrix(x, qs, defaults, len(tiers)),
                np.array([tiers.index(t) for _, _, t in examples], dtype=int))

    def warm(self) -> "Router":
        """Load the encoder and build the scorer and the tier model now (otherwise done on the first query)."""
        if hasattr(self.encoder, "load"):
            self.encoder.load()
        _ = self.model
        _ = self.tier_model
        return self

    # -- deciding -------------------------------------------------------------------------------------------------
    def route(self, query: str, history: Sequence[str | dict | SessionTurn] | None = None, *,
              record: bool = True) -> RouteDecision:
        """Decide the route and tier of ``query``.

        ``history`` holds the previous user turns, oldest first: strings, or ``{"query": ..., "tier": ...}`` when the
        tier used is known. Turns this router decided before are recognised by hash.
        """
        if not isinstance(query, str) or not query.strip():
            raise UserError("the query is empty: pass the user's request text")
        self.warm()  # load/build outside the timed part: latency_ms measures the decision, not start-up
        t0 = time.perf_counter()
        turns = self._turns(history)
        unknown = [i for i, t in enumerate(turns) if t.tier is None]
        vecs = self.encoder.encode([query] + [turns[i].query for i in unknown])
        for j, i in enumerate(unknown):
            turns[i].tier = self._decide(turns[i].query, vecs[j + 1], [])[0].tier
        decision, qhash = self._decide(query, vecs[0], turns, t0)
        if record:
            self._remember(qhash, decision.tier)
            self._record(decision, query, qhash)
        return decision

    def route_batch(self, queries: Sequence[str]) -> list[RouteDecision]:
        """Decide many independent queries with one batched encode (evaluation); nothing is logged."""
        self.warm()
        t0 = time.perf_counter()
        vecs = self.encoder.encode(list(queries))
        per_query = (time.perf_counter() - t0) / max(len(queries), 1)
        out = []
        for q, v in zip(queries, vecs):
            d = self._decide(q, v, [], time.perf_counter())[0]
            d.latency_ms = round(d.latency_ms + per_query * 1000, 3)  # amortised share of the batched encode
            out.append(d)
        return out

    def _turns(self, history: Sequence[str | dict | SessionTurn] | None) -> list[SessionTurn]:
        turns: list[SessionTurn] = []
        for h in list(history or [])[-3:]:
            if isinstance(h, SessionTurn):
                turns.append(SessionTurn(h.query, h.tier))
            elif isinstance(h, dict):
                q = str(h.get("query") or h.get("text") or "")
                tier = h.get("tier")
                if tier is not None and tier not in self.registry.tiers:
                    raise UserError(f"history tier {tier!r} is unknown: use one of {', '.join(self.registry.tiers)}")
                if q.strip():
                    turns.append(SessionTurn(q, tier))
            elif isinstance(h, str) and h.strip():
                turns.append(SessionTurn(h, None))
        for t in turns:
            if t.tier is None:
                t.tier = self._recent.get(self._hash(t.query))
        return turns

    def _decide(self, query: str, x: np.ndarray, turns: list[SessionTurn],
                t0: float | None = None) -> tuple[RouteDecision, str]:
        t0 = t0 if t0 is not None else time.perf_counter()
        reg, model = self.registry, self.model
        tiers = reg.tier_names
        fired: list[str] = []
        low = query.lower()
        pinned = [i for i, pats, kws in self._pins if any(p.search(query) for p in pats) or any(k in low for k in kws)]
        blocked = [i for i, pats, kws in self._blocks if any(p.search(query) for p in pats) or any(k in low for k in kws)]
        d = scoring.decide(model, x, blocked, text=query)
        route_i = d["route"]
        cx = complexity_signal(query)
        if route_i < 0 and self.evidence_share > 0 and d["probability"] > 0:
            if cx.floor:  # pasted code or a trace: 233 of 2,544 coding queries in nine labelled sets, 0 of 286 others
                route_i = d["best"]
                fired.append("in-scope:pasted code")
            elif d["confidence"] >= self.evidence_share * d["threshold"]:
                words = code_evidence(query)
                if words:  # a low-confidence request that names a language, tool or file is still about code
                    route_i = d["best"]
                    fired.append("in-scope:" + ",".join(words)[:40])
        pinned = [i for i in pinned if i not in blocked]
        if pinned:
            route_i = max(pinned, key=lambda i: d["probability"] if i == d["best"] else 0.0)
            fired.append(f"rule:pin:{reg.routes[route_i].name}")
        for i in blocked:
            fired.append(f"rule:block:{reg.routes[i].name}")
        route = reg.routes[route_i] if route_i >= 0 else None
        runner = d["runner_up"] if route_i == d["best"] else d["best"]
        runner_name = reg.routes[runner].name if runner >= 0 and runner != route_i else None
        base = route.tier if route else reg.fallback
        tier_i = tiers.index(base)
        why: list[str] = []
        runner_p = d["probability"] - d["margin"]
        tm = self.tier_model if route is not None else None
        if (tm is None and route is not None and route_i == d["best"] and runner_name and self.ambiguity_share > 0
                and runner_p >= self.ambiguity_share and tiers.index(reg.routes[runner].tier) > tier_i):
            # a close call between routes: under-routing costs a failed answer, over-routing only money, so the
            # harder route's tier wins
            tier_i = tiers.index(reg.routes[runner].tier)
            fired.append(f"ambiguity:{runner_name}")
            why.append(f"{tiers[tier_i]}: {runner_name} is close ({runner_p:.2f})")

        if cx.delta:
            tier_i += cx.delta
            fired += [f"complexity:{f}" for f in cx.fired]
            why.append(f"{'+' if cx.delta > 0 else ''}{cx.delta} for {', '.join(cx.fired)}")
        if tier_i < cx.floor:
            tier_i = cx.floor
            fired.append("complexity:paste-needs-reading")
            why.append(f"at least {tiers[min(cx.floor, len(tiers) - 1)]} for the pasted code")
        tier_i = int(np.clip(tier_i, 0, len(tiers) - 1))
        if tm is not None:
            # the rules' tier is one of the model's inputs; the model has the last word (it learned when the rules
            # over- or under-shoot from labelled examples)
            rule_i = tier_i
            p = tm.probs(tiermodel.features(x, query, tiers.index(base), rule_i, len(tiers), cx))[0]
            tier_i = max(int(tiermodel.choose_tier(p, self.tier_under_cost)[0]), min(cx.floor, len(tiers) - 1))
            fired.append(f"tier-model:{tiers[tier_i]} ({p[tier_i]:.2f})")
            if tier_i != rule_i:
                why.append(f"{tiers[tier_i]} learned from labelled examples (p {p[tier_i]:.2f}; rules said "
                           f"{tiers[rule_i]})")

        if self.feedback is not None and len(self.feedback):
            shift, support, mean = self.feedback.shift(x, tier_i, self.feedback_k, self.feedback_min_similarity)
            if shift:
                tier_i = int(np.clip(tier_i + shift, 0, len(tiers) - 1))
                fired.append(f"feedback:{'+' if shift > 0 else ''}{shift} ({support} similar outcomes)")
                why.append(f"{'+' if shift > 0 else ''}{shift} from {support} similar past outcomes")

        ss = session_signal(query, turns, tiers)
        if ss.keep_tier or ss.escalate:
            floor = tiers.index(ss.keep_tier) if ss.keep_tier else tier_i
            new = max(tier_i, floor) + (1 if ss.escalate else 0)
            new = int(np.clip(new, 0, len(tiers) - 1))
            if new != tier_i or ss.escalate:
                why.append(", ".join(ss.fired))
            tier_i = new
            fired += ss.fired

        private = privacy_signal(query)
        if private:
            tier_i = tiers.index(reg.local_tier)
            fired += [f"privacy:{p}" for p in private]
            why.append(f"forced to local tier {reg.local_tier}: the query contains {', '.join(private)}")

        tier = tiers[tier_i]
        if route is None:
            head = (f"out of scope (best guess {reg.routes[d['best']].name}, confidence {d['confidence']:.2f} "
                    f"< {d['threshold']:.2f}) -> fallback tier {base}")
        else:
            head = f"{route.name} (confidence {d['confidence']:.2f}, margin {d['margin']:.2f}"
            head += f" over {runner_name})" if runner_name else ")"
            head += f" -> {base}"
        reason = head + (f"; {'; '.join(why)} -> {tier}" if why and tier != base else ("; " + "; ".join(why) if why else ""))
        decision = RouteDecision(
            route=route.name if route else None, tier=tier, model=reg.tiers[tier].model,
            confidence=round(d["confidence"], 4), margin=round(d["margin"], 4), runner_up=runner_name,
            route_tier=base, signals=fired, private=bool(private), reason=reason,
            latency_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        return decision, self._hash(query)

    # -- feedback, telemetry --------------------------------------------------------------------------------------
    @property
    def feedback(self) -> Any:
        """The feedback store (None without a database)."""
        if self._feedback is None and self.db is not None:
            from mcp_router.routing.feedback import FeedbackStore

            dim = int(self.model.cents.shape[1])
            # vectors of two encoders never share a kNN: a tuned encoder keeps its own feedback table
            own = self.encoder is not self.base_encoder
            table = f"{FEEDBACK_TABLE}_{Path(self.encoder.model_id).name.replace('-', '_')}" if own else None
            self._feedback = FeedbackStore(self.db, self.registry.tier_names, dim, table=table)
        return self._feedback

    def record_feedback(self, query: str, tier: str, outcome: str, route: str | None = None) -> dict:
        """Record whether ``tier`` was enough for ``query`` (ok, too_weak, overkill). Similar queries learn from it."""
        if self.feedback is None:
            raise UserError("feedback needs an index folder: run inside a repository (or pass --root)")
        if not query.strip():
            raise UserError("the query is empty: pass the text of the request the feedback is about")
        if route is not None and route != "none":
            self.registry.route(route)
        x = self.encoder.encode([query])[0]
        need = self.feedback.add(x, query_hash=self._hash(query), route=route, tier=tier, outcome=outcome)
        return {"recorded": True, "tier": tier, "outcome": outcome, "needed_tier": need,
                "feedback_rows": len(self.feedback)}

    def _hash(self, query: str) -> str:
        from mcp_router.routing.telemetry import hash_query, query_salt

        if self._salt is None:
            self._salt = query_salt(self.cache_dir)
        return hash_query(query, self._salt)

    def _remember(self, qhash: str, tier: str) -> None:
        self._recent[qhash] = tier
        self._recent.move_to_end(qhash)
        while len(self._recent) > 256:
            self._recent.popitem(last=False)

    @property
    def decision_log(self) -> Any:
        if self._log is None and self._telemetry:
            from mcp_router.routing.telemetry import DecisionLog

            self._log = DecisionLog(self.db, log_queries=self._log_queries)
        return self._log

    def _record(self, decision: RouteDecision, query: str, qhash: str) -> None:
        if self.decision_log is None:
            return
        tiers = self.registry.tiers
        top = max(t.price for t in tiers.values())
        try:
            self.decision_log.record(decision, query, qhash, top, tiers[decision.tier].price)
        except Exception as exc:  # noqa: BLE001 - logging must never fail a decision
            log.warning("could not write the decision log: %s", exc)

    def flush(self) -> None:
        """Write buffered telemetry rows now."""
        if self._log is not None:
            self._log.flush()

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, queries: Sequence[str], routes: Sequence[str | None], *, per_route: bool = True,
            retrain: bool = True, force: bool = False, tiers: Sequence[str | None] | None = None) -> dict:
        """Learn from labelled queries (route None / "none" = out of scope) and save the result next to the model.

        ``retrain`` (the default): the classifier is retrained on the registry's utterances plus these queries, and the
        acceptor, blend weight and thresholds are calibrated on out-of-fold scores (`scoring.retrain_route_model`), so
        the reported "after" accuracy is measured on queries the classifier did not see. Without ``retrain`` the
        classifier stays the registry's and the labelled rows only calibrate when to trust it (in-sample "after").
        "before" is always the registry-only router on these queries. A retrained model that does worse than that on
        its out-of-fold estimate is not saved (the registry stays in charge) unless ``force``. Returns a summary
        (``saved`` says whether anything was written).

        ``tiers`` (the tier each query needs, or None) retrain the tier model too, on the registry's tier examples
        plus these rows, when at least 10 in-scope rows carry one; its "after" is out-of-fold as well, and it is kept
        only when its expected cost (`tiers.cost_matrix`) on these rows is no worse than the registry's model.
        """
        names = self.registry.route_names
        labels = np.array([-1 if _out_of_scope(r) else _index(names, r) for r in routes])
        if len(labels) < 10:
            raise UserError(f"only {len(labels)} labelled queries: fitting needs at least 10 (better 100+)")
        queries = list(queries)
        base = self._registry_model()
        x = self.encoder.encode(queries)
        probs, feats = scoring.model_scores(base, x, queries)
        pred_before = scoring.apply_threshold(probs.argmax(axis=1), base.acceptor.score(feats), base.threshold,
                                              base.route_thresholds)
        is_oos = labels < 0
        classifier = None
        if retrain:
            texts, y = self.registry.training_texts()
            oos = self.registry.out_of_scope
            reg = scoring.Labelled(np.vstack(self._registry_vectors()),
                                   np.concatenate([np.asarray(y, int), np.full(len(oos), -1)]), texts + oos)
            model, comp, _ = scoring.retrain_route_model(reg, scoring.Labelled(x, labels, queries), names,
                                                         per_route=per_route)
            probs, feats = scoring.features(comp, len(names), model.has_reject, model.alpha)
            pred = probs.argmax(axis=1)
            acceptor, thr, per = model.acceptor, model.threshold, model.route_thresholds
            digest = hashlib.sha256(json.dumps([self._model_key(), queries, labels.tolist()]).encode()).hexdigest()
            classifier = f"fitted-model-{digest[:16]}.npz"  # fitted.json names its own file: no torn pairs
        else:
            pred = probs.argmax(axis=1)
            acceptor, thr, per = scoring.calibrate(feats, pred, labels, per_route=per_route, min_rows=10,
                                                   default_threshold=base.threshold)
        pred_after = scoring.apply_threshold(pred, acceptor.score(feats), thr, per)
        tier_fit = self._fit_tiers(queries, x, routes, tiers) if retrain and tiers is not None else None
        data = {"model_key": self._model_key(), "acceptor": acceptor.to_dict(), "threshold": thr,
                "route_thresholds": {names[i]: t for i, t in per.items()}, "rows": int(len(labels)),
                "oos_rows": int(is_oos.sum()), "retrained": retrain, "classifier": classifier,
                "accuracy_before": float((pred_before == labels).mean()),
                "accuracy_after": float((pred_after == labels).mean()),
                "balanced_accuracy_before": scoring.balanced_accuracy(pred_before, labels),
                "balanced_accuracy_after": scoring.balanced_accuracy(pred_after, labels),
                "after_is": "out-of-fold" if retrain else "in-sample",
                "tier_key": self.registry.tier_hash(), "tier_model": None, "tiers": None}
        if tier_fit is not None:
            model_t, report = tier_fit
            data["tiers"] = report
            if model_t is not None and (force or report["cost_after"] <= report["cost_before"] + 1e-9):
                data["tier_model"] = f"fitted-tiers-{hashlib.sha256(json.dumps([classifier, report]).encode()).hexdigest()[:16]}.npz"
        if retrain and not force and data["balanced_accuracy_after"] < data["balanced_accuracy_before"] - 1e-9:
            return {k: v for k, v in data.items() if k != "acceptor"} | {"saved": False, "path": None}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if retrain:
            _save_model(self.cache_dir / classifier, model)
        if data["tier_model"]:
            tiermodel.save(self.cache_dir / data["tier_model"], tier_fit[0])
            data["tiers"]["saved"] = True
        tmp = self.fitted_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.fitted_path)
        for old in (*self.cache_dir.glob("fitted-model-*.npz"), *self.cache_dir.glob("fitted-tiers-*.npz")):
            if old.name not in (classifier, data["tier_model"]):
                old.unlink(missing_ok=True)
        self._model = None  # rebuild with the new classifier / thresholds
        self._tier_model = False
        return {k: v for k, v in data.items() if k != "acceptor"} | {"saved": True, "path": str(self.fitted_path)}

    def unfit(self) -> bool:
        """Forget what `fit` learned, the tuned encoder included (back to the registry alone and the default
        encoder); True when there was something to forget."""
        found = self._forget_fit()
        if tune.forget(self.cache_dir):
            found = True
        self._use_encoder(self.default_encoder)
        return found

    def _forget_fit(self) -> bool:
        """Remove fitted.json and the models it names (the encoder stays)."""
        found = False
        for p in (self.fitted_path, *self.cache_dir.glob("fitted-model-*.npz"), *self.cache_dir.glob("fitted-tiers-*.npz")):
            if p.exists():
                p.unlink()
                found = True
        self._model = None
        self._tier_model = False
        return found

    def _use_encoder(self, encoder: Any) -> None:
        self.encoder = encoder
        self._model = None
        self._tier_model = False
        self._feedback = None

    def tune_encoder(self, queries: Sequence[str] = (), routes: Sequence[str | None] = (), *, epochs: int = 1,
                     max_steps: int | None = None, progress: Any = None) -> dict:
        """Fine-tune the shared encoder on the registry's utterances plus these labelled queries (out-of-scope rows
        are skipped) and route with it from now on (`tune`). What an earlier `fit` learned belonged to the old
        encoder, so it is forgotten; fit again afterwards to calibrate on your rows. Returns `tune.tune_encoder`'s
        summary (``reused``: these rows and settings were tuned on already, nothing changed)."""
        names = self.registry.route_names
        texts, labels = self.registry.training_texts()
        texts, labels = list(texts), list(labels)
        for q, r in zip(queries, routes):
            if not _out_of_scope(r):
                texts.append(q)
                labels.append(_index(names, r))
        info = tune.tune_encoder(texts, labels, self.cache_dir, base=self.base_encoder.model_id, epochs=epochs,
                                 max_steps=max_steps, progress=progress)
        if not info["reused"]:
            self._forget_fit()
        self._use_encoder(get_encoder(info["path"], "onnx"))
        return info

    def _fit_tiers(self, queries: list[str], x: np.ndarray, routes: Sequence[str | None],
                   tiers: Sequence[str | None]) -> tuple[tiermodel.TierModel | None, dict] | None:
        """Retrain the tier model on the registry's examples plus the labelled rows that carry a tier; scored
        out-of-fold on those rows against the registry's own tier model. None when fewer than 10 rows carry one."""
        reg, names = self.registry, self.registry.tier_names
        rows = [i for i, (r, t) in enumerate(zip(routes, tiers)) if t and not _out_of_scope(r)]
        for i in rows:
            if tiers[i] not in names:
                raise UserError(f"row {i + 1}: tier {tiers[i]!r} is unknown: use one of {', '.join(names)}")
        if len(rows) < 10:
            return None
        defaults = [names.index(reg.route(routes[i]).tier) for i in rows]
        feats = tiermodel.training_matrix(x[rows], [queries[i] for i in rows], defaults, len(names))
        need = np.array([names.index(tiers[i]) for i in rows])
        base_x, base_y = self.tier_training_data(reg.tier_examples)
        cost = tiermodel.cost_matrix(len(names), self.tier_under_cost)
        current = self._registry_tier_model()
        before = (tiermodel.choose_tier(current.probs(feats), self.tier_under_cost) if current is not None
                  else np.array([tiermodel.rule_tier(d, complexity_signal(queries[i]), len(names))
                                 for d, i in zip(defaults, rows)]))
        after = np.empty(len(rows), dtype=int)
        folds = np.arange(len(rows)) % 5
        np.random.default_rng(0).shuffle(folds)
        for k in range(5):
            held = folds == k
            m = tiermodel.fit_tier_model(np.vstack([base_x, feats[~held]]), np.concatenate([base_y, need[~held]]),
                                         len(names))
            after[held] = (tiermodel.choose_tier(m.probs(feats[held]), self.tier_under_cost) if m is not None
                           else before[held])
        model = tiermodel.fit_tier_model(np.vstack([base_x, feats]), np.concatenate([base_y, need]), len(names))
        report = {"rows": len(rows), "accuracy_before": float((before == need).mean()),
                  "accuracy_after": float((after == need).mean()), "under_before": float((before < need).mean()),
                  "under_after": float((after < need).mean()), "cost_before": float(cost[before, need].mean()),
                  "cost_after": float(cost[after, need].mean()), "after_is": "out-of-fold", "saved": False}
        return model, report


def _flag(cfg: dict, key: str, default: bool) -> bool:
    v = cfg.get(key, default)
    if isinstance(v, bool):
        return v
    raise UserError(f"routing.{key} = {v!r} is not true or false: set it like {key} = {str(default).lower()}")


def _out_of_scope(route: str | None) -> bool:
    """A labelled row's route that means "no route" (off-topic)."""
    return route in (None, "", "none", "oos")


def _index(names: list[str], route: str) -> int:
    try:
        return names.index(route)
    except ValueError:
        raise UserError(f"label {route!r} is not a route: use one of {', '.join(names)} or none") from None


def _save_model(path: Path, m: scoring.RouteModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, w=m.w, b=m.b, cents=m.cents, has_reject=np.array(m.has_reject),
             names=np.array(json.dumps(m.names)), acceptor=np.array(json.dumps(m.acceptor.to_dict())),
             threshold=np.array(m.threshold), alpha=np.array(m.alpha), beta=np.array(m.beta),
             **({"utt": m.utt, "utt_y": m.utt_y} if m.utt is not None else {}),
             **(m.lex.to_arrays() if m.lex is not None else {}))
    tmp.replace(path)


def _load_model(path: Path, names: list[str]) -> scoring.RouteModel | None:
    try:
        with np.load(path) as z:
            if json.loads(str(z["names"])) != names:
                return None
            lex = LexicalModel.from_arrays(z) if "lex_w" in z.files else None
            return scoring.RouteModel(names, z["w"], z["b"], z["cents"], bool(z["has_reject"]),
                                      scoring.Acceptor.from_dict(json.loads(str(z["acceptor"]))),
                                      float(z["threshold"]), lex=lex,
                                      alpha=float(z["alpha"]) if "alpha" in z.files else 0.0,
                                      utt=z["utt"] if "utt" in z.files else None,
                                      utt_y=z["utt_y"] if "utt_y" in z.files else None,
                                      beta=float(z["beta"]) if "utt" in z.files else 0.0)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # missing, foreign or torn: rebuild it
        return None

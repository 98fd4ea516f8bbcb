"""A router-specific encoder: the embedded model fine-tuned on the registry's labelled routes (opt-in).

`mcp-router fit --tune-encoder` runs `tune_encoder`: a SetFit-style contrastive fine-tune of all-MiniLM-L6-v2 on the
registry's utterances (and the user's labelled rows), each pulled towards another utterance of its route and away
from the other routes in its batch (MultipleNegativesRankingLoss, symmetric). The result is exported to ONNX once
and written, with an ``encoder.json`` pointer, into the repository's routing folder. From then on the router (route
scorer, tier model, feedback kNN) encodes queries with it; the code index, the tool filter and the answer cache keep
the shared encoder. One encode per routing decision either way.

It costs minutes, not milliseconds (about 9 minutes on 2 CPU cores for the ~6,000 shipped examples, one epoch), which
is why it is not the default. `benchmarks/bench_router_coding.py --encoder` measures what it buys on authors it has
never seen.

The folder name carries a digest of what trained it, so every cache keyed by the encoder's model id (route model,
tier model, utterance vectors) is rebuilt for a new tune and never served across tunes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from indexer.encoder import DEFAULT_MODEL, Encoder, _model_fingerprint, get_encoder, resolve_model_path
from indexer.errors import UserError

log = logging.getLogger(__name__)

VERSION = 1
POINTER = "encoder.json"
PREFIX = "encoder-"
DATA = Path(__file__).resolve().parents[1] / "data"
SHIPPED_PREFIX = "router-encoder-"  # the shipped router encoder: mcp_router/data/router-encoder-<model hash>/
TRAIN_MAX_TOKENS = 64  # the training sequence length: longer pasted text is cut (the encoder still reads 256)


def pair_batches(labels: np.ndarray, batch: int, rng: np.random.Generator) -> list[list[tuple[int, int]]]:
    """One epoch of (anchor, positive) index pairs: every row is an anchor once, paired with another row of its
    route; a batch holds each route at most once, so the other pairs in it are true negatives."""
    queues: dict[int, list[tuple[int, int]]] = {}
    for c in np.unique(labels):
        rows = list(rng.permutation(np.where(labels == c)[0]))
        if len(rows) < 2:
            continue
        queues[int(c)] = [(int(a), int(rows[(i + 1 + rng.integers(len(rows) - 1)) % len(rows)]))
                          for i, a in enumerate(rows)]
    out = []
    while len(queues) > 1:
        cls = list(queues)
        weights = np.array([len(queues[c]) for c in cls], dtype=float)
        take = rng.choice(len(cls), size=min(batch, len(cls)), replace=False, p=weights / weights.sum())
        out.append([queues[cls[i]].pop() for i in take])
        for i in take:
            if not queues[cls[i]]:
                del queues[cls[i]]
    return out


def training_digest(texts: Sequence[str], labels: Sequence[int], base: str, **settings: Any) -> str:
    """What a tune depends on: the base model's files, the labelled texts and the settings."""
    payload = json.dumps([VERSION, _model_fingerprint(resolve_model_path(base)), list(texts),
                          [int(v) for v in labels], sorted(settings.items())])
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def tune_encoder(texts: Sequence[str], labels: Sequence[int], folder: Path, *, base: str = DEFAULT_MODEL,
                 epochs: int = 1, lr: float = 3e-5, batch: int = 64, max_steps: int | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Fine-tune ``base`` on labelled texts (label = route index) and write it, exported to ONNX, into
    ``folder/encoder-<digest>`` plus the pointer ``folder/encoder.json``. Returns the pointer's content.

    ``max_steps`` caps the optimiser steps (a quick trial); ``progress(step, total)`` is called after each step.
    Nothing is replaced until the new encoder is complete: a crash leaves the previous one in use.
    """
    y = np.asarray(labels, dtype=int)
    if len(texts) != len(y):
        raise UserError(f"{len(texts)} texts but {len(y)} labels")
    if len(np.unique(y)) < 2:
        raise UserError("tuning the encoder needs labelled queries from at least two routes")
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    settings = {"epochs": epochs, "lr": lr, "batch": batch, "max_steps": max_steps, "seed": seed}
    digest = training_digest(texts, y, base, **settings)
    name = f"{PREFIX}{digest}"
    folder.mkdir(parents=True, exist_ok=True)

    _drop_stale_work(folder)
    current = read_pointer(folder)
    if current is not None and current.get("folder") == name:  # the same rows and settings: already tuned
        return current | {"reused": True}
    model, info = fine_tune_model(texts, y, base=base, progress=progress, **settings)

    # torch checkpoint -> ONNX export -> atomic rename: the folder only ever appears complete
    work = folder / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        model.save(str(work / "torch"))
        _export_onnx(work / "torch", work / "onnx-model")
        shutil.rmtree(work / "torch")
        out = work / "onnx-model"
        if not (out / "onnx" / "model.onnx").exists() or not (out / "tokenizer.json").exists():
            raise UserError("the ONNX export of the tuned encoder is incomplete; rerun with --debug to see why")
        final = folder / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pointer = {"version": VERSION, "folder": name, "base": base, "rows": int(len(y)),
               "routes": int(len(np.unique(y))), **info, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **settings}
    tmp = folder / f"{POINTER}.tmp"
    tmp.write_text(json.dumps(pointer, indent=2))
    tmp.replace(folder / POINTER)
    for old in folder.glob(f"{PREFIX}*"):  # earlier tunes: no longer pointed at
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return pointer | {"path": str(final), "reused": False}


def _drop_stale_work(folder: Path) -> None:
    """Remove the half-written work folders of tunes whose process is gone (a kill -9 mid-export leaves one)."""
    for work in folder.glob(f".{PREFIX}*.tmp*"):
        pid = work.name.rsplit(".tmp", 1)[-1]
        alive = False
        if pid.isdigit():
            try:
                os.kill(int(pid), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:  # another user's live process
                alive = True
        if not alive:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _quiet(logger: str | None) -> Iterator[None]:
    """Silence one library's log advice (``None``: the root logger) and Python warnings for the block, so exporting
    and quantising do not print tracer warnings and tips on the user's terminal."""
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        target.setLevel(level)


def _export_onnx(src: Path, dst: Path) -> None:
    """Export a saved checkpoint to ONNX."""
    from sentence_transformers import SentenceTransformer

    with _quiet("sentence_transformers"):
        SentenceTransformer(str(src), backend="onnx", device="cpu").save(str(dst))


def fine_tune_model(texts: Sequence[str], labels: np.ndarray, *, base: str = DEFAULT_MODEL, epochs: int = 1,
                    lr: float = 3e-5, batch: int = 64, max_steps: int | None = None, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> tuple[Any, dict]:
    """The training loop: a SentenceTransformer fine-tuned in memory (eval mode, max length 256) and a summary
    (steps, first and last loss, seconds)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = SentenceTransformer(resolve_model_path(base), device="cpu")
    model.max_seq_length = TRAIN_MAX_TOKENS
    loss_fn = MultipleNegativesRankingLoss(model, directions=("query_to_doc", "doc_to_query"))
    rng = np.random.default_rng(seed)
    plan = [b for _ in range(epochs) for b in pair_batches(labels, batch, rng)]
    if max_steps is not None:
        plan = plan[:max(1, max_steps)]
    total = len(plan)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    model.train()
    losses = []
    for step, b in enumerate(plan, 1):
        loss = loss_fn([model.preprocess([texts[a] for a, _ in b]), model.preprocess([texts[p] for _, p in b])], None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, total)
    model.eval()
    model.max_seq_length = 256
    return model, {"steps": total, "loss_first": round(losses[0], 4), "loss_last": round(float(np.mean(losses[-10:])), 4),
                   "train_seconds": round(time.perf_counter() - t0, 1)}


def read_pointer(folder: Path) -> dict | None:
    """The tuned encoder recorded in ``folder`` (None: none). A pointer that is unreadable or names a missing or
    incomplete encoder is reported once in the log and ignored: the router falls back to the shared encoder."""
    path = folder / POINTER
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        target = folder / str(data["folder"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s (%s): using the shared encoder; rerun `mcp-router fit --tune-encoder` or "
                    "`mcp-router fit --reset`", path, exc)
        return None
    if not (target / "onnx" / "model.onnx").exists() or not (target / "tokenizer.json").exists():
        log.warning("ignoring %s: the tuned encoder %s is missing or incomplete; using the shared encoder. Rerun "
                    "`mcp-router fit --tune-encoder` or `mcp-router fit --reset`", path, target)
        return None
    return data | {"path": str(target)}


def tuned_encoder(folder: Path) -> Encoder | None:
    """The process-wide encoder for the tuned model recorded in ``folder``, or None."""
    data = read_pointer(folder)
    return get_encoder(data["path"], "onnx") if data else None


def shipped_folder() -> Path | None:
    """The router encoder that ships with the package (built by fixtures/routing/make_router_encoder.py), or None."""
    for folder in sorted(DATA.glob(f"{SHIPPED_PREFIX}*")):
        if (folder / "onnx" / "model.onnx").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    return None


def shipped_encoder() -> Encoder | None:
    """The process-wide encoder for the shipped router encoder, or None when the package has none."""
    folder = shipped_folder()
    return get_encoder(str(folder), "onnx") if folder else None


def default_router_encoder() -> Encoder:
    """What a router routes with by default when no repository tune exists: the shipped router encoder, else the
    shared embedded model."""
    return shipped_encoder() or get_encoder()


def quantize(folder: Path) -> None:
    """Replace ``folder/onnx/model.onnx`` by its int8 dynamic quantisation, one scale per output channel (a quarter
    of the size; on 400 shipped examples its vectors keep a mean cosine of 0.994 to the float model's, against 0.964
    with one scale per tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = folder / "onnx" / "model.onnx"
    tmp = src.with_name("model.q8.onnx")
    with _quiet(None):  # its "consider pre-processing" advice goes to the root logger
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    os.replace(tmp, src)


def forget(folder: Path) -> bool:
    """Remove the tuned encoder (pointer and model folders); True when there was one."""
    found = False
    for p in [folder / POINTER, *folder.glob(f"{PREFIX}*")]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            found = True
        elif p.exists():
            p.unlink()
            found = True
    return found

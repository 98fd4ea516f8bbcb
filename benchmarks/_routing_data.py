"""Shared loaders for the router benchmarks: public intent data sets and an on-disk embedding cache.

Data is read by path from ``../shared/data`` (never copied into the repo). Embeddings of a list of texts are cached
under the encoder cache root, keyed by model id and a hash of the texts, so re-running a benchmark does not re-encode.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
RESULTS = REPO / "benchmarks" / "results"

OOS = "oos"


def load_clinc(path: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """CLINC150 ``data_full.json``: split -> [(text, intent)], OOS rows labelled ``oos``."""
    raw = json.loads(Path(path or DATA / "clinc150" / "data_full.json").read_text())
    return {k: [(t, l) for t, l in v] for k, v in raw.items()}


def _read_split(folder: Path) -> list[tuple[str, str]]:
    texts = (folder / "seq.in").read_text().splitlines()
    labels = (folder / "label").read_text().splitlines()
    if len(texts) != len(labels):
        raise ValueError(f"{folder}: seq.in and label have different lengths")
    return list(zip(texts, labels))


def load_banking(path: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """BANKING77-OOS with the verified in-scope splits, plus id-oos and ood-oos (valid/test)."""
    base = Path(path or DATA / "banking77_oos")
    out = {s: _read_split(base / "verified" / s) for s in ("train", "valid", "test")}
    for kind in ("id-oos", "ood-oos"):
        for s in ("valid", "test"):
            out[f"{kind}/{s}"] = [(t, OOS) for t, _ in _read_split(base / kind / s)]
    return out


def embed_cached(texts: Sequence[str], encoder) -> np.ndarray:
    """Encode ``texts`` once per model; later runs load the vectors from the cache folder."""
    from indexer.encoder import cache_root

    h = hashlib.sha256(encoder.model_id.encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace") + b"\x00")
    path = cache_root() / "bench-embeddings" / f"{h.hexdigest()[:24]}.npy"
    if path.exists():
        arr = np.load(path)
        if arr.shape[0] == len(texts):
            return arr
    arr = encoder.encode(list(texts), batch_size=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return arr


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(payload, indent=2, default=float))
    return out

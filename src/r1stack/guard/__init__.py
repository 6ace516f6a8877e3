"""Guard: PII recognition and redaction (whole texts and token streams), the green-list watermark and its
detector, and the hash-chained audit log. Names load on first use so `guard scan` does not pay for torch."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PiiFilter": "policy",
    "RedactionResult": "policy",
    "POLICIES": "policy",
    "Finding": "scanner",
    "Scanner": "scanner",
    "StreamRedactor": "stream",
    "WatermarkParams": "watermark",
    "WatermarkProcessor": "watermark",
    "watermark_processor": "watermark",
    "Detection": "detection",
    "detect": "detection",
    "detect_ids": "detection",
    "AuditLog": "audit",
    "AuditEvent": "audit",
    "VerifyReport": "audit",
    "verify": "audit",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"r1stack.guard.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'r1stack.guard' has no attribute {name!r}")

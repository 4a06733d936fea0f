"""Unit tests of the pure money, ledger and settlement core (no database, no event loop)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_VECTORS = REPO_ROOT.parent / "shared" / "settlement_vectors.json"
COPIED_VECTORS = REPO_ROOT / "tests" / "data" / "settlement_vectors.json"


def vectors_path() -> Path:
    """The worked vectors: ``<repo>/../shared/`` when it is there (CI clones it beside), else our copy."""
    return SHARED_VECTORS if SHARED_VECTORS.exists() else COPIED_VECTORS


@cache
def load_vectors() -> dict[str, Any]:
    """Return the parsed ``settlement_vectors.json``."""
    data: dict[str, Any] = json.loads(vectors_path().read_text(encoding="utf-8"))
    return data

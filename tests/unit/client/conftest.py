"""Makes the core's reference model (tests/unit/core/core_model.py) importable here."""

from __future__ import annotations

import sys
from pathlib import Path

_CORE_TESTS = str(Path(__file__).resolve().parents[1] / "core")
if _CORE_TESTS not in sys.path:
    sys.path.insert(0, _CORE_TESTS)

"""Makes the AsyncAPI validator helper (asyncapi_validator.py) importable whatever pytest's mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

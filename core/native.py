"""The compiled hot path (``native/``, the ``mdgw_native`` extension), when it is built.

``scripts/setup`` builds it where a Rust toolchain is found. Without it, or with
``MDGW_NATIVE=0`` in the environment (the extension then refuses to load), everything
runs the pure-Python code, which stays the reference: tests/unit/test_native.py compares
the two on generated input. The compiled functions are drop-in twins of
``schemas.codec.decode`` (book records only), ``core.checksum.ladder_checksum`` and
``OrderBook._apply_verified``; bench/README.md ("Ninth pass") has what they gain.
Pure: the gateway logs ``status``.
"""

from __future__ import annotations

from types import ModuleType

ABI = 1
"""The extension's ``ABI`` this code was written for; a build for another is not used."""


def choose(module: ModuleType | None, error: str = "") -> tuple[ModuleType | None, str]:
    """The extension to use (None: pure Python) and a line saying which path and why."""
    if module is None:
        return None, f"pure Python (mdgw_native not loaded: {error})"
    abi = getattr(module, "ABI", None)
    if abi != ABI:
        return None, (
            f"pure Python (mdgw_native was built for ABI {abi}, this code needs {ABI}: "
            "run scripts/setup to rebuild it)"
        )
    return module, "compiled (mdgw_native: record decode, book checksum, verified apply)"


try:
    import mdgw_native
except ImportError as e:
    native, status = choose(None, str(e))
else:
    native, status = choose(mdgw_native)

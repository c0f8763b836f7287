"""Hypothesis example counts of tests that set their own: scaled by the profile.

A test that wants ``n`` examples on CI asks ``examples(n)``: it gets ``n`` under the
``ci`` profile and proportionally fewer under ``dev`` (the default) and ``fast``
(tests/conftest.py), so the quick local run stays quick and CI checks as much as
before. Read when the test module is imported, after conftest loaded the profile.
"""

from __future__ import annotations

from hypothesis import settings

CI_EXAMPLES = 200
"""``max_examples`` of the ``ci`` profile (tests/conftest.py)."""


def examples(on_ci: int) -> int:
    """``on_ci`` scaled by the loaded profile's ``max_examples`` against CI's (at least 10)."""
    return max(10, on_ci * settings.default.max_examples // CI_EXAMPLES)

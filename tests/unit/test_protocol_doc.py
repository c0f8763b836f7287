"""docs/protocol.md is what code comments cite: every ``docs/protocol.md §N`` must exist.

References to the old, private contract file are refused everywhere except in the
files listed in ``LEAD_FILES_NOT_YET_CONVERTED`` (being rewritten at the time; empty
it once they cite this document).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"

LEAD_FILES_NOT_YET_CONVERTED: frozenset[str] = frozenset()

SCANNED = {".py", ".md", ".js", ".mjs", ".yml", ".yaml", ".json", ".toml"}
SKIPPED_DIRS = {"node_modules", "__pycache__", "results"}

HEADING = re.compile(r"^(#{2,4}) (\d+(?:\.\d+)*)\.? (.+)$", re.M)
REFERENCE = re.compile(r"docs/protocol\.md((?:(?:,| and)? ?§\d+(?:\.\d+)*)+)")
SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
OLD_REFERENCE = re.compile(r"CONTRACT(?:\.md)?(?: §| section \d)")
ANCHOR_LINK = re.compile(r"\]\((?:docs/protocol\.md)?#([^)]+)\)")


def sections() -> dict[str, str]:
    """Section number -> GitHub's anchor of its heading."""
    out: dict[str, str] = {}
    for _, number, title in HEADING.findall(DOC.read_text()):
        assert number not in out, f"section {number} appears twice"
        out[number] = slug(f"{number} {title}")
    return out


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def repo_files() -> Iterator[Path]:
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        for name in files:
            if Path(name).suffix in SCANNED:
                yield Path(top) / name


def references(text: str) -> list[str]:
    text = text.replace("\\u00a7", "§")  # JSON files escape the sign
    return [n for group in REFERENCE.findall(text) for n in SECTION.findall(group)]


def test_the_document_has_numbered_sections() -> None:
    numbers = sections()
    for top in map(str, range(1, 11)):
        assert top in numbers, f"docs/protocol.md has no section {top}"


def test_every_reference_names_an_existing_section() -> None:
    known = sections()
    broken = [
        f"{path.relative_to(ROOT)}: §{n}"
        for path in repo_files()
        for n in references(path.read_text(errors="replace"))
        if n not in known
    ]
    assert not broken, f"references to sections docs/protocol.md does not have: {broken}"


def test_no_reference_to_the_private_contract_remains() -> None:
    left = [
        str(path.relative_to(ROOT))
        for path in repo_files()
        if str(path.relative_to(ROOT)) not in LEAD_FILES_NOT_YET_CONVERTED
        and OLD_REFERENCE.search(path.read_text(errors="replace"))
    ]
    assert not left, f"cite docs/protocol.md §N instead of the contract file in: {left}"


def test_anchor_links_to_the_document_resolve() -> None:
    anchors = set(sections().values())
    for path in (DOC, ROOT / "README.md"):
        text = path.read_text()
        links = ANCHOR_LINK.findall(text) if path == DOC else _doc_links(text)
        missing = [a for a in links if a not in anchors]
        assert not missing, f"{path.name}: links to missing anchors {missing}"


def _doc_links(text: str) -> list[str]:
    return re.findall(r"\]\(docs/protocol\.md#([^)]+)\)", text)


def test_the_reference_pattern_reads_lists_and_rejects_strangers() -> None:
    assert references("see docs/protocol.md §4.4 and §5, then docs/protocol.md §2.") == [
        "4.4",
        "5",
        "2",
    ]
    assert references("docs/protocol.md \\u00a77") == ["7"]
    assert "99" not in sections()
    old = "CONTRACT" + ".md section 2"  # split, or this file would hold one
    assert OLD_REFERENCE.search(old) is not None

"""The project's documentation stands alone: nothing points outside the repository.

Readers get the repository and nothing else, so a doc or a module docstring that sends them to a
file outside it (notes the project was built from, a sibling checkout, an absolute path) is a
dead end. Relative links between the repository's own files are fine as long as they resolve
inside it, to a file that exists.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", "node_modules", "artifacts", "dist", "build"}

# Names of material that is not part of the repository.
OUTSIDE = re.compile(r"shared/|(?<![\w-])reference/|design\.md|style-anchors|/work/", re.IGNORECASE)
# A relative path that climbs: `../x`, `](../x)`, `"../x"`.
CLIMBING = re.compile(r"(?:\.\./)+[^\s)\]`'\"<>]*")


def _markdown_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not SKIP_DIRS & set(path.relative_to(ROOT).parts) and "egg-info" not in str(path)
    )


def _module_docstrings() -> list[tuple[Path, str]]:
    docstrings = []
    for directory in ("backend", "benchmarks", "scripts"):
        for path in sorted((ROOT / directory).rglob("*.py")):
            text = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            if text:
                docstrings.append((path, text))
    return docstrings


def _outside_references(text: str) -> list[str]:
    return [match.group(0) for match in OUTSIDE.finditer(text)]


def _bad_relative_links(doc: Path, text: str) -> list[str]:
    """`../` paths in `doc` that leave the repository or name no file."""
    bad = []
    for match in CLIMBING.finditer(text):
        target = (doc.parent / match.group(0).split("#")[0]).resolve()
        if not target.is_relative_to(ROOT) or not target.exists():
            bad.append(match.group(0))
    return bad


DOCS = _markdown_files()


def test_the_docs_are_found() -> None:
    names = {str(path.relative_to(ROOT)) for path in DOCS}
    assert {
        "README.md",
        "docs/architecture.md",
        "docs/configuration.md",
        "zendesk_app/README.md",
        "tidio_widget/README.md",
        "benchmarks/README.md",
    } <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_docs_reference_nothing_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert _outside_references(text) == []
    assert _bad_relative_links(doc, text) == []


def test_module_docstrings_reference_nothing_outside_the_repository() -> None:
    problems = {
        str(path.relative_to(ROOT)): found
        for path, text in _module_docstrings()
        if (found := _outside_references(text) + CLIMBING.findall(text))
    }
    assert problems == {}


@pytest.mark.parametrize(
    ("text", "outside", "bad_links"),
    [
        ("see `shared/reference/zendesk.md`", ["shared/", "reference/"], []),
        ("the brief (DESIGN.md, flow 7)", ["DESIGN.md"], []),
        ("[notes](../../shared/notes.md)", ["shared/"], ["../../shared/notes.md"]),
        ("[app](../zendesk_app/README.md)", [], []),
        ("[gone](../zendesk_app/MISSING.md)", [], ["../zendesk_app/MISSING.md"]),
        ("[out](../../elsewhere.md)", [], ["../../elsewhere.md"]),
        ("cached per `reference/` id", ["reference/"], []),
        ("see tests/specs/SOURCE.md", [], []),
    ],
)
def test_the_checks_catch_what_they_should(
    text: str, outside: list[str], bad_links: list[str]
) -> None:
    assert _outside_references(text) == outside
    assert _bad_relative_links(ROOT / "docs" / "x.md", text) == bad_links

"""The documentation holds together: every `§N.M` that code or docs cite is a section of docs/zstack-api.md,
every relative link in the Markdown pages reaches a file (and, for `page.md#anchor`, a heading), every page
the code names (`docs/page.md#anchor`) is in the repository, and every file of the repository a page names
(`tests/provider/test_secrets.py`, `tests/reliability/`) still exists."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_NOTES = ROOT / "docs" / "zstack-api.md"
CODE_DIRS = ("zstack_iso", "devkit", "tests", "bench", "tools")
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])

CITATION = re.compile(r"§(\d+(?:\.\d+)*)")
# `shared/pulumi-dynamic.md §1.4, §4.4`: sections of another document, named right before them.
OTHER_DOCUMENT = re.compile(r"([\w./-]+\.md)((?:\s*(?:,|and)?\s*§\d+(?:\.\d+)*)+)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SECTION_HEADING = re.compile(r"^#{1,6}\s+§(\d+(?:\.\d+)*)\s")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
# A Markdown page named in code: `docs/zstack-api.md`, `docs/engine-stand-in.md#what-the-engine-sends`.
PAGE_IN_CODE = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.md)(?:#([\w-]+))?(?![\w-])")
# A file or folder of the repository named in a page, in backticks: `tests/provider/test_secrets.py`.
REPO_PATH = re.compile(r"`((?:zstack_iso|devkit|tests|bench|tools|docs)/[\w./*-]*)`")
CODE_SPAN = re.compile(r"`+[^`]*`+")


def _text_files() -> list[Path]:
    files = [p for d in CODE_DIRS for p in (ROOT / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return files + [p for p in PAGES if p.exists()]


def _citations(text: str) -> set[str]:
    """Sections of docs/zstack-api.md cited in `text` (citations of another named document left out)."""
    cited: set[str] = set()
    for line in text.splitlines():
        foreign = [m.span(2) for m in OTHER_DOCUMENT.finditer(line) if not m.group(1).endswith("zstack-api.md")]
        for match in CITATION.finditer(line):
            if not any(start <= match.start() < end for start, end in foreign):
                cited.add(match.group(1))
    return cited


def _prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks, with inline code removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = HEADING.match(line)
        if fenced or not match:
            continue
        slug = _slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_zstack_api_notes_number_each_section_once():
    numbers = [m.group(1) for line in API_NOTES.read_text().splitlines() if (m := SECTION_HEADING.match(line))]
    assert len(numbers) == len(set(numbers)), f"a section number is used twice: {sorted(numbers)}"
    assert "5.2" in numbers


def test_every_cited_section_is_in_the_zstack_api_notes():
    sections = {m.group(1) for line in API_NOTES.read_text().splitlines() if (m := SECTION_HEADING.match(line))}
    missing = {}
    for path in _text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number in _citations(text) - sections:
            missing.setdefault(f"§{number}", []).append(str(path.relative_to(ROOT)))
    assert not missing, f"cited but not a section heading of docs/zstack-api.md: {missing}"


def test_every_page_the_code_names_is_in_the_repository():
    missing = []
    for path in _text_files():
        if path.suffix == ".md" or path == Path(__file__).resolve():  # this file names documents as examples
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for page, anchor in PAGE_IN_CODE.findall(text):
            dest = ROOT / page
            where = f"{path.relative_to(ROOT)}: {page}{'#' + anchor if anchor else ''}"
            if not dest.exists():
                missing.append(f"{where} (no such file in the repository)")
            elif anchor and anchor not in _anchors(dest):
                missing.append(f"{where} (no such heading)")
    assert not missing, "pages named in code:\n" + "\n".join(missing)


def test_every_file_a_page_names_exists():
    missing = []
    for page in PAGES:
        if not page.exists() or page.name == "CHANGELOG.md":  # history names files as they were
            continue
        for line in page.read_text().splitlines():
            for name in REPO_PATH.findall(line):
                if not any(ROOT.glob(name.rstrip("/"))):
                    missing.append(f"{page.relative_to(ROOT)}: {name}")
    assert not missing, "files named in the pages but not in the repository:\n" + "\n".join(missing)


def test_another_documents_sections_are_not_taken_for_ours():
    line = "(shared/pulumi-dynamic.md §1.4, §4.4) and the node's rule (§5.2); docs/zstack-api.md §6.2"
    assert _citations(line) == {"5.2", "6.2"}


def test_every_relative_link_reaches_a_file_and_heading():
    broken = []
    for page in PAGES:
        if not page.exists():
            continue
        for line in _prose_lines(page.read_text()):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                    continue  # https:, mailto:
                path_part, _, anchor = target.partition("#")
                dest = (page.parent / path_part).resolve() if path_part else page
                where = f"{page.relative_to(ROOT)}: {target}"
                if not dest.exists():
                    broken.append(f"{where} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_fits_the_size_budget():
    # The README is the front page (what it is, quick start, usage, limits); the rest belongs in docs/.
    assert len((ROOT / "README.md").read_bytes()) <= 12_000

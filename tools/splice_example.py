"""Put a captured example (a file under docs/examples/) into a Markdown page, between its markers.

    python tools/splice_example.py README.md docs/examples/drift-preview.txt

replaces whatever stands between `<!-- example: drift-preview.txt -->` and `<!-- /example -->` with the file
in a fenced block. `make docs-examples` captures the examples with the e2e tier, then calls this.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def splice(page: Path, example: Path) -> bool:
    """True when the page changed."""
    text = page.read_text()
    begin = f"<!-- example: {example.name} -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?<!-- /example -->", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{page}: no '{begin}' ... '<!-- /example -->' block")
    block = f"{begin}\n```console\n{example.read_text().rstrip()}\n```\n<!-- /example -->"
    updated = pattern.sub(lambda _match: block, text, count=1)
    page.write_text(updated)
    return updated != text


if __name__ == "__main__":
    page, example = Path(sys.argv[1]), Path(sys.argv[2])
    print(f"{page}: {'updated' if splice(page, example) else 'already current'} ({example.name})")

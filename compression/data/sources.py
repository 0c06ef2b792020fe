"""Where each corpus's documents come from: pinned Debian packages -> an ordered list of (name, text).

Every builder gets a scratch directory, downloads its pinned .deb files there (debian.py) and returns the
corpus's documents in a fixed order (book order, sorted paths, chapter order); corpora.py splits them.
  kjv      bible-kjv-text's compressed bible.data, decoded by bible-kjv's own `bible` program; 66 books
  pydoc    python3.11-doc's reStructuredText sources (_sources/**/*.rst.txt), one document per page
  pycode   libpython3.11-stdlib's .py modules (the interpreter's standard library), one per file
  melville r-cran-tokenizers' `mobydick` (Project Gutenberg's Moby Dick), one document per chapter
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.austen import read_lazyload_db_objects
from presso.compression.data.debian import DebianPin, fetch_deb

Documents = list[tuple[str, str]]  # (document name, UTF-8 text), in the corpus's fixed order

PY_VERSION = "3.11.2-6+deb12u8"  # Debian bookworm's point-release build (the mirrors keep it until the next)
PINS: dict[str, tuple[DebianPin, ...]] = {
    "kjv": (
        DebianPin("bible-kjv-text", "4.38", "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a",
                  "public domain (King James Version, 1611)"),
        DebianPin("bible-kjv", "4.38", "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d",
                  "GPL-2+ (the reader program, used to decode the text; not redistributed)"),
    ),
    "pydoc": (DebianPin("python3.11-doc", PY_VERSION,
                        "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b", "PSF-2.0"),),
    "pycode": (DebianPin("libpython3.11-stdlib", PY_VERSION,
                         "890b3540dad8a1ccc0deeca025db735bcc82629a76adacbe3b50fcc06ed528ca", "PSF-2.0"),),
    "melville": (DebianPin("r-cran-tokenizers", "0.3.0-1",
                           "6312f013ebfde5650235bfd7ba5c44d9e4cf9f2da9855337c9483fe778f0d8c7",
                           "public domain (Moby Dick, 1851; Project Gutenberg etext, header and licence removed)"),),
}

# bible's output: "Ge1:1 In the beginning ..." -> (book, chapter, verse text)
_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):\d+ (.*)$")


def kjv(work: Path) -> Documents:
    text_root = fetch_deb(PINS["kjv"][0], work, "kjv")
    reader_root = fetch_deb(PINS["kjv"][1], work, "kjv")
    data_dir = text_root / "usr" / "lib"
    result = subprocess.run([str(reader_root / "usr" / "bin" / "bible"), "-f", "-p", str(data_dir),
                             "gen1:1-rev22:21"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise PressoInputError(f"bible-kjv's reader failed: {(result.stderr.strip() or 'no output')[:200]}")
    books: dict[str, list[str]] = {}
    last: tuple[str, str] | None = None
    for line in result.stdout.splitlines():
        m = _VERSE.match(line)
        if m is None:
            continue
        book, chapter, verse = m.groups()
        lines = books.setdefault(book, [])
        if last is not None and last != (book, chapter) and lines:
            lines.append("")  # a blank line between chapters
        lines.append(verse)
        last = (book, chapter)
    if len(books) != 66:
        raise PressoInputError(f"bible-kjv decoded {len(books)} books, expected 66")
    return [(book, "\n".join(lines) + "\n") for book, lines in books.items()]


def pydoc(work: Path) -> Documents:
    root = fetch_deb(PINS["pydoc"][0], work, "pydoc") / "usr" / "share" / "doc" / "python3.11" / "html" / "_sources"
    # whatsnew/changelog is Misc/NEWS (issue numbers and one-line entries), not documentation prose.
    paths = sorted(p for p in root.rglob("*.rst.txt") if p.relative_to(root).as_posix() != "whatsnew/changelog.rst.txt")
    return [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")) for p in paths]


def pycode(work: Path) -> Documents:
    root = fetch_deb(PINS["pycode"][0], work, "pycode") / "usr" / "lib" / "python3.11"
    # pydoc_data/topics.py is the documentation's text in a dict (the pydoc domain's), not code; symlinks
    # point outside the package (_sysconfigdata).
    paths = sorted(p for p in root.rglob("*.py")
                   if not p.is_symlink() and p.relative_to(root).parts[0] != "pydoc_data")
    return [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")) for p in paths]


_HEADING = re.compile(r"^(CHAPTER \d+\..*|Epilogue|ETYMOLOGY\..*)$", re.MULTILINE)


def melville(work: Path) -> Documents:
    root = fetch_deb(PINS["melville"][0], work, "melville")
    db = next(root.rglob("tokenizers/data/Rdata.rdx"), None)
    if db is None:
        raise PressoInputError("r-cran-tokenizers holds no tokenizers/data/Rdata.rdx")
    raw = str(read_lazyload_db_objects(db.with_suffix(""))["mobydick"][0]).replace("\r\n", "\n")
    start, end = raw.find("*** START OF"), raw.find("*** END OF")
    if start < 0 or end < 0:
        raise PressoInputError("r-cran-tokenizers' mobydick lacks the Project Gutenberg START/END marks")
    body = raw[raw.index("\n", start) + 1 : end]
    body = body[: body.find("End of Project Gutenberg")] if "End of Project Gutenberg" in body else body
    heads = list(_HEADING.finditer(body))
    docs = []
    for i, head in enumerate(heads):
        stop = heads[i + 1].start() if i + 1 < len(heads) else len(body)
        name = "front-matter" if i == 0 else head.group(0).split(".")[0].lower().replace(" ", "-")
        docs.append((name, body[head.start() : stop].strip() + "\n"))
    if len(docs) != 137:  # front matter, 135 chapters, epilogue
        raise PressoInputError(f"Moby Dick split into {len(docs)} parts, expected 137")
    return docs

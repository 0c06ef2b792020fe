"""The corpora registry: each corpus's documents split once into a calibration part and a disjoint
evaluation part, stored as plain text under $PRESSO_HOME/data/corpora/NAME/.

`presso data pull NAME` -> builder (sources.py, or the Austen novels) -> ordered documents -> split by a
fixed rule on (index, name) -> calib.txt + eval.txt (documents joined by a blank line) + manifest.json
(pins, licenses, which documents went where), written via a temp dir + rename. Text specs `NAME:calib`
and `NAME:eval` (texts.py) read the parts; the calibration mix and the evaluation suite use them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from presso.compression.checkpoint.atomic import replacing_directory
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import austen, sources
from presso.compression.data.debian import DebianPin
from presso.kernels import envs

PARTS = ("calib", "eval")
SEPARATOR = "\n\n"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def every_fifth(index: int, name: str) -> bool:
    """The default rule: documents 4, 9, 14, ... (in corpus order) are evaluation, the rest calibration."""
    return index % 5 == 4


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str
    domain: str  # one line for docs and tables
    build: Callable[[Path], sources.Documents]  # scratch dir -> ordered documents
    pins: tuple[DebianPin, ...]
    is_eval: Callable[[int, str], bool] = every_fifth  # (index, document name) -> in the evaluation part
    in_mix: bool = True  # sampled by the default calibration mix (`--calib mix`); False: held out entirely


def _austen_documents(work: Path) -> sources.Documents:
    folder = austen.pull_austen()
    return [(novel, (folder / f"{novel}.txt").read_text(encoding="utf-8")) for novel in austen.NOVELS]


CORPORA: dict[str, Corpus] = {c.name: c for c in (
    # Pride and Prejudice is Austen's evaluation part (as in every earlier presso result); the other five calibrate.
    Corpus("austen", "English fiction, 1811-1817 (Jane Austen's six novels)", _austen_documents, (austen.PIN,),
           is_eval=lambda i, name: name == "pride-and-prejudice"),
    Corpus("kjv", "Early Modern English scripture (King James Bible, 66 books)", sources.kjv, sources.PINS["kjv"]),
    Corpus("pydoc", "technical prose + reST markup (Python 3.11 documentation)", sources.pydoc, sources.PINS["pydoc"]),
    Corpus("pycode", "source code (Python 3.11 standard library)", sources.pycode, sources.PINS["pycode"]),
    # Melville is held out of the mix: a domain no calibration (and no hyper-parameter choice) ever sees.
    Corpus("melville", "English fiction, 1851 (Moby Dick), never calibrated on", sources.melville,
           sources.PINS["melville"], in_mix=False),
)}


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise PressoInputError(f"unknown corpus {name!r} (known: {', '.join(CORPORA)})")
    return CORPORA[name]


def corpus_dir(name: str) -> Path:
    return envs.presso_home() / "data" / "corpora" / get_corpus(name).name


def split_documents(corpus: Corpus, docs: sources.Documents) -> dict[str, sources.Documents]:
    """-> {"calib": [...], "eval": [...]}: every document in exactly one part, corpus order kept."""
    parts: dict[str, sources.Documents] = {"calib": [], "eval": []}
    for i, (name, text) in enumerate(docs):
        parts["eval" if corpus.is_eval(i, name) else "calib"].append((name, text))
    assert parts["calib"] and parts["eval"], f"{corpus.name}: a split part is empty"
    return parts


def is_pulled(name: str) -> bool:
    folder = corpus_dir(name)
    return all((folder / f).is_file() for f in (MANIFEST, "calib.txt", "eval.txt"))


def pull_corpus(name: str) -> Path:
    """Download, split and store one corpus once; return its directory."""
    corpus = get_corpus(name)
    out = corpus_dir(name)
    if is_pulled(name):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"presso-{name}-") as work:
        parts = split_documents(corpus, corpus.build(Path(work)))
    with replacing_directory(out) as staged:
        for part, docs in parts.items():
            (staged / f"{part}.txt").write_text(SEPARATOR.join(text.strip("\n") for _, text in docs) + "\n",
                                                encoding="utf-8")
        manifest = {
            "format_version": FORMAT_VERSION, "corpus": name, "domain": corpus.domain, "in_mix": corpus.in_mix,
            "sources": [{"debian_package": p.package, "version": p.version, "sha256": p.sha256,
                         "license": p.license} for p in corpus.pins],
            "parts": {part: {"documents": [n for n, _ in docs], "chars": sum(len(t) for _, t in docs)}
                      for part, docs in parts.items()},
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


def read_manifest(name: str) -> dict:
    path = pull_corpus(name) / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format_version") != FORMAT_VERSION:
        raise PressoInputError(f"{path}: unknown format_version {data.get('format_version')!r} "
                               f"(this presso reads {FORMAT_VERSION}); remove the folder and pull again")
    return data


def part_text(name: str, part: str) -> str:
    """One part's text (pulled on first use)."""
    if part not in PARTS:
        raise PressoInputError(f"corpus part must be one of {', '.join(PARTS)}, got {part!r}")
    return (pull_corpus(name) / f"{part}.txt").read_text(encoding="utf-8")


def mix_corpora() -> list[str]:
    return [name for name, c in CORPORA.items() if c.in_mix]

"""`presso data pull austen`: Jane Austen's six novels from Debian's `r-cran-janeaustenr`.

apt-get download (.deb) -> dpkg-deb -x -> data/Rdata.rdx (gzip'd R index) + Rdata.rdb (per-object
4-byte length + zlib'd R serialisation) -> `rdata` parses each object (a character vector of lines)
-> one UTF-8 text file per novel under $PRESSO_HOME/data/austen/, written via temp dir + rename.
"""

from __future__ import annotations

import gzip
import tempfile
import warnings
import zlib
from pathlib import Path

from presso.compression.checkpoint.atomic import replacing_directory
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.debian import DebianPin, fetch_deb
from presso.kernels import envs

DEBIAN_PACKAGE = "r-cran-janeaustenr"
PIN = DebianPin(DEBIAN_PACKAGE, "1.0.0-1", "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
                "public domain (the novels); the R package is MIT")

# presso name -> object name inside the R lazy-load database
NOVELS: dict[str, str] = {
    "emma": "emma",
    "mansfield-park": "mansfieldpark",
    "northanger-abbey": "northangerabbey",
    "persuasion": "persuasion",
    "pride-and-prejudice": "prideprejudice",
    "sense-and-sensibility": "sensesensibility",
}


def austen_dir() -> Path:
    return envs.presso_home() / "data" / "austen"


def novel_path(name: str) -> Path:
    canonical = canonical_novel(name)
    return austen_dir() / f"{canonical}.txt"


def canonical_novel(name: str) -> str:
    """Accept the presso name (`pride-and-prejudice`) or the R object name (`prideprejudice`)."""
    key = name.strip().lower().replace("_", "-")
    if key in NOVELS:
        return key
    for canonical, r_name in NOVELS.items():
        if key == r_name:
            return canonical
    raise PressoInputError(f"unknown Austen novel {name!r} (known: {', '.join(NOVELS)})")


def pull_austen() -> Path:
    """Download and unpack the novels once; return the directory of .txt files."""
    out = austen_dir()
    if all((out / f"{n}.txt").is_file() for n in NOVELS):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="presso-austen-") as work:
        root = fetch_deb(PIN, Path(work), "austen")
        data = next(root.rglob("janeaustenr/data/Rdata.rdx"), None)
        if data is None:
            raise PressoInputError(f"{DEBIAN_PACKAGE} {PIN.version} holds no janeaustenr/data/Rdata.rdx")
        with replacing_directory(out) as staged:
            for canonical, lines in read_lazyload_db(data.with_suffix("")).items():
                (staged / f"{canonical}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def read_lazyload_db_objects(stem: Path) -> dict[str, list]:
    """Read an R lazy-load database (`stem.rdx` + `stem.rdb`) of character vectors -> R name -> list of str."""
    import rdata

    def parse(raw: bytes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata warns that a bare serialisation is "assumed RDS"
            return rdata.conversion.convert(rdata.parser.parse_data(raw, expand_altrep=True))

    index = parse(gzip.decompress(stem.with_suffix(".rdx").read_bytes()))
    blob = stem.with_suffix(".rdb").read_bytes()
    objects: dict[str, list] = {}
    for r_name, (offset, length) in index["variables"].items():
        offset, length = int(offset), int(length)
        # Each record: 4-byte big-endian uncompressed length, then a zlib stream.
        vector = parse(zlib.decompress(blob[offset + 4 : offset + length]))
        objects[str(r_name)] = ["" if x is None else str(x) for x in vector.tolist()]
    return objects


def read_lazyload_db(stem: Path) -> dict[str, list[str]]:
    """The janeaustenr database by presso novel name."""
    novels = {canonical_novel(name): lines for name, lines in read_lazyload_db_objects(stem).items()}
    missing = set(NOVELS) - set(novels)
    if missing:
        raise PressoInputError(f"{stem}.rdx lacks novels: {', '.join(sorted(missing))}")
    return novels

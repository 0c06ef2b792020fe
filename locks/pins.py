"""Read the lock files' exact pins; `--diff` prints how the running environment differs from them.

Used by tests/test_lock.py (the venv equals the lock, the lock satisfies pyproject.toml) and by
`make test-latest` (what the newest allowed versions change). Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

LOCKS = Path(__file__).resolve().parent
INSTALLED_BY_MAKE = ("torch-cpu.txt", "dev.txt", "embedded.txt")  # what `make venv` installs
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def normalize(name: str) -> str:
    """PEP 503 name normalization (`Typing_Extensions` -> `typing-extensions`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """{normalized name: version} of one lock file; every pin must carry at least one sha256 hash."""
    pins, current, hashed = {}, None, set()
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            current = normalize(match.group(1))
            pins[current] = match.group(2)
        elif current and "--hash=sha256:" in line:
            hashed.add(current)
    unhashed = sorted(set(pins) - hashed)
    if unhashed:
        raise ValueError(f"{path.name}: pins without a hash: {', '.join(unhashed)}")
    return pins


def make_pins() -> dict[str, str]:
    """Every pin `make venv` installs (torch's CPU wheel, dev closure, the embedded model's package)."""
    pins: dict[str, str] = {}
    for name in INSTALLED_BY_MAKE:
        pins.update(read_pins(LOCKS / name))
    return pins


def installed() -> dict[str, str]:
    """{normalized name: version} of the running interpreter's environment: its site-packages only, not all of
    sys.path (importing setuptools appends its `_vendor` folder, whose vendored dist-infos are not installed)."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {normalize(d.metadata["Name"]): d.version for d in metadata.distributions(path=paths) if d.metadata["Name"]}


def diff(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    """Lines `name: locked -> installed` for every pin the environment does not hold exactly."""
    return [f"{name}: {version} -> {have.get(name, 'missing')}"
            for name, version in sorted(pins.items()) if have.get(name) != version]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diff", action="store_true", help="print where this environment differs from the lock")
    args = parser.parse_args()
    changes = diff(make_pins(), installed())
    if args.diff:
        print(f"{len(changes)} package(s) differ from locks/ (locked -> installed):")
        print("\n".join(f"  {line}" for line in changes) or "  none")
    return 0


if __name__ == "__main__":
    sys.exit(main())

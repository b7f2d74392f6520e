"""Write the constraints the Docker image installs this provider with.

The official ``apache/airflow`` image already holds Airflow and the providers the compose stack needs
(Celery, FAB, Postgres, Redis, ...) at the versions Airflow's own constraint file for that release pins.
``constraints.txt`` is a freeze of our development environment, which has none of those providers; applied
as-is it would swap some of the image's distributions for other versions and break the ones it does not know
about (for example our ``python-dateutil==4.0.0`` against Celery's ``python-dateutil==2.9.0.post0``).

So the image is installed with ``constraints.txt`` adjusted to the image: every distribution already installed
keeps its version, and ``constraints.txt`` pins everything the provider adds (``scim2-models``, ...).
If the provider's own requirements cannot be met by what the image holds, ``pip`` fails the build with
the conflict instead of silently changing the image.

Usage (inside the image, with its Python)::

    python docker/image_constraints.py constraints.txt > /tmp/constraints-image.txt
    pip install --constraint /tmp/constraints-image.txt ".[emulator]"
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata

#: The distribution this repository builds; never pinned (the image may hold an older build of it).
OWN_DISTRIBUTION = "airflow-provider-entra"

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(?P<version>[^\s;#]+)\s*$")


def canonical_name(name: str) -> str:
    """Normalise a distribution name the way PEP 503 does (``Foo_Bar`` -> ``foo-bar``).

    :param name: a distribution name as written in a requirement or in package metadata.
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Read ``name==version`` lines (the ``pip freeze`` format of ``constraints.txt``).

    Blank lines and ``#`` comments are skipped.

    :param lines: the lines of a constraints file.
    :return: canonical name -> (name as written, version).
    :raises ValueError: for a line that is not an exact pin, naming the line number and its text.
    """
    pins: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"constraints line {number} is not a 'name==version' pin: {line!r}")
        pins[canonical_name(match["name"])] = (match["name"], match["version"])
    return pins


def merge_constraints(
    ours: Mapping[str, tuple[str, str]], installed: Mapping[str, tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """Pin every installed distribution at its installed version, and the rest at our version.

    :param ours: pins from ``constraints.txt`` (see :func:`parse_pins`).
    :param installed: canonical name -> (name, version) of the distributions in the image.
    :return: the constraint lines, sorted by name, and one note per pin of ours the image overrides.
    """
    merged: dict[str, tuple[str, str]] = {}
    notes: list[str] = []
    for key, (name, version) in installed.items():
        if key == OWN_DISTRIBUTION:
            continue
        merged[key] = (name, version)
        if key in ours and ours[key][1] != version:
            notes.append(f"{name}: keeping the image's {version} (constraints.txt pins {ours[key][1]})")
    for key, (name, version) in ours.items():
        if key != OWN_DISTRIBUTION:
            merged.setdefault(key, (name, version))
    lines = [f"{name}=={version}" for _key, (name, version) in sorted(merged.items())]
    return lines, sorted(notes)


def installed_distributions() -> dict[str, tuple[str, str]]:
    """The distributions importable by the running interpreter: canonical name -> (name, version)."""
    found: dict[str, tuple[str, str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical_name(name), (name, dist.version))
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the merged constraints on stdout and the overridden pins on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("constraints", help="path of constraints.txt")
    args = parser.parse_args(argv)
    with open(args.constraints, encoding="utf-8") as handle:
        ours = parse_pins(handle)
    lines, notes = merge_constraints(ours, installed_distributions())
    print(f"# {args.constraints} adjusted to the distributions already in this image")
    print("\n".join(lines))
    for note in notes:
        print(f"image_constraints: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

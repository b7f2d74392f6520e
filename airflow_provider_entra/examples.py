"""The example DAGs, with their mapping files and sample HR exports, as shipped inside the package.

The wheel carries them as ``airflow_provider_entra/example_dags/`` (built from the repository's ``dags/``).
Copy them into a DAGs folder, or print where they are to point a DAG bundle at them::

    python -m airflow_provider_entra.examples copy "$AIRFLOW_HOME/dags"   # the DAGs and data/
    python -m airflow_provider_entra.examples path                        # the installed folder

``copy`` never overwrites a file unless given ``--force``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["copy_example_dags", "example_dags_dir", "main"]

EXAMPLE_DAGS_PACKAGE = "airflow_provider_entra.example_dags"
_SKIPPED = {"__pycache__"}
# Makes the folder a package inside the wheel; a DAGs folder does not need it.
_PACKAGE_MARKER = Path("__init__.py")


def example_dags_dir() -> Path:
    """The folder holding the example DAG files and their ``data/`` (mappings, sample HR exports)."""
    spec = importlib.util.find_spec(EXAMPLE_DAGS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location)
        if (folder / "data").is_dir():
            return folder
    raise FileNotFoundError(f"{EXAMPLE_DAGS_PACKAGE} is not installed with its data/ folder")


def _files(source: Path) -> list[Path]:
    return sorted(
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file()
        and not _SKIPPED.intersection(path.relative_to(source).parts)
        and path.relative_to(source) != _PACKAGE_MARKER
    )


def copy_example_dags(destination: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the example DAGs and their ``data/`` folder into ``destination`` (created if missing).

    :param destination: a DAGs folder, e.g. ``$AIRFLOW_HOME/dags``.
    :param force: overwrite files that already exist; without it, an existing file raises
        :class:`FileExistsError` before anything is copied.
    :return: the copied files, as paths inside ``destination``.
    """
    source = example_dags_dir()
    target = Path(destination)
    relative = _files(source)
    clashes = [path for path in relative if (target / path).exists()]
    if clashes and not force:
        names = ", ".join(str(path) for path in clashes[:5])
        raise FileExistsError(f"{len(clashes)} file(s) already exist in {target} ({names}); use --force")
    copied = []
    for path in relative:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / path, target / path)
        copied.append(target / path)
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``path`` or ``copy DEST [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_entra.examples",
        description="The provider's example DAGs, mapping files and sample HR data.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("path", help="print the folder the example DAGs are installed in")
    copy = commands.add_parser("copy", help="copy the example DAGs and data/ into a DAGs folder")
    copy.add_argument("destination", help="e.g. $AIRFLOW_HOME/dags")
    copy.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(example_dags_dir())
        return 0
    try:
        copied = copy_example_dags(args.destination, force=args.force)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"copied {len(copied)} files into {Path(args.destination).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

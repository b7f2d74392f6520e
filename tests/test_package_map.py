"""docs/package-map.md matches the code: every module is on it; only the modules it names import Airflow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_entra"
MAP = (ROOT / "docs" / "package-map.md").read_text()
#: Folders the map points at as a whole (their own page describes them).
WHOLE = {"emulator", "mapping"}


def modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name in ("__init__.py", "__main__.py") or rel.split("/")[0] in WHOLE:
            continue
        found.append(rel)
    return found


def imports_airflow(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        if any(name == "airflow" or name.startswith("airflow.") for name in names):
            return True
    return False


def test_every_module_is_on_the_map():
    missing = []
    for rel in modules():
        if f"`{rel}`" not in MAP:
            missing.append(rel)
    assert not missing, f"modules missing from docs/package-map.md: {missing}"
    for folder in WHOLE:
        assert f"`{folder}/`" in MAP


def test_only_the_modules_the_map_names_import_airflow():
    sentence = MAP.split("These modules import Airflow:", 1)[1].split("Everything else", 1)[0]
    named = set(re.findall(r"`([\w/]+\.py)`", sentence))
    importing = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "emulator" and imports_airflow(path)
    }
    assert importing == named


def test_every_module_the_map_names_exists():
    named = set(re.findall(r"`([\w/]+\.py)`", MAP))
    assert named and not {rel for rel in named if not ((PACKAGE / rel).is_file() or (ROOT / rel).is_file())}

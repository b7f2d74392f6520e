"""The upload package needs no Airflow: every module imports in a process where ``airflow`` cannot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import airflow_provider_entra.upload as upload_package
from airflow_provider_entra.upload import encode, fingerprint


def test_no_module_of_the_package_imports_airflow():
    modules = sorted(
        p.stem for p in Path(upload_package.__file__).parent.glob("*.py") if p.stem != "__init__"
    )
    script = textwrap.dedent(
        f"""
        import importlib, sys

        class NoAirflow:
            def find_spec(self, name, path=None, target=None):
                if name == "airflow" or name.startswith("airflow."):
                    raise ImportError("the upload package must not import " + name)

        sys.meta_path.insert(0, NoAirflow())
        for module in {modules!r}:
            importlib.import_module("airflow_provider_entra.upload." + module)
        print(len({modules!r}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout) == len(modules) >= 10


def test_fingerprints_are_sha256_of_the_compact_bytes():
    body = encode({"schemas": ["s"], "Operations": [{"data": {"displayName": "Zoë"}}]})
    assert body == '{"schemas":["s"],"Operations":[{"data":{"displayName":"Zoë"}}]}'.encode()
    assert fingerprint(body) == fingerprint(bytes(body)) and len(fingerprint(body)) == 64
    assert fingerprint(body) != fingerprint(body + b" ")

"""`.ci/os-packages`, run by `make test` first: Chromium present, installed when it can be, or a clear stop.

Each case runs the real script with a PATH whose ``id`` and ``apt-get`` are small fakes, so the root and
non-root branches are exercised without touching the machine's packages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "os-packages"


def _fake_bin(tmp_path: Path, *, uid: int, apt_get: bool, chromium: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    if apt_get:
        # Records its arguments; "install" creates the binary the way the Debian package would.
        (bin_dir / "apt-get").write_text(
            f'#!/bin/sh\necho "$@" >> "{tmp_path}/apt-get.log"\n'
            f'case "$*" in *install*) printf "#!/bin/sh\\n" > "{chromium}"; chmod +x "{chromium}";; esac\n'
        )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def _run(tmp_path: Path, bin_dir: Path, chromium: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "ENTRA_BROWSER_TEST_CHROMIUM": str(chromium),
        "HOME": os.environ.get("HOME", str(tmp_path)),
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_present_chromium_needs_nothing(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    bin_dir = _fake_bin(tmp_path, uid=0, apt_get=True, chromium=chromium)
    result = _run(tmp_path, bin_dir, chromium)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "apt-get.log").exists()


def test_root_with_apt_get_installs_chromium(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    bin_dir = _fake_bin(tmp_path, uid=0, apt_get=True, chromium=chromium)
    result = _run(tmp_path, bin_dir, chromium)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt-get.log").read_text().splitlines()
    assert calls[0].split()[0] == "update"
    assert calls[1].split()[:2] == ["install", "-y"] and calls[1].split()[-1] == "chromium"
    assert os.access(chromium, os.X_OK)


def test_not_root_stops_with_the_command(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    bin_dir = _fake_bin(tmp_path, uid=1000, apt_get=True, chromium=chromium)
    result = _run(tmp_path, bin_dir, chromium)
    assert result.returncode == 1
    assert "sudo sh -c 'apt-get update && apt-get install -y chromium'" in result.stderr
    assert not (tmp_path / "apt-get.log").exists()


def test_without_apt_get_names_the_override(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    bin_dir = _fake_bin(tmp_path, uid=0, apt_get=False, chromium=chromium)
    # /usr/bin may hold a real apt-get: give the script a PATH of fakes plus only the tools it needs.
    for tool in ("bash", "sh", "printf", "cat"):
        real = Path("/bin") / tool if (Path("/bin") / tool).exists() else Path("/usr/bin") / tool
        (bin_dir / tool).symlink_to(real)
    env = {"PATH": str(bin_dir), "ENTRA_BROWSER_TEST_CHROMIUM": str(chromium)}
    result = subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "ENTRA_BROWSER_TEST_CHROMIUM=/path/to/chromium" in result.stderr

"""`.ci/os-packages distributed`, run by `make test-distributed` first: Redis and PostgreSQL present,
installed when it can be, or a clear stop. The real script with a PATH of fakes (no ``redis-server``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "os-packages"


def _run(tmp_path: Path, uid: int) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/apt-get.log"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    for tool in ("bash", "sh", "ls", "cat"):
        real = Path("/bin") / tool if (Path("/bin") / tool).exists() else Path("/usr/bin") / tool
        (bin_dir / tool).symlink_to(real)
    env = {"PATH": str(bin_dir), "ENTRA_OS_PACKAGES_DRY_RUN": "1"}
    args = [str(bin_dir / "bash"), str(SCRIPT), "distributed"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)


def test_root_installs_the_missing_redis_server(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=0)
    assert result.returncode == 0, result.stderr
    assert "dry run: apt-get update && apt-get install -y redis-server" in result.stdout
    assert not (tmp_path / "apt-get.log").exists()  # a dry run runs nothing


def test_not_root_stops_with_the_command(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=1000)
    assert result.returncode == 1
    assert "sudo sh -c 'apt-get update && apt-get install -y redis-server" in result.stderr


def test_an_unknown_mode_is_refused() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "gpu"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage" in result.stderr

"""Installing the reference servers from Debian's packages without starting them."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.framework import BenchError

POLICY_RC = Path("/usr/sbin/policy-rc.d")


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def ensure_installed(binary: str, packages: Sequence[str], *, debconf: str = "") -> None:
    """Install `packages` unless `binary` exists; no service of theirs starts meanwhile.

    A policy-rc.d that answers 101 ("action forbidden") keeps the packages' init scripts
    from starting system daemons (Postfix on port 25, Dovecot on 110/143); the previous
    policy-rc.d, if there was one, is put back afterwards.
    """
    if Path(binary).exists():
        return
    if os.geteuid() != 0:
        raise BenchError(f"{binary} is missing; run: sudo apt-get install {' '.join(packages)}")
    print(f"Installing Debian's {' '.join(packages)} (no service is started) ...", flush=True)
    if debconf and shutil.which("debconf-set-selections"):
        subprocess.run(["debconf-set-selections"], input=debconf, text=True, check=False)
    saved = POLICY_RC.read_bytes() if POLICY_RC.exists() else None
    saved_mode = POLICY_RC.stat().st_mode if saved is not None else 0
    POLICY_RC.write_text(
        "#!/bin/sh\n# Written by Postel's bench/ while installing packages: start nothing.\n"
        "exit 101\n"
    )
    POLICY_RC.chmod(0o755)
    try:
        command = ("install", "-y", "--no-install-recommends", *packages)
        done = _apt(*command)
        if done.returncode != 0:  # perhaps stale package lists
            _apt("update")
            done = _apt(*command)
        if done.returncode != 0:
            raise BenchError(
                f"apt-get install {' '.join(packages)} failed:\n{done.stdout}{done.stderr}"
            )
    finally:
        if saved is None:
            POLICY_RC.unlink(missing_ok=True)
        else:
            POLICY_RC.write_bytes(saved)
            POLICY_RC.chmod(stat.S_IMODE(saved_mode))
    if not Path(binary).exists():
        raise BenchError(f"installed {' '.join(packages)} but {binary} is still missing")

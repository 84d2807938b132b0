"""torchrun in tests that run in parallel workers: a free TCP port for the rendezvous, and two CPU processes
of ``medgan3d train``."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_train(args: Sequence[str], out: Path, env: Mapping[str, str]) -> Path:
    """``medgan3d train ARGS --out OUT`` as two processes under torchrun; the one run folder it wrote."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "medgan3d",
        "train",
        *args,
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, env=dict(env), capture_output=True, encoding="utf-8", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = out.iterdir()
    return run

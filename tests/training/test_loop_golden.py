"""Golden hashes: the StyleGAN2 family trains to the same bits after every refactor of the shared loop.

Recorded on the loop before it became family-generic: a seeded tiny-preset CPU run, batch 8 as 2
micro-batches of 4, 6 iterations (Gmain, Greg at 0 and 4, Dmain, Dreg at 0, EMA), one thread. Float results
depend on the CPU's vector ISA and on the thread count, so the run is pinned to one thread and the hashes
are keyed by torch's CPU capability; on an ISA with no recorded hashes the test says how to record them.

Re-recorded once since, when float rounding changed on purpose (each change bounded by its own test): the FIR
filter's first axis of a volume as a banded matmul (tests/networks/test_layers_fir.py) and Split&Shuffle-D's 1ⁿ branch as
its own convolution with bias and gain folded in (tests/networks/test_layers.py); the S&S generator's shuffle written
by its bias/activation pass is bit-identical to the separate copy (tests/networks/test_stylegan.py). Re-recorded again
when every FIR pass and adjoint became a forward depthwise convolution on a 2D view (oneDNN's backward-data
kernel for these filters measured 3–10x slower; tests/networks/test_layers_fir.py bounds the change against the
previous implementation) and D's 1ⁿ skip took the FIR downsampling instead of blur + stride 2 (equal samples,
tests/networks/test_layers.py). And once more when G's fused modulated conv went channels-last (oneDNN's
channels-last kernels sum in another order; bounded against a float64 per-sample reference) and D's 1ⁿ convs
became a matmul over the channels (equal to the conv to 1e-12 in float64), both in tests/networks/test_layers.py;
and when the S&S generator's shuffle got its own backward, which is autograd's bit for bit (values, gradients,
double gradients: tests/networks/test_layers.py) but hands the next conv backward a channels-last gradient
instead of a contiguous one (another summation order there).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = {
    "AVX512": {
        "G": "c0f17e31ada685899b3ba114f76c4a5c7bd486dee0ed6a7a4f49ffcf321345de",
        "G_ema": "cb2ea559cd3b08f5ac9281dea02997c45d6386596e0a840273e6cd09a82690cc",
        "D": "f89d79e8aaa769c7ba20812880c0f2610f7d14e906717285fcb5472f063a2b53",
    },
}

RUN = """
import sys
from pathlib import Path
from medgan3d.config import load_preset
from medgan3d.data import make_brain_phantoms
from medgan3d.training.loop import TrainConfig, train
root = Path(sys.argv[1])
make_brain_phantoms(12, root / "data", seed=0, shape=(16, 16, 16))
cfg = TrainConfig(batch=8, batch_gpu=4, kimg=0.048, tick_kimg=0.016, snapshot_ticks=100, grid=2, seed=3)
print(train(root / "data", load_preset("tiny").model, cfg, outdir=root / "runs", preset="tiny"))
"""


def weights_sha256(path: Path) -> str:
    """sha256 over (name, raw bytes) of every tensor of a safetensors file, in sorted name order."""
    from safetensors.torch import load_file

    state, digest = load_file(path), hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].numpy().tobytes())
    return digest.hexdigest()


def test_stylegan2_tiny_run_reproduces_the_golden_weights(tmp_path: Path) -> None:
    from medgan3d.training.checkpoint import list_checkpoints

    capability = torch.backends.cpu.get_cpu_capability()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path)],
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = list_checkpoints(Path(proc.stdout.strip().splitlines()[-1]))[-1]
    got = {name: weights_sha256(ckpt / name / "model.safetensors") for name in ("G", "G_ema", "D")}
    if capability not in GOLDEN:
        pytest.skip(
            f"no golden hashes for CPU capability {capability}; record these from a pre-refactor "
            f"checkout: {got}"
        )
    assert got == GOLDEN[capability]

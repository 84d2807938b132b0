"""The families of the four 3D GAN baselines (3D-WGAN-GP, 3D-VAE-GAN, 3D-α-GAN, 3D-α-WGAN-GP) on the shared loop:
the objectives against closed forms or against a separate restatement of the reference's loss, the phase
schedules, tiny runs that resume bit-identically, the CLI and torchrun. Their networks: tests/networks/test_baselines.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from medgan3d.config import load_preset
from medgan3d.data import VolumeDataset
from medgan3d.generate import sample_to_nifti
from medgan3d.training import loop
from medgan3d.training.checkpoint import list_checkpoints, load_generator
from medgan3d.training.families import baselines as fb
from medgan3d.training.family import MicroBatch, family_for
from medgan3d.training.loop import TrainConfig, train
from tests.ports import torchrun_train

FAMILIES = ("wgan-gp", "vae-gan", "alpha-gan", "alpha-wgan-gp")
NETWORKS = {
    "wgan-gp": ("G", "D"),
    "vae-gan": ("G", "D", "E"),
    "alpha-gan": ("G", "D", "E", "CD"),
    "alpha-wgan-gp": ("G", "D", "E", "CD"),
}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MEDGAN3D_ALLOCATOR="system")

PAPER_PRESETS = sorted(f"{f}-{d}" for f in FAMILIES for d in ("adni", "coca"))


# ------------------------------------------------------------------------------- objectives, by hand


class Linear(nn.Module):
    """D(x) = <w, x> + b on a flattened volume: ∇_x D = w for every x."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1, keepdim=True) + self.b


def test_gradient_penalty_of_a_linear_critic_has_its_closed_form() -> None:
    torch.manual_seed(0)
    shape = (2, 3, 4, 5)  # channels × voxels
    critic = Linear(shape)
    real, fake = (torch.randn(6, *shape, dtype=torch.float64) for _ in range(2))
    w = critic.w.detach()
    norm = w.square().sum().sqrt()
    gp = fb.gradient_penalty(critic, real, fake, 10.0)
    torch.testing.assert_close(gp, 10 * (norm - 1) ** 2)  # per-sample norm = ‖w‖ for every sample
    (grad,) = torch.autograd.grad(gp, critic.w)
    torch.testing.assert_close(grad, 20 * (norm - 1) * w / norm)
    voxel = fb.gradient_penalty(critic, real, fake, 10.0, per_sample=False)  # the reference's Q1 norm
    torch.testing.assert_close(voxel, 10 * ((w.square().sum(0).sqrt() - 1) ** 2).mean())
    eps = fb.gradient_penalty(critic, real, fake, 10.0, eps=1e-3)
    torch.testing.assert_close(eps, 10 * (torch.sqrt(norm**2 + w.numel() * 1e-3) - 1) ** 2)  # ε per entry


def test_bce_forms_agree_and_kl_matches_torch_distributions() -> None:
    logits = torch.tensor([[-3.0], [0.5], [2.0]], dtype=torch.float64)
    p = torch.sigmoid(logits)
    for y, hand in ((1.0, -torch.log(p).mean()), (0.0, -torch.log(1 - p).mean())):
        torch.testing.assert_close(fb.bce(logits, y), hand)
        torch.testing.assert_close(fb.bce(logits, y, stable=False), hand)
    mu, logvar = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(mu, (0.5 * logvar).exp()), normal(0.0, 1.0)).mean()
    torch.testing.assert_close(fb.kl_divergence(mu, logvar), expected)


def test_surrogate_gives_each_module_its_own_gradient() -> None:
    a, b = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        a.weight.fill_(3.0)
        b.weight.fill_(-2.0)
    wa, wb = a.weight.sum(), b.weight.sum()
    fb.surrogate({"a": ((wa * wb) ** 2, a), "b": (wa * wb, b)}).backward()
    assert a.weight.grad.item() == pytest.approx(2 * 3.0 * (-2.0) ** 2)  # ∂(wa·wb)²/∂wa only
    assert b.weight.grad.item() == pytest.approx(3.0)  # ∂(wa·wb)/∂wb only


def _mb(x: torch.Tensor, step: int = 0) -> MicroBatch:
    return MicroBatch(x.shape[0], 1, torch.device("cpu"), contextlib.nullcontext(), lambda: x, step, None)


def _setup(preset: str, seed: int = 0, **loss: object):  # type: ignore[no-untyped-def]
    model = load_preset(preset).model
    family = family_for(model)
    cfg = loop.resolve_loss(TrainConfig(batch=4, batch_gpu=4, seed=seed, loss=dict(loss)), family)
    return family, family.build(model, cfg, torch.device("cpu"), False, None), cfg


def _reals(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_vae_gan_step_matches_the_reference_losses_restated() -> None:
    """G's gradient is ∇_G of γ·MSE − (BCE(D(x),1) + BCE(D(x_rec),0) + BCE(D(x_rand),0)), E's is ∇_E of
    KL + β·MSE, both at the same weights (``VAEGAN_ADNI_train.ipynb`` on PyTorch 0.4), with ``nn.BCELoss``."""
    family, nets, cfg = _setup("vae-gan-tiny", shared_noise=False)
    G, D, E = (nets.modules[k] for k in ("G", "D", "E"))
    D.requires_grad_(False)
    x = _reals()
    torch.manual_seed(5)
    phase = family.phase("GE", ("G", "E"))
    family.before_phase(phase, nets)
    family.loss(phase, nets, _mb(x), None, cfg).loss.backward()
    got = [p.grad.clone() for p in [*G.parameters(), *E.parameters()]]

    torch.manual_seed(5)
    z_p, eps = torch.randn(4, 16), torch.randn(4, 16)
    mu, logvar, z_e = E(x, eps)
    x_rec, x_rand = G(z_e), G(z_p)
    bce, ones, zeros = nn.BCELoss(), torch.ones(4, 1), torch.zeros(4, 1)
    rec = ((x_rec - x) ** 2).mean()
    d_loss = (
        bce(torch.sigmoid(D(x)), ones)
        + bce(torch.sigmoid(D(x_rec)), zeros)
        + bce(torch.sigmoid(D(x_rand)), zeros)
    )
    kl = (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())) / mu.numel()
    want = [
        *torch.autograd.grad(20 * rec - d_loss, list(G.parameters()), retain_graph=True),
        *torch.autograd.grad(kl + 10 * rec, list(E.parameters())),
    ]
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_alpha_wgan_code_critic_sees_encoded_codes() -> None:
    """Q8: with the fix CD's gradient gains exactly ∇_CD mean CD(E(x)); the reference's objective lacks it."""
    family, nets, _ = _setup("alpha-wgan-gp-tiny")
    CD, E = nets.modules["CD"], nets.modules["E"]
    E.requires_grad_(False)
    x = _reals()
    phase = family.phase("CD", ("CD",))

    def grads(**loss: object) -> list[torch.Tensor]:
        cfg = loop.resolve_loss(TrainConfig(batch=4, batch_gpu=4, loss=dict(loss)), family)
        CD.zero_grad(set_to_none=True)
        torch.manual_seed(9)
        family.loss(phase, nets, _mb(x), None, cfg).loss.backward()
        return [p.grad.clone() for p in CD.parameters()]

    fixed, reference = grads(), grads(cd_sees_encoded=False)
    with torch.no_grad():
        z_e = E(x)
    extra = torch.autograd.grad(CD(z_e).mean(), list(CD.parameters()))
    for f, r, e in zip(fixed, reference, extra, strict=True):
        torch.testing.assert_close(f - r, e, rtol=1e-4, atol=1e-6)
    assert max(e.abs().max().item() for e in extra) > 1e-4
    assert all(p.grad is None for p in E.parameters())


# --------------------------------------------------------------------------------- schedule and steps


def _names(family, cfg, steps: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[p.name for p in family.phases(s, cfg)] for s in range(steps)]


def test_phase_schedules() -> None:
    wgan, _, cfg = _setup("wgan-gp-tiny")
    assert _names(wgan, cfg, 5) == [["D"]] * 4 + [["D", "G"]]  # Gulrajani et al.: 5 critic steps per G step
    _, _, ref = _setup("wgan-gp-tiny", n_critic=1, g_steps=5)
    assert _names(wgan, ref, 2) == [["D", "G", "G_2", "G_3", "G_4", "G_5"]] * 2  # the reference's 1:5
    with pytest.raises(ValueError, match="g_steps"):
        fb.WGANGPLoss(g_steps=7)
    alpha, _, same = _setup("alpha-gan-tiny")
    assert _names(alpha, same, 2) == [["EG", "D", "CD"]] * 2
    alpha_wgan, _, nxt = _setup("alpha-wgan-gp-tiny")
    assert _names(alpha_wgan, nxt, 4) == [["EG"], ["D", "CD"]] * 2
    vae, _, vcfg = _setup("vae-gan-tiny")
    assert _names(vae, vcfg, 1) == [["D", "GE"]]


STEP_CASES = [
    ("wgan-gp-tiny", {}, {"G": 2, "D": 10}),
    ("wgan-gp-tiny", {"n_critic": 1, "g_steps": 5}, {"G": 50, "D": 10}),
    ("vae-gan-tiny", {}, {"G": 10, "D": 10, "E": 10}),
    ("alpha-gan-tiny", {}, {"G": 10, "D": 10, "E": 10, "CD": 10}),
    ("alpha-gan-tiny", {"g_double_step": True}, {"G": 20, "D": 10, "E": 10, "CD": 10}),
    ("alpha-wgan-gp-tiny", {}, {"G": 5, "D": 5, "E": 5, "CD": 5}),
]


@pytest.mark.parametrize("preset, loss, expected", STEP_CASES)
def test_one_optimizer_step_per_phase(
    brain16: Path, monkeypatch: pytest.MonkeyPatch, preset: str, loss: dict, expected: dict
) -> None:
    """10 iterations through the loop's own train_step, counting every optimizer.step; each phase changes
    the parameters of the networks it trains and of no other."""
    family, nets, cfg = _setup(preset, **loss)
    calls = dict.fromkeys(nets.optimizers, 0)
    for name, opt in nets.optimizers.items():

        def counted(*a, _step=opt.step, _name=name, **k):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _step(*a, **k)

        opt.step = counted  # type: ignore[method-assign]
    d = loop.Dist()
    reals = loop.RealBatches(VolumeDataset(brain16, split="train"), cfg, d, 1)
    state = loop.TrainState()
    original = loop.run_phase

    def checked(family, phase, nets, *args, **kw):  # type: ignore[no-untyped-def]
        before = {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.modules.items()}
        out = original(family, phase, nets, *args, **kw)
        for k, m in nets.modules.items():
            moved = any(not torch.equal(a, p) for a, p in zip(before[k], m.parameters(), strict=True))
            assert moved == (k in phase.trains), (phase.name, k)
        return out

    monkeypatch.setattr(loop, "run_phase", checked)
    for _ in range(10):
        loop.train_step(family, nets, reals, state, cfg, d, 1)
    assert calls == expected


# ------------------------------------------------------------------------ a tiny run of each family


def run_cfg(**kw: object) -> TrainConfig:
    base = dict(batch=8, batch_gpu=4, kimg=0.08, tick_kimg=0.04, snapshot_ticks=100, grid=2, seed=3)
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def _last(run: Path) -> Path:
    return list_checkpoints(run)[-1]


def _tensors(run: Path, family: str) -> dict[str, torch.Tensor]:
    ckpt = _last(run)
    assert sorted(p.name for p in ckpt.iterdir() if p.is_dir()) == sorted(NETWORKS[family])
    out = {
        f"{n}.{k}": v for n in NETWORKS[family] for k, v in load_file(ckpt / n / "model.safetensors").items()
    }
    return out | load_file(ckpt / "training_state.safetensors")


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_run_trains_resumes_bit_identically_and_generates(
    brain16: Path, tmp_path: Path, family: str
) -> None:
    """10 iterations straight == 5 + resume to 10 (weights, BN statistics, optimizer moments, RNG); then
    generate writes NIfTI volumes from G and evaluate scores them."""
    model = load_preset(f"{family}-tiny").model
    full = train(brain16, model, run_cfg(), outdir=tmp_path / "a", preset=f"{family}-tiny")
    half = train(brain16, model, run_cfg(kimg=0.04), outdir=tmp_path / "b", preset=f"{family}-tiny")
    resumed = train(brain16, model, run_cfg(), resume=half)
    a, b = _tensors(full, family), _tensors(resumed, family)
    assert a.keys() == b.keys()
    assert any(k.endswith("running_var") for k in a)  # BN statistics are in the checkpoint
    for key in a:
        assert torch.equal(a[key], b[key]), key
    _, init, _ = _setup(f"{family}-tiny", seed=3)
    for name in NETWORKS[family]:  # non-vacuous: every network trained
        start = init.modules[name].state_dict()
        assert (
            max((a[f"{name}.{k}"] - v).abs().max().item() for k, v in start.items() if v.is_floating_point())
            > 1e-5
        )
    state = json.loads((_last(resumed) / "training_state.json").read_text(encoding="utf-8"))["state"]
    assert (state["cur_nimg"], state["batch_idx"]) == (80, 10)

    files = sample_to_nifti(full, [0, 1], tmp_path / "gen")
    vols = [np.asarray(nib.load(f).dataobj) for f in files]
    assert [v.shape for v in vols] == [(16, 16, 16)] * 2 and all(np.isfinite(v).all() for v in vols)
    assert not np.allclose(vols[0], vols[1])
    assert (tmp_path / "gen" / "preview.png").stat().st_size > 0

    from medgan3d.metrics import evaluate_generator

    scores = evaluate_generator(
        load_generator(full),
        brain16,
        num_samples=4,
        metrics=("fid", "psnr"),
        extractor_2d="random-2d",
        bootstrap=0,
        cache=tmp_path / "cache",
    )
    assert np.isfinite(scores["fid_avg"]) and np.isfinite(scores["psnr"])


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_presets_train_sections_resolve(name: str) -> None:
    preset = load_preset(name)
    family = family_for(preset.model)
    cfg = preset.train
    assert isinstance(cfg.loss, family.loss_cls) and (cfg.batch, cfg.batch_gpu) == (4, 4)
    with pytest.raises(ValueError, match=r"unknown .* loss key 'lambda'"):
        loop.train_config_from_dict({"loss": {"lambda": 1}}, name, family)


# ---------------------------------------------------------------------------------------- slow


def _cli(*args: str, timeout: int = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "medgan3d", *args],
        env=ENV,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
    )
    assert done.returncode == 0, f"medgan3d {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_cli_train_generate_evaluate(tmp_path: Path) -> None:
    data, runs = tmp_path / "DATA", tmp_path / "RUNS"
    _cli("prepare", "brain-phantom", "-n", "8", "--shape", "16", "-o", str(data))
    _cli(
        "train",
        "--data",
        str(data),
        "--config",
        "alpha-wgan-gp-tiny",
        "--kimg",
        "0.016",
        "--tick",
        "0.008",
        "--out",
        str(runs),
    )
    (run,) = runs.iterdir()
    _cli("generate", str(run), "-n", "2", "-o", str(tmp_path / "S"))
    assert {p.name for p in (tmp_path / "S").iterdir()} >= {"seed0000.nii.gz", "seed0001.nii.gz"}
    _cli(
        "evaluate",
        str(run),
        "--data",
        str(data),
        "-n",
        "4",
        "-o",
        str(tmp_path / "E"),
        "--bootstrap",
        "0",
        "--metrics",
        "fid,psnr",
        "--extractor-2d",
        "random-2d",
    )
    scores = json.loads((tmp_path / "E" / "metrics.json").read_text(encoding="utf-8"))
    assert np.isfinite(scores["fid_avg"]) and np.isfinite(scores["psnr"])


@pytest.mark.slow
@pytest.mark.xdist_group("torchrun")  # two processes each: never beside another torchrun test
def test_two_processes_match_micro_batches(brain16: Path, tmp_path: Path) -> None:
    """VAE-GAN (shared noise per global micro-batch, BN per micro-batch): 2 processes × 1 micro-batch of 4 ==
    1 process × 2 micro-batches of 4 in every parameter. BN running statistics are averaged over ranks after
    each iteration, which is not the sequential update of one process: buffers are close, not equal."""
    common = [
        "--data",
        str(brain16),
        "--config",
        "vae-gan-tiny",
        "--kimg",
        "0.04",
        "--batch",
        "8",
        "--batch-gpu",
        "4",
        "--seed",
        "3",
        "--tick",
        "1",
        "--device",
        "cpu",
    ]
    ddp_run = torchrun_train(common, tmp_path / "ddp", ENV)
    one = train(
        brain16, load_preset("vae-gan-tiny").model, run_cfg(kimg=0.04, grid=1), outdir=tmp_path / "one"
    )
    a, b = _tensors(ddp_run, "vae-gan"), _tensors(one, "vae-gan")
    params = [
        k
        for k in a
        if k[:2] in ("G.", "D.", "E.")
        and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    assert params
    for key in params:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)

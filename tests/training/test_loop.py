"""Training loop: objective pieces against known answers, exact resume, DDP equivalence, skipping, generate."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from medgan3d.config import load_preset
from medgan3d.data import Manifest, denormalize
from medgan3d.training import loop, losses
from medgan3d.training.checkpoint import list_checkpoints, load_generator
from medgan3d.training.families import stylegan2
from medgan3d.training.loop import TrainConfig, TrainingError, train
from medgan3d.training.losses import LossConfig, d_r1, map_with_mixing
from tests.ports import torchrun_train

NO_AUTOCAST = contextlib.nullcontext()


def tiny_cfg(**kw: object) -> TrainConfig:
    base = dict(batch=8, batch_gpu=4, kimg=0.096, tick_kimg=0.032, snapshot_ticks=100, grid=2, seed=3)
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- pieces


class LinearD(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1, keepdim=True)


def test_r1_known_answer_over_all_axes() -> None:
    """For D(x) = <w, x> the R1 gradient is w everywhere: penalty = |w|² over C and every spatial axis."""
    D = LinearD((1, 4, 5, 6))
    real = torch.randn(3, 1, 4, 5, 6)
    cfg = LossConfig(r1_gamma=0.5, r1_interval=16)
    loss, stats = d_r1(D, real, cfg, NO_AUTOCAST, rounds=2)  # type: ignore[arg-type]
    expected = 0.5 / 2 * D.w.detach().square().sum() * 16 / 2
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(torch.as_tensor(stats["loss/r1_penalty"]), D.w.detach().square().sum())


def test_lazy_regularisation_optimizer_correction() -> None:
    opt = stylegan2.make_optimizer(nn.Linear(2, 2), lr=0.0025, betas=(0.0, 0.99), eps=1e-8, interval=16)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert group["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))


def test_ema_beta_with_rampup() -> None:
    cfg = TrainConfig(batch=32, ema_kimg=10.0, ema_rampup=0.05)
    assert stylegan2.ema_beta(cfg, 1_000_000) == pytest.approx(0.5 ** (32 / 10_000))
    assert stylegan2.ema_beta(cfg, 10_000) == pytest.approx(0.5 ** (32 / 500))  # ramp-up: 5% of images seen


def test_stylegan2_default_lr_from_scratch_and_from_inflated_weights() -> None:
    family, model = stylegan2.StyleGAN2(), load_preset("tiny").model
    cfg = loop.resolve_loss(TrainConfig(batch=64), family)
    for from_inflated, lr in ((False, 0.0025), (True, 0.002)):
        nets = family.build(model, cfg, torch.device("cpu"), from_inflated, None)
        assert nets.optimizers["G"].param_groups[0]["lr"] == pytest.approx(lr * 4 / 5)  # PL every 4
        assert nets.optimizers["D"].param_groups[0]["lr"] == pytest.approx(lr * 16 / 17)  # R1 every 16


def test_sampler_visits_every_item_once_per_epoch() -> None:
    idx = loop.sample_indices(0, 30, 10, seed=1)
    for epoch in range(3):
        assert sorted(idx[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert idx[:10] != idx[10:20]
    assert loop.sample_indices(13, 5, 10, seed=1) == idx[13:18]  # a pure function of the position


def test_style_mixing_replaces_ws_after_one_cutoff() -> None:
    torch.manual_seed(0)
    G = load_preset("tiny").model.build_generator()
    z = torch.randn(2, G.z_dim)
    plain = G.mapping(z)
    torch.manual_seed(5)
    mixed = map_with_mixing(G, z, prob=1.0)
    same = [torch.allclose(plain[:, i], mixed[:, i]) for i in range(G.num_ws)]
    cutoff = same.index(False)
    assert cutoff >= 1 and not any(same[cutoff:])


# ---------------------------------------------------------------------------------------------- the loop


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = list_checkpoints(run)[-1]
    return {
        f"{n}.{k}": v
        for n in ("G", "G_ema", "D")
        for k, v in load_file(ckpt / n / "model.safetensors").items()
    }


def test_resume_is_bit_identical(brain16: Path, tmp_path: Path) -> None:
    model = load_preset("tiny").model
    full = train(brain16, model, tiny_cfg(), outdir=tmp_path / "a", preset="tiny")
    half = train(brain16, model, tiny_cfg(kimg=0.048), outdir=tmp_path / "b", preset="tiny")
    resumed = train(brain16, model, tiny_cfg(), resume=half)
    assert resumed == half
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    state = json.loads((list_checkpoints(resumed)[-1] / "training_state.json").read_text(encoding="utf-8"))[
        "state"
    ]
    assert state["cur_nimg"] == 96 and state["batch_idx"] == 12
    stats = [json.loads(line) for line in (resumed / "stats.jsonl").read_text(encoding="utf-8").splitlines()]
    assert stats[-1]["kimg"] == pytest.approx(0.096)
    assert {"loss/G", "loss/D", "loss/r1_penalty", "loss/pl_penalty", "sec_per_kimg"} <= set().union(*stats)
    assert (resumed / "reals.png").stat().st_size > 0
    assert any(p.name.startswith("events.out.tfevents") for p in resumed.iterdir())


@pytest.mark.xdist_group("torchrun")  # two processes each: never beside another torchrun test
def test_two_processes_match_one_with_the_same_global_batch(brain16: Path, tmp_path: Path) -> None:
    """torchrun, 2 CPU processes (gloo), batch 8 = 2 × 4, against 1 process with 2 micro-batches of 4."""
    common = [
        "--data",
        str(brain16),
        "--config",
        "tiny",
        "--kimg",
        "0.048",
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
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ddp_run = torchrun_train(common, tmp_path / "ddp", env)
    single = [sys.executable, "-m", "medgan3d", "train", *common, "--out", str(tmp_path / "one")]
    subprocess.run(single, check=True, env=env, capture_output=True, timeout=300)
    (one_run,) = (tmp_path / "one").iterdir()
    assert yaml.safe_load((ddp_run / "config.yaml").read_text(encoding="utf-8"))["world_size"] == 2
    a, b = _weights(ddp_run), _weights(one_run)
    # Equal up to float summation order (measured: <= 5e-6; another seed moves weights by 1e-2 .. 5)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)
    torch.manual_seed(3)
    fresh = load_preset("tiny").model.build_generator().state_dict()
    moved = max((a[f"G.{k}"] - v).abs().max().item() for k, v in fresh.items() if f"G.{k}" in a)
    assert moved > 1e-2  # training did change the weights: the comparison above is not vacuous


def test_nonfinite_steps_are_skipped_then_stop(brain16: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = load_preset("tiny").model
    good = train(brain16, model, tiny_cfg(kimg=0.016, tick_kimg=0.016), outdir=tmp_path, preset="tiny")
    last_good = list_checkpoints(good)[-1]
    before = _weights(good)
    original = losses.g_main

    def poisoned(*args, **kwargs):  # type: ignore[no-untyped-def]
        loss, stats = original(*args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(losses, "g_main", poisoned)
    with pytest.raises(
        TrainingError, match=r"11 iterations in a row.*Gmain.*last good checkpoint: .*ckpt-000000016"
    ):
        train(brain16, model, tiny_cfg(kimg=0.2), resume=good)  # max_bad_steps 10, from the run
    after = _weights(good)
    assert list_checkpoints(good)[-1] == last_good  # nothing written after the bad steps
    for key in before:
        assert torch.equal(before[key], after[key])
        assert torch.isfinite(after[key]).all()


def test_bf16_step_is_finite(brain16: Path, tmp_path: Path) -> None:
    run = train(brain16, load_preset("tiny").model, tiny_cfg(kimg=0.008, bf16=True), outdir=tmp_path)
    stats = json.loads((run / "stats.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert np.isfinite(stats["loss/G"]) and np.isfinite(stats["loss/D"])
    assert stats["skipped_total"] == 0


def test_wrong_shape_and_batch_are_refused(brain16: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"items are \[1, 16, 16, 16\] but the model generates \[1, 32, 64, 64\]"
    ):
        train(brain16, load_preset("coca-ss").model, tiny_cfg(), outdir=tmp_path)
    with pytest.raises(ValueError, match="multiple of batch_gpu"):
        train(brain16, load_preset("tiny").model, tiny_cfg(batch=6), outdir=tmp_path)


def test_generate_writes_nifti_in_data_units_with_data_geometry(brain16: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medgan3d.cli.main import app

    run = train(brain16, load_preset("tiny").model, tiny_cfg(kimg=0.016), outdir=tmp_path / "runs")
    out = tmp_path / "samples"
    result = CliRunner().invoke(
        app, ["generate", str(run), "--seeds", "3,5-6", "--trunc", "0.7", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "seed0003.nii.gz",
        "seed0005.nii.gz",
        "seed0006.nii.gz",
    ]
    manifest = json.loads((brain16 / "dataset.json").read_text(encoding="utf-8"))
    img = nib.load(out / "seed0005.nii.gz")
    np.testing.assert_allclose(img.affine, np.asarray(manifest["affine"]), atol=1e-5)
    # independent recomputation: G_ema of the checkpoint, seed 5, ψ 0.7, constant noise, clipped to the trained
    # range (the dataset's median percentile window) and mapped back
    G = load_generator(run)
    z = torch.randn(G.z_dim, generator=torch.Generator().manual_seed(5))[None]
    with torch.no_grad():
        vol = G(z, truncation_psi=0.7, noise_mode="const")[0, 0].numpy().clip(-1.0, 1.0)
    expected = np.asarray(denormalize(vol, Manifest.load(brain16))).transpose(
        2, 1, 0
    )  # NIfTI stores (W, H, D)
    np.testing.assert_allclose(np.asarray(img.dataobj), expected, rtol=1e-4, atol=1e-3)
    assert (out / "preview.png").stat().st_size > 0
    missing = CliRunner().invoke(app, ["generate", str(tmp_path / "nope"), "-o", str(out)])
    assert missing.exit_code != 0 and "no such run or checkpoint" in missing.output


def test_train_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown train key 'batchsize' \(known: kimg, batch, "):
        loop.train_config_from_dict({"batchsize": 4})
    assert dataclasses.replace(tiny_cfg(), kimg=1.0).kimg == 1.0


def test_pretrain_2d_then_train_3d_from_inflated_weights(brain16: Path, tmp_path: Path) -> None:
    """`pretrain` trains the 2D twin on axial slices; `train --init-from` starts 3D from its inflation."""
    from typer.testing import CliRunner

    from medgan3d.cli.main import app

    runner = CliRunner()
    args = [
        "--data",
        str(brain16),
        "--config",
        "tiny",
        "--batch",
        "8",
        "--batch-gpu",
        "4",
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, ["pretrain", *args, "--kimg", "0.016", "--desc", "twin"])
    assert result.exit_code == 0, result.output
    run2d = tmp_path / "00000-twin"
    G2 = load_generator(run2d)
    assert G2.spatial_dims == 2 and G2.img_shape == (1, 16, 16)
    result = runner.invoke(
        app,
        [
            "train",
            *args,
            "--kimg",
            "0.008",
            "--init-from",
            str(run2d),
            "--inflate",
            "inflate-1",
            "--inflate-parts",
            "G",
        ],
    )
    assert result.exit_code == 0, result.output
    run3d = tmp_path / "00001-tiny-brain16"
    config = __import__("yaml").safe_load((run3d / "config.yaml").read_text(encoding="utf-8"))
    assert config["init"] == {
        "from": str(run2d),
        "strategy": "inflate-1",
        "parts": "G",
        "equalized_lr": "compensate",
        "init_std": 0.1,
    }
    assert config["train"]["lr"] is None  # resolved to 0.002 for inflated starts:
    state = json.loads((list_checkpoints(run3d)[-1] / "training_state.json").read_text(encoding="utf-8"))
    assert state["optimizer_param_groups"]["G"][0]["lr"] == pytest.approx(0.002 * 4 / 5)
    # the mapping network was copied from the 2D generator, then trained one step at lr 0.002·0.01
    G3 = load_generator(run3d, ema=False)
    w2 = G2.mapping.layers[0].weight
    w3 = G3.mapping.layers[0].weight
    assert (
        (w3 - w2).abs().max()
        < 0.05
        < (w3 - load_preset("tiny").model.build_generator().mapping.layers[0].weight).abs().max()
    )
    bad = runner.invoke(
        app, ["train", *args, "--kimg", "0.008", "--init-from", str(run2d), "--config", "coca-ss"]
    )
    assert bad.exit_code != 0


def test_metrics_at_snapshots_go_to_stats_and_metrics_jsonl(brain16: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(
        kimg=0.016, tick_kimg=0.008, snapshot_ticks=1, metrics=("fid", "ms_ssim"), metrics_samples=6
    )
    run = train(brain16, load_preset("tiny").model, cfg, outdir=tmp_path)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [round(s["kimg"], 3) for s in stats] == [0.008, 0.016]
    for s in stats:
        assert {
            "metrics/fid_ax",
            "metrics/fid_sag",
            "metrics/fid_cor",
            "metrics/fid_avg",
            "metrics/ms_ssim",
        } <= set(s)
        fids = [s[f"metrics/fid_{p}"] for p in ("ax", "sag", "cor")]
        assert s["metrics/fid_avg"] == pytest.approx(sum(fids) / 3)
    full = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(full) == 2 and "random" in json.dumps(full[0]["provenance"]["extractors"])
    with pytest.raises(ValueError, match="2D twin"):
        train(brain16, load_preset("tiny-2d").model, cfg, outdir=tmp_path)


def test_snapshots_score_with_the_runs_metrics_settings(brain16: Path, tmp_path: Path) -> None:
    import yaml

    from medgan3d.config import MetricsConfig, train_config_from_dict
    from medgan3d.data import Manifest

    given = MetricsConfig(
        metrics=("psnr",), seed=9, extractor_2d="random-2d", extractor_seed=3, bootstrap=0, split="train"
    )
    cfg = tiny_cfg(
        kimg=0.008,
        tick_kimg=0.008,
        snapshot_ticks=1,
        metrics=("fid",),
        metrics_samples=4,
        metrics_settings=given,
    )
    run = train(brain16, load_preset("tiny").model, cfg, outdir=tmp_path)
    first = json.loads((run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    prov = first["provenance"]
    assert prov["extractors"]["2d"]["weights"] == "random, seed 3" and prov["real_split"] == "train"
    assert prov["num_real"] == len(Manifest.load(brain16).indices("train"))
    assert first["ci95"] == {}  # bootstrap 0: no intervals
    # the metric names and the seed are the train section's, not the nested settings'
    assert prov["settings"]["metrics"] == ["fid"] and prov["settings"]["seed"] == cfg.seed
    written = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["train"]
    assert written["metrics_settings"]["extractor_seed"] == 3
    assert train_config_from_dict(written, family=load_preset("tiny").model).metrics_settings == given

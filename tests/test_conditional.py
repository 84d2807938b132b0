"""Labels through every package: a labelled dataset trains a conditional StyleGAN2 or HA-GAN, resumes, and
generate --label, evaluate's per-class scores and the augmentation experiment use it. The pieces have their
own tests: tests/data/test_labels.py (the CSV), tests/networks/test_stylegan_conditional.py (the networks)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medgan3d.cli.main import app
from medgan3d.config import load_preset
from medgan3d.data import make_brain_phantoms, prepare_dataset
from medgan3d.data.labels import read_labels_csv
from medgan3d.data.preprocess import get_preset
from medgan3d.sampling import synthesize

runner = CliRunner()


# ------------------------------------------------------------------------------------------ phantoms
@pytest.fixture(scope="module")
def brain8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cond") / "brain8"
    make_brain_phantoms(8, out, seed=0, shape=(16, 16, 16), labelled=True, val_fraction=0.25)
    return out


def test_labelled_brain_phantom_has_alternating_classes_and_its_csv(brain8: Path) -> None:
    manifest = json.loads((brain8 / "dataset.json").read_text(encoding="utf-8"))
    assert [it["label"] for it in manifest["items"]] == [0, 1] * 4
    assert manifest["labels"]["classes"] == [0, 1]
    rows = read_labels_csv(brain8 / "labels.csv")
    assert rows["brain_00003.nii.gz"][1] == 1 and len(rows) == 8


# ------------------------------------------------------------------------------------------ training
def _train(data: Path, out: Path, **kw) -> Path:
    from medgan3d.training.loop import TrainConfig, train

    cfg = TrainConfig(
        batch=4, batch_gpu=2, kimg=0.008, tick_kimg=0.004, snapshot_ticks=1, grid=2, seed=1, **kw
    )
    return train(data, load_preset("tiny").model, cfg, outdir=out, preset="tiny")


@pytest.fixture(scope="module")
def cond_run(brain8: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(brain8, tmp_path_factory.mktemp("runs"))


def test_a_labelled_dataset_trains_a_conditional_model(cond_run: Path) -> None:
    import yaml

    from medgan3d.training.checkpoint import list_checkpoints, load_generator

    config = yaml.safe_load((cond_run / "config.yaml").read_text(encoding="utf-8"))
    assert (
        config["model"]["labels"] == {"kind": "class", "classes": [0, 1]} and config["train"]["cond"] is True
    )
    G = load_generator(cond_run)
    assert G.c_dim == 2
    ckpt = list_checkpoints(cond_run)[-1]
    from medgan3d.modeling import read_config

    assert read_config(ckpt / "D")["args"]["c_dim"] == 2
    z = torch.randn(1, G.z_dim).repeat(2, 1)
    out = synthesize(G, z, c=torch.eye(2))
    assert torch.isfinite(out).all() and not torch.allclose(out[0], out[1])


def test_a_conditional_run_resumes_bit_identically(brain8: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from medgan3d.training.checkpoint import list_checkpoints
    from medgan3d.training.loop import TrainConfig, train

    def cfg(kimg: float) -> TrainConfig:
        return TrainConfig(batch=4, batch_gpu=2, kimg=kimg, tick_kimg=0.004, snapshot_ticks=1, grid=2, seed=2)

    model = load_preset("tiny").model
    full = train(brain8, model, cfg(0.016), outdir=tmp_path / "a", preset="tiny")
    half = train(brain8, model, cfg(0.008), outdir=tmp_path / "b", preset="tiny")
    resumed = train(brain8, model, cfg(0.016), resume=half)
    for net in ("G", "G_ema", "D"):
        a = load_file(list_checkpoints(full)[-1] / net / "model.safetensors")
        b = load_file(list_checkpoints(resumed)[-1] / net / "model.safetensors")
        assert "mapping.embed.weight" in a or net == "D"
        assert all(torch.equal(a[k], b[k]) for k in a), net


def test_no_cond_trains_an_unconditional_model_and_baselines_refuse_labels(
    brain8: Path, tmp_path: Path
) -> None:
    from medgan3d.errors import UsageError
    from medgan3d.training.checkpoint import load_generator
    from medgan3d.training.loop import TrainConfig, train

    run = _train(brain8, tmp_path / "a", cond=False)
    assert load_generator(run).c_dim == 0
    cfg = TrainConfig(batch=4, batch_gpu=2, kimg=0.004, tick_kimg=0.004)
    model = dataclasses.replace(load_preset("wgan-gp-tiny").model, shape=(16, 16, 16))
    with pytest.raises(UsageError, match=r"unconditional in medgan3d.*--no-cond"):
        train(brain8, model, cfg, outdir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_generate_labels_and_their_errors(cond_run: Path, brain8: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["generate", str(cond_run), "-n", "2", "--label", "1", "-o", str(tmp_path / "g")]
    )
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "g" / "seed0001.json").read_text(encoding="utf-8"))
    assert side["condition"] == {"kind": "class", "label": 1}
    res = runner.invoke(
        app, ["generate", str(cond_run), "-n", "2", "--label", "4", "-o", str(tmp_path / "h")]
    )
    assert (
        res.exit_code == 1
        and "error: --label 4: not a class of this model (it knows classes 0, 1)" in res.output
    )
    assert not (tmp_path / "h").exists() or not any((tmp_path / "h").iterdir())
    res = runner.invoke(
        app,
        ["generate", str(cond_run), "--labels-from", str(brain8 / "labels.csv"), "-o", str(tmp_path / "f")],
    )
    assert res.exit_code == 0, res.output
    labels = [
        json.loads((tmp_path / "f" / f"seed{i:04d}.json").read_text())["condition"]["label"] for i in range(8)
    ]
    assert labels == [0, 1] * 4
    # the same seed with another label is another volume; with the same label the same one
    import nibabel as nib

    a = nib.load(tmp_path / "g" / "seed0000.nii.gz").get_fdata()
    b = nib.load(tmp_path / "f" / "seed0000.nii.gz").get_fdata()  # seed 0, label 0
    c = nib.load(tmp_path / "f" / "seed0001.nii.gz").get_fdata()  # seed 1, label 1
    d = nib.load(tmp_path / "g" / "seed0001.nii.gz").get_fdata()  # seed 1, label 1
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(c, d)


def test_generate_label_on_an_unconditional_model_is_refused(brain8: Path, tmp_path: Path) -> None:
    run = _train(brain8, tmp_path / "a", cond=False)
    res = runner.invoke(app, ["generate", str(run), "-n", "1", "--label", "0", "-o", str(tmp_path / "g")])
    assert res.exit_code == 1 and "the model is unconditional" in res.output


# ------------------------------------------------------------------------------------------ HA-GAN
def test_hagan_conditional_networks_follow_the_published_variant() -> None:
    """G: one-hot label concatenated to z before fc1; D: (logit, class logits), each the mean of D^H and D^L."""
    from medgan3d.networks.hagan import HAGANDiscriminator, HAGANGenerator

    torch.manual_seed(0)
    G = HAGANGenerator(32, 16, 32, num_class=3).eval()
    assert G.common_block.fc.in_features == 16 + 3
    z, c = torch.randn(1, 16).repeat(3, 1), torch.eye(3)
    vols = G.generate(z, c=c)
    assert not torch.allclose(vols[0], vols[1])
    torch.testing.assert_close(G.generate(z[:1], c=c[2:]), vols[2:], rtol=1e-4, atol=1e-5)
    h_by_hand = G.common_block(torch.cat([z, c], 1))
    torch.testing.assert_close(G.common(z, c), h_by_hand)
    D = HAGANDiscriminator(32, 32, num_class=3).eval()
    sub, low, pos = torch.randn(2, 1, 4, 32, 32), torch.randn(2, 1, 8, 8, 8), torch.tensor([0.0, 0.5])
    out = D(sub, low, pos)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out, (D.high(sub, pos) + D.low(low)) / 2)
    assert D.high(sub, pos).shape == (2, 4) and D.low(low).shape == (2, 4)


def test_hagan_conditional_losses_match_the_published_objective() -> None:
    """D: BCE(real) + CE(class_real, y) + BCE(fake); G: BCE(fake, 1) + 0.1 CE(class_fake, y), by hand."""
    import contextlib

    import torch.nn.functional as F

    from medgan3d.config import HAGANConfig
    from medgan3d.training.families.hagan import HAGAN, HAGANLoss, draw_crop
    from medgan3d.training.family import MicroBatch
    from medgan3d.training.loop import TrainConfig

    model = HAGANConfig(resolution=32, latent_dim=16, width=32, labels={"kind": "class", "classes": [0, 1]})
    cfg = TrainConfig(batch=2, batch_gpu=2, loss=HAGANLoss())
    family = HAGAN()
    nets = family.build(model, cfg, torch.device("cpu"), False, None)
    crop = draw_crop(0, 0, 32, cfg.loss)
    reals, c = torch.rand(2, 1, 32, 32, 32) * 2 - 1, torch.eye(2)[[1, 0]]
    mb = MicroBatch(2, 1, torch.device("cpu"), contextlib.nullcontext(), lambda: reals, 0, crop, lambda: c)
    G, D = nets.modules["G"], nets.modules["D"]
    pos = torch.full((2,), crop.position)
    for phase in ("D", "G"):
        torch.manual_seed(7)
        got = getattr(family, f"_loss_{phase}")(nets, mb, cfg.loss).loss
        torch.manual_seed(7)
        z = torch.randn(2, 16)
        with torch.no_grad():
            fake_sub, fake_low = G(z, crop.latent_start, c)
            fake = D(fake_sub, fake_low, pos)
            if phase == "D":
                real = D(reals[:, :, crop.real_start : crop.real_start + 4], reals[..., ::4, ::4, ::4], pos)
                want = (
                    F.binary_cross_entropy_with_logits(real[:, :1], torch.ones(2, 1))
                    + F.cross_entropy(real[:, 1:], torch.tensor([1, 0]))
                    + F.binary_cross_entropy_with_logits(fake[:, :1], torch.zeros(2, 1))
                )
            else:
                want = F.binary_cross_entropy_with_logits(
                    fake[:, :1], torch.ones(2, 1)
                ) + 0.1 * F.cross_entropy(fake[:, 1:], torch.tensor([1, 0]))
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_tiny_conditional_hagan_run(tmp_path: Path) -> None:
    from medgan3d.training.checkpoint import load_generator
    from medgan3d.training.loop import TrainConfig, train

    make_brain_phantoms(4, tmp_path / "b32", seed=0, shape=(32, 32, 32), labelled=True, val_fraction=0.0)
    cfg = TrainConfig(batch=2, batch_gpu=2, kimg=0.004, tick_kimg=0.002, snapshot_ticks=1, grid=2, seed=0)
    preset = load_preset("hagan-tiny")
    run = train(
        tmp_path / "b32",
        preset.model,
        dataclasses.replace(cfg),
        outdir=tmp_path / "runs",
        preset="hagan-tiny",
    )
    G = load_generator(run)
    assert G.c_dim == 2
    vols = synthesize(G, torch.randn(1, G.z_dim).repeat(2, 1), c=torch.eye(2))
    assert torch.isfinite(vols).all() and not torch.allclose(vols[0], vols[1])


# ------------------------------------------------------------------------------------------ metrics
def test_per_class_metrics_score_each_class_against_its_own_reals(brain8: Path) -> None:
    from medgan3d.metrics import evaluate_per_class
    from medgan3d.metrics.inputs import load_real
    from medgan3d.metrics.psnr import nearest_real_psnr

    real = load_real(brain8, list(range(8)))
    labels = [0, 1] * 4
    per = evaluate_per_class(real, labels, brain8, metrics=("psnr",), bootstrap=0)
    assert set(per) == {"0", "1"} and per["0"]["num_real"] == 4 and per["1"]["num_fake"] == 4
    assert per["0"]["psnr"] == per["1"]["psnr"] == 100.0  # each volume is among the reals of its own class
    swapped = evaluate_per_class(real, [1 - v for v in labels], brain8, metrics=("psnr",), bootstrap=0)
    by_hand = nearest_real_psnr(real[1::2], real[0::2])[0].mean()  # class-1 volumes against class-0 reals
    assert swapped["0"]["psnr"] == pytest.approx(by_hand) and by_hand < 60


def test_evaluate_cli_prints_per_class_scores_of_a_conditional_run(
    cond_run: Path, brain8: Path, tmp_path: Path
) -> None:
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(cond_run),
            "--data",
            str(brain8),
            "-n",
            "4",
            "--metrics",
            "psnr",
            "--bootstrap",
            "0",
            "-o",
            str(tmp_path / "e"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        "class 0 (2 generated vs 4 real): psnr" in res.output
        and "class 1 (2 generated vs 4 real)" in res.output
    )
    result = json.loads((tmp_path / "e" / "metrics.json").read_text(encoding="utf-8"))
    assert set(result["per_class"]) == {"0", "1"}
    assert "Per class" in (tmp_path / "e" / "report.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ experiment
def _augmentation():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import augmentation

    return augmentation


def test_augmentation_scores_are_accuracy_and_auc() -> None:
    aug = _augmentation()

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # logits whose class-1 probability is x's mean
            p = x.flatten(1).mean(1).clamp(1e-4, 1 - 1e-4)
            return torch.stack([torch.log1p(-p), torch.log(p)], 1)

    x = torch.tensor([0.1, 0.4, 0.35, 0.8]).reshape(4, 1, 1, 1, 1)
    got = aug.scores(Fixed(), x, torch.tensor([0, 0, 1, 1]))
    assert got["accuracy"] == 0.75  # 0.8 -> 1 right, 0.35 -> 0 wrong
    assert (
        got["auc"] == 0.75
    )  # pairs (pos, neg) ranked right: (0.35>0.1), (0.8>0.1), (0.8>0.4); wrong: (0.35<0.4)


@pytest.mark.slow
def test_augmentation_driver_at_a_toy_budget(tmp_path: Path) -> None:
    aug = _augmentation()
    args = [
        "--out",
        str(tmp_path),
        "--seeds",
        "0,1,2",
        "--train-subjects",
        "6",
        "--test-subjects",
        "6",
        "--gan-kimg",
        "0.016",
        "--synthetic",
        "2",
        "--steps",
        "2",
        "--batch",
        "4",
    ]
    aug.main(args)
    rows = list(csv.DictReader((tmp_path / "augmentation.csv").open(encoding="utf-8")))
    assert len(rows) == 9 and {r["training_set"] for r in rows} == set(aug.TRAINING_SETS)
    assert {r["n_train"] for r in rows if r["training_set"] == "real + synthetic"} == {"10"}
    table = (tmp_path / "augmentation.md").read_text(encoding="utf-8")
    assert table.startswith("| training set | n train | accuracy | AUC |") and "seeds 0, 1, 2" in table
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    aug.main(args)  # the GAN runs are reused
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before


def test_evaluate_fake_folder_scores_per_class_from_the_sidecars(
    cond_run: Path, brain8: Path, tmp_path: Path
) -> None:
    res = runner.invoke(
        app,
        ["generate", str(cond_run), "--labels-from", str(brain8 / "labels.csv"), "-o", str(tmp_path / "g")],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--fake",
            str(tmp_path / "g"),
            "--data",
            str(brain8),
            "--metrics",
            "psnr",
            "--bootstrap",
            "0",
            "-o",
            str(tmp_path / "e"),
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "e" / "metrics.json").read_text(encoding="utf-8"))
    assert {k: v["num_fake"] for k, v in result["per_class"].items()} == {"0": 4, "1": 4}


def test_float_labels_train_a_value_conditioned_stylegan(tmp_path: Path) -> None:
    from medgan3d.training.checkpoint import load_generator

    make_brain_phantoms(
        4, tmp_path / "b", seed=0, shape=(16, 16, 16), raw_dir=tmp_path / "raw", val_fraction=0.0
    )
    csv_path = tmp_path / "scores.csv"
    csv_path.write_text("".join(f"brain_{i:05d}.nii.gz,{0.25 * i}\n" for i in range(4)), encoding="utf-8")
    prepare_dataset(
        tmp_path / "raw",
        tmp_path / "v",
        get_preset("adni", shape=(16, 16, 16)),
        labels=csv_path,
        val_fraction=0.0,
    )
    run = _train(tmp_path / "v", tmp_path / "runs")
    G = load_generator(run)
    assert G.c_dim == 1
    res = runner.invoke(app, ["generate", str(run), "-n", "1", "--label", "0.6", "-o", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "g" / "seed0000.json").read_text(encoding="utf-8"))
    assert side["condition"] == {"kind": "value", "label": 0.6}

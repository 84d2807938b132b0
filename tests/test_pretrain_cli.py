"""`pretrain`'s own length and slice source, and `train --init-from` with both equalized-lr readings of
inflation (Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images",
Liu et al., arXiv 2208.03934, §3.2 and §4.2.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from medgan3d.cli import pretrain as pretrain_cli
from medgan3d.cli.main import app
from medgan3d.config import load_preset
from medgan3d.data import make_brain_phantoms, make_heart_phantoms
from medgan3d.inflate import inflate_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pretrain")
    make_heart_phantoms(4, root / "heart-all", shape=(16, 16, 16), inplane=32, all_slices=True)
    make_heart_phantoms(4, root / "heart-window", shape=(16, 16, 16), inplane=32)
    make_brain_phantoms(4, root / "brain", shape=(16, 16, 16))
    return {p.name: p for p in root.iterdir()}


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the CLI would train with, without training."""
    seen: dict[str, Any] = {}

    def fake_train(data, model, cfg, **kw):  # type: ignore[no-untyped-def]
        seen.update(data=data, model=model, cfg=cfg, **kw)
        return Path("run")

    monkeypatch.setattr("medgan3d.training.loop.train", fake_train)
    return seen


def test_pretrain_defaults_to_the_papers_25000_kimg(data, captured, tmp_path) -> None:
    args = ["pretrain", "--data", str(data["brain"]), "--config", "tiny", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    assert captured["cfg"].kimg == pretrain_cli.PRETRAIN_KIMG == 25000.0
    assert captured["model"].spatial_dims == 2
    assert runner.invoke(app, [*args, "--kimg", "2"]).exit_code == 0
    assert captured["cfg"].kimg == 2.0


def test_pretrain_says_which_slices_it_sees(data, captured, tmp_path) -> None:
    base = ["pretrain", "--config", "tiny", "--kimg", "1", "--out", str(tmp_path)]
    every = runner.invoke(app, [*base, "--data", str(data["heart-all"])])
    assert every.exit_code == 0 and "pretraining on all" in every.output
    window = runner.invoke(app, [*base, "--data", str(data["heart-window"])])
    assert window.exit_code == 0 and "--all-slices" in window.output


def _checkpoint_2d(root: Path) -> Path:
    torch.manual_seed(1)
    model = load_preset("tiny-2d").model
    G, D = model.build_generator(), model.build_discriminator()
    for name, net in (("G", G), ("G_ema", G), ("D", D)):
        net.save_pretrained(root / name)
    return root


@pytest.mark.parametrize("mode", ["compensate", "stored"])
def test_train_init_from_takes_the_equalized_lr_reading(mode, data, captured, tmp_path) -> None:
    ckpt = _checkpoint_2d(tmp_path / "ck2d")
    args = [
        "train",
        "--data",
        str(data["brain"]),
        "--config",
        "tiny",
        "--kimg",
        "1",
        "--out",
        str(tmp_path),
        "--init-from",
        str(ckpt),
        "--equalized-lr",
        mode,
        "--init-std",
        "0.05",
        "--seed",
        "4",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert captured["init_info"] == {
        "from": str(ckpt),
        "strategy": "inflate-1",
        "parts": "GD",
        "equalized_lr": mode,
        "init_std": 0.05,
    }
    expected = inflate_checkpoint(ckpt, "tiny", "inflate-1", seed=4, init_std=0.05, equalized_lr=mode)
    for name in ("G", "D"):
        got = captured["init"][name].state_dict()
        for key, value in expected[name].state_dict().items():
            torch.testing.assert_close(got[key], value, msg=f"{name}.{key}")
    other = inflate_checkpoint(
        ckpt,
        "tiny",
        "inflate-1",
        seed=4,
        init_std=0.05,
        equalized_lr="stored" if mode == "compensate" else "compensate",
    )
    differs = [
        k for k, v in other["D"].state_dict().items() if not torch.equal(v, expected["D"].state_dict()[k])
    ]
    assert differs  # the two readings give different discriminator weights

"""`pretrain`'s own length and slice source, and `train --init-from` with both equalized-lr readings of
inflation (Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images",
Liu et al., arXiv 2208.03934, §3.2 and §4.2.3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

import medgan3d
from medgan3d.cli.main import app
from medgan3d.config import ConfigError, load_preset
from medgan3d.data import make_brain_phantoms, make_heart_phantoms
from medgan3d.inflate import inflate_checkpoint

runner = CliRunner()
CONFIGS = Path(medgan3d.__file__).parent / "configs"


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


def test_pretrain_length_defaults_to_the_presets(data, captured, tmp_path) -> None:
    args = ["pretrain", "--data", str(data["brain"]), "--out", str(tmp_path)]
    assert runner.invoke(app, [*args, "--config", "tiny"]).exit_code == 0
    written = yaml.safe_load((CONFIGS / "tiny.yaml").read_text(encoding="utf-8"))["pretrain_kimg"]
    assert captured["cfg"].kimg == written < 100  # the tiny preset's own length, not the paper's
    assert captured["model"].spatial_dims == 2
    assert runner.invoke(app, [*args, "--config", "tiny", "--kimg", "2"]).exit_code == 0
    assert captured["cfg"].kimg == 2.0
    # a paper preset names no length: Liu et al., arXiv 2208.03934 §4.2.3, 25,000 kimg of 2D pretraining
    assert "pretrain_kimg" not in (CONFIGS / "coca-ss.yaml").read_text(encoding="utf-8")
    data64 = tmp_path / "heart64"
    make_heart_phantoms(4, data64, shape=(32, 64, 64), inplane=64)
    assert (
        runner.invoke(app, [*args[:1], "-d", str(data64), "-c", "coca-ss", "-o", str(tmp_path)]).exit_code
        == 0
    )
    assert captured["cfg"].kimg == 25000.0
    shown = runner.invoke(app, ["pretrain", "--help"], env={"COLUMNS": "300"}).output
    assert f"tiny {written:g}," in shown and "25000" in shown


def test_a_presets_pretrain_length_must_be_positive(tmp_path: Path) -> None:
    text = (CONFIGS / "tiny.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(re.sub(r"pretrain_kimg: .*", "pretrain_kimg: 0", text), encoding="utf-8")
    with pytest.raises(ConfigError, match="pretrain_kimg must be a number > 0"):
        load_preset(bad)


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

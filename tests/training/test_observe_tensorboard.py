"""What a run writes to TensorBoard: scalars, metric curves, the real and generated grids, the hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from medgan3d.config import load_preset
from medgan3d.data import make_brain_phantoms
from medgan3d.training.loop import TrainConfig, train
from medgan3d.training.observe import flat_hparams


def test_flat_hparams() -> None:
    flat = flat_hparams({"a": {"b": 1, "c": [1, 2], "d": None}, "e": "x", "f": True, "g": 0.5})
    assert flat == {"a.b": 1, "a.c": "[1, 2]", "e": "x", "f": True, "g": 0.5}


def test_events_hold_reals_fakes_hparams_and_metric_curves(tmp_path: Path) -> None:
    data = tmp_path / "brain16"
    make_brain_phantoms(12, data, seed=0, shape=(16, 16, 16), val_fraction=0.25)
    cfg = TrainConfig(
        batch=8,
        batch_gpu=4,
        kimg=0.016,
        tick_kimg=0.008,
        snapshot_ticks=1,
        grid=2,
        seed=3,
        metrics=("psnr", "memorisation"),
        metrics_samples=6,
    )
    run = train(data, load_preset("tiny").model, cfg, outdir=tmp_path / "runs", preset="tiny")
    acc = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"reals", "fakes"} <= set(tags["images"])
    assert [e.step for e in acc.Images("reals")] == [0]
    assert [e.step for e in acc.Images("fakes")] == [8, 16]
    assert {"loss/G", "loss/D", "metrics/psnr", "metrics/memorisation_z_u"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("metrics/psnr")] == [8, 16]  # a curve: one point per snapshot
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["train.batch"].number_value == 8 and hp["train.kimg"].number_value == pytest.approx(0.016)
    assert hp["preset"].string_value == "tiny" and hp["model.g_variant"].string_value == "split_shuffle"
    assert hp["train.metrics"].string_value == '["psnr", "memorisation"]'
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = [m.name.tag for m in exp.metric_infos]
    assert metrics == ["loss/G", "loss/D", "metrics/psnr", "metrics/memorisation_z_u"]
    assert set(metrics) <= set(tags["scalars"])  # every metric the hparams name is a logged curve

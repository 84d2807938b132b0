"""HA-GAN on the shared loop: exact resume, split invariance, the sub-volume crop, ablations, the CLI end to end.

Facts checked against ``shared/specs/hagan.md`` (§2 the iteration, §5 the crop) and against computations made
here independently of the family code (numpy slicing, a per-chunk loop, scipy filtering).
"""

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
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from medgan3d.config import load_preset
from medgan3d.data import Manifest, make_brain_phantoms
from medgan3d.training import loop
from medgan3d.training.checkpoint import list_checkpoints
from medgan3d.training.families.hagan import HAGAN, Crop, HAGANLoss, draw_crop, real_views
from medgan3d.training.family import MicroBatch
from medgan3d.training.loop import TrainConfig, train
from tests.ports import torchrun_train

NETWORKS = ("G", "D", "E_H", "E_G")
ENV = dict(os.environ, OMP_NUM_THREADS="1", MEDGAN3D_ALLOCATOR="system")


@pytest.fixture(scope="module")
def brain32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "brain32"
    make_brain_phantoms(8, out, seed=0, shape=(32, 32, 32))
    return out


def tiny_model():  # type: ignore[no-untyped-def]
    return load_preset("hagan-tiny").model


def hagan_cfg(**kw: object) -> TrainConfig:
    base = dict(batch=2, batch_gpu=2, kimg=0.012, tick_kimg=0.006, snapshot_ticks=100, grid=1, seed=3)
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def _last(run: Path) -> Path:
    return list_checkpoints(run)[-1]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = _last(run)
    assert sorted(p.name for p in ckpt.iterdir() if p.is_dir()) == sorted(NETWORKS)
    return {f"{n}.{k}": v for n in NETWORKS for k, v in load_file(ckpt / n / "model.safetensors").items()}


def _state(run: Path) -> dict:
    return json.loads((_last(run) / "training_state.json").read_text(encoding="utf-8"))["state"]


def _initial(model, cfg: TrainConfig) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """The random init of a run (HAGAN.build seeds torch with cfg.seed), as checkpoint keys."""
    family = HAGAN()
    nets = family.build(model, loop.resolve_loss(cfg, family), torch.device("cpu"), False, None)
    return {f"{n}.{k}": v.clone() for n in NETWORKS for k, v in nets.modules[n].state_dict().items()}


def _moved(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str, params_only: bool = True
) -> float:
    """Largest change between two weight sets over the keys under ``prefix`` (spectral-norm u/v excluded)."""
    keys = [k for k in a if k.startswith(prefix) and not (params_only and k.endswith(("._u", "._v")))]
    assert keys, prefix
    return max((a[k] - b[k]).abs().max().item() for k in keys)


# --------------------------------------------------------------------------------------------- the loop


def test_resume_is_bit_identical(brain32: Path, tmp_path: Path) -> None:
    """6 iterations straight == 3 + resume to 6: every tensor of G, D (with its u/v), E_H, E_G and the
    optimizer moments."""
    model = tiny_model()
    full = train(brain32, model, hagan_cfg(), outdir=tmp_path / "a", preset="hagan-tiny")
    half = train(brain32, model, hagan_cfg(kimg=0.006), outdir=tmp_path / "b", preset="hagan-tiny")
    assert _state(half)["cur_nimg"] == 6 and _state(half)["batch_idx"] == 3
    resumed = train(brain32, model, hagan_cfg(), resume=half)
    assert resumed == half
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert any(k.startswith("D.") and k.endswith("._u") for k in a)  # the power-iteration vectors are saved
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ta, tb = (load_file(_last(r) / "training_state.safetensors") for r in (full, resumed))
    assert ta.keys() == tb.keys() and {k.split(".")[1] for k in ta if k.startswith("opt.")} == set(NETWORKS)
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key
    state = _state(resumed)
    assert state["cur_nimg"] == 12 and state["batch_idx"] == 6
    # non-vacuous: every network did train
    init = _initial(model, hagan_cfg())
    for name in NETWORKS:
        assert _moved(a, init, f"{name}.") > 1e-5, name
    stats = [json.loads(line) for line in (resumed / "stats.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [round(s["kimg"], 3) for s in stats] == [0.006, 0.012]
    assert {"loss/D", "loss/G", "loss/E_H", "loss/E_G", "scores/real", "scores/fake"} <= set(stats[-1])


@pytest.mark.xdist_group("torchrun")  # two processes each: never beside another torchrun test
def test_two_processes_match_micro_batches(brain32: Path, tmp_path: Path) -> None:
    """batch 4 = 2 processes × 1 micro-batch of 2 (torchrun, gloo) == 1 process × 2 micro-batches of 2.

    Spectral norm's power iteration runs once per D/G phase, not per D forward: per forward, the single
    process would update u/v twice as often as each rank and the runs would part. (The micro-batch *size*
    must be the same: z is drawn per micro-batch from its seed, so batch_gpu 4 vs 2 differs like a new seed.)
    """
    common = [
        "--data",
        str(brain32),
        "--config",
        "hagan-tiny",
        "--kimg",
        "0.008",
        "--batch",
        "4",
        "--batch-gpu",
        "2",
        "--seed",
        "3",
        "--tick",
        "1",
        "--device",
        "cpu",
    ]
    ddp_run = torchrun_train(common, tmp_path / "ddp", ENV)
    saved = yaml.safe_load((ddp_run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["world_size"] == 2
    cfg = loop.train_config_from_dict(saved["train"], family=HAGAN())
    assert (cfg.batch, cfg.batch_gpu, cfg.seed) == (4, 2, 3)
    one = train(brain32, tiny_model(), dataclasses.replace(cfg, grid=1), outdir=tmp_path / "one")
    other = train(brain32, tiny_model(), dataclasses.replace(cfg, grid=1, seed=4), outdir=tmp_path / "other")
    a, b, c = _weights(ddp_run), _weights(one), _weights(other)
    assert a.keys() == b.keys()
    # Equal up to float summation order (all-reduce vs accumulation, and the thread count). Adam divides by
    # sqrt(v): where a gradient is ~0 its rounding noise can flip an update, by at most 2·lr per step (lr of D
    # 4e-4, 2 steps here); everywhere else the runs agree to rounding.
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert diffs.max() <= 2 * 4e-4 * 2 + 1e-6 and diffs.median() < 1e-6, (diffs.max(), diffs.median())
    assert _moved(b, c, "") > 1e-2  # another seed parts by far more: the comparison is not vacuous
    assert _moved(b, c, "D.", params_only=False) > 1e-3


def test_ablations_freeze_what_they_should(brain32: Path, tmp_path: Path) -> None:
    model = tiny_model()
    cfg = hagan_cfg(kimg=0.004, tick_kimg=0.004, loss={"encoder": False})
    run = train(brain32, model, cfg, outdir=tmp_path / "noenc")
    after, init = _weights(run), _initial(model, cfg)
    for name in ("E_H", "E_G"):  # "HA-GAN w/o encoder": E^H and E^G are never stepped
        assert _moved(after, init, f"{name}.") == 0.0, name
    for name in ("G", "D"):
        assert _moved(after, init, f"{name}.") > 1e-5, name
    stats = json.loads((run / "stats.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert "loss/E_H" not in stats and "loss/E_G" not in stats and "loss/G" in stats

    cfg = loop.train_config_from_dict(
        dataclasses.asdict(hagan_cfg(kimg=0.004, tick_kimg=0.004)) | {"loss": {"low_res": False}},
        family=HAGAN(),
    )
    assert cfg.loss == HAGANLoss(low_res=False)
    run = train(brain32, model, cfg, outdir=tmp_path / "nolow")
    after, init = _weights(run), _initial(model, cfg)
    for prefix in ("D.low.", "G.low_head."):  # "w/o low-resolution branch": no gradient reaches D^L, G^L
        assert _moved(after, init, prefix) == 0.0, prefix
    for prefix in ("D.high.", "G.common_block.", "G.high_head.", "E_H.", "E_G."):
        assert _moved(after, init, prefix) > 1e-5, prefix

    cfg = hagan_cfg(
        kimg=0.002,
        tick_kimg=0.002,
        loss={"selection": "deterministic", "aligned": False, "downsample": "area"},
    )
    stats = json.loads((train(brain32, model, cfg, outdir=tmp_path / "rest") / "stats.jsonl").read_text())
    assert all(np.isfinite(stats[k]) for k in ("loss/D", "loss/G", "loss/E_H", "loss/E_G"))
    with pytest.raises(ValueError, match=r"unknown hagan loss key 'r1_gamma' \(known: lr_g, "):
        train(brain32, model, hagan_cfg(loss={"r1_gamma": 1.0}), outdir=tmp_path / "bad")
    with pytest.raises(ValueError, match="selection"):
        HAGANLoss(selection="fixed")


# --------------------------------------------------------------------------------------------- the crop


@pytest.mark.parametrize("R", [32, 256])
def test_draw_crop(R: int) -> None:
    top = 7 * R // 8
    aligned = [draw_crop(step, 5, R, HAGANLoss()) for step in range(2000)]
    reals = np.array([c.real_start for c in aligned])
    assert all(c.real_start == 4 * c.latent_start for c in aligned)
    assert reals.min() == 0 and reals.max() == top  # both ends of [0, 7R/8] are reached
    assert all(c.position == pytest.approx(c.real_start / top) for c in aligned)
    counts = np.bincount(reals // 4, minlength=top // 4 + 1)  # uniform over the 7R/32 + 1 latent starts
    assert len(counts) == top // 4 + 1 and counts.min() > 0.5 * counts.mean()
    assert draw_crop(17, 5, R, HAGANLoss()) == aligned[17]  # a pure function of (seed, step)
    assert [draw_crop(s, 6, R, HAGANLoss()) for s in range(50)] != aligned[:50]

    det = [draw_crop(step, 5, R, HAGANLoss(selection="deterministic")) for step in range(16)]
    assert [c.real_start for c in det] == [i * R // 8 for i in range(8)] * 2  # the 8 non-overlapping slabs
    assert all(c.real_start == 4 * c.latent_start and c.position == c.real_start / top for c in det)

    loose = [draw_crop(step, 5, R, HAGANLoss(aligned=False)) for step in range(2000)]
    starts = np.array([c.real_start for c in loose])
    assert starts.min() == 0 and starts.max() == top
    assert set(starts % 4) == {0, 1, 2, 3}  # the reference: not snapped to the latent grid
    assert all(c.latent_start == c.real_start // 4 and c.position == c.real_start / top for c in loose)


def test_real_views(brain32: Path) -> None:
    """The real sub-volume and low-res volume against numpy slicing and block means."""
    from medgan3d.data import VolumeDataset

    x32 = torch.stack([VolumeDataset(brain32, split="train")[i] for i in range(2)])
    xn = x32.numpy()
    for r in (0, 5, 28):
        sub, low = real_views(x32, Crop(r // 4, r, r / 28), 32, HAGANLoss())
        np.testing.assert_array_equal(sub.numpy(), xn[:, :, r : r + 4])
        np.testing.assert_array_equal(low.numpy(), xn[:, :, ::4, ::4, ::4])
    _, area = real_views(x32, Crop(0, 0, 0.0), 32, HAGANLoss(downsample="area"))
    np.testing.assert_allclose(area.numpy(), xn.reshape(2, 1, 8, 4, 8, 4, 8, 4).mean((3, 5, 7)), atol=1e-6)


@pytest.mark.parametrize("aligned", [False, True])
def test_phases_see_the_crop(brain32: Path, aligned: bool) -> None:
    """What D^H (sub-volume, position), D^L, G^H, E^H and E^G receive in the D, E_H and E_G phases, at R = 64."""
    from medgan3d.data import VolumeDataset

    R = 64
    x32 = torch.stack([VolumeDataset(brain32, split="train")[i] for i in range(2)])
    noise = 0.01 * torch.randn(2, 1, R, R, R, generator=torch.Generator().manual_seed(0))
    x = F.interpolate(x32, scale_factor=2, mode="trilinear") + noise
    model = dataclasses.replace(tiny_model(), resolution=R)
    family = HAGAN()
    cfg = loop.resolve_loss(TrainConfig(batch=2, batch_gpu=2, loss={"aligned": aligned}), family)
    nets = family.build(model, cfg, torch.device("cpu"), False, None)
    G, D, E_H, E_G = (nets.modules[n] for n in NETWORKS)
    crop = Crop(5, 20, 20 / 56) if aligned else Crop(5, 21, 21 / 56)  # the reference: 1 slice off
    r, s = crop.real_start, crop.latent_start
    seen: dict[str, list] = {"D.high": [], "D.low": [], "G.high": [], "E_G": []}
    hooks = [
        D.high.register_forward_hook(lambda m, i, o: seen["D.high"].append(i)),
        D.low.register_forward_hook(lambda m, i, o: seen["D.low"].append(i[0])),
        G.high_head.register_forward_hook(lambda m, i, o: seen["G.high"].append((i[0], o))),
        E_G.register_forward_hook(lambda m, i, o: seen["E_G"].append(i[0])),
    ]
    mb = MicroBatch(2, 1, torch.device("cpu"), contextlib.nullcontext(), lambda: x, 0, crop)
    family.before_phase(family.phase("D", ("D",)), nets)
    torch.manual_seed(11)
    family.loss(family.phase("D", ("D",)), nets, mb, None, cfg)
    (real_sub, real_pos), (fake_sub, fake_pos) = seen["D.high"]
    np.testing.assert_array_equal(real_sub.numpy(), x.numpy()[:, :, r : r + R // 8])
    np.testing.assert_array_equal(seen["D.low"][0].numpy(), x.numpy()[:, :, ::4, ::4, ::4])
    assert real_pos.tolist() == fake_pos.tolist() == pytest.approx([r / (7 * R / 8)] * 2)  # float32
    slab, out = seen["G.high"][0]
    assert slab.shape == (2, 32, R // 32, R // 4, R // 4) and out.shape == (2, 1, 4 * (R // 32), R, R)
    torch.manual_seed(11)
    z = torch.randn(2, G.latent_dim)
    with torch.no_grad():
        h = G.common(z)
        torch.testing.assert_close(slab, h[:, :, s : s + R // 32])
        torch.testing.assert_close(fake_sub, out)
        torch.testing.assert_close(seen["D.low"][1], G.low(h))

    res = family.loss(family.phase("E_H", ("E_H",)), nets, mb, None, cfg)
    with torch.no_grad():
        target = x[:, :, r : r + R // 8]
        expected = F.l1_loss(G.high(E_H(target)), target)
    assert res.stats["loss/E_H"] == pytest.approx(expected.item(), rel=1e-5)

    res = family.loss(family.phase("E_G", ("E_G",)), nets, mb, None, cfg)
    with torch.no_grad():  # E^H on the 8 consecutive R/8-slice chunks, concatenated along depth
        feats = torch.cat([E_H(x[:, :, i : i + R // 8]) for i in range(0, R, R // 8)], dim=2)
        torch.testing.assert_close(seen["E_G"][0], feats, rtol=1e-5, atol=1e-6)
        rec_sub, rec_low = G(E_G(feats), s)
        expected = (F.l1_loss(rec_sub, target) + F.l1_loss(rec_low, x[..., ::4, ::4, ::4])) / 2
    assert res.stats["loss/E_G"] == pytest.approx(expected.item(), rel=1e-5)
    for hook in hooks:
        hook.remove()


# --------------------------------------------------------------------------------------------- the CLI


def _cli(*args: str, timeout: int = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "medgan3d", *args],
        env=ENV,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
    )
    assert done.returncode == 0, f"medgan3d {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float64).transpose(2, 1, 0), img.affine  # NIfTI stores (W, H, D)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM map, Gaussian σ 1.5 with 11 taps, 'valid' region, data range 2 (Wang et al. 2004)."""
    from scipy.ndimage import gaussian_filter

    def blur(v: np.ndarray) -> np.ndarray:
        return gaussian_filter(v, 1.5, truncate=5 / 1.5, mode="constant")[5:-5, 5:-5, 5:-5]

    c1, c2 = 0.02**2, 0.06**2
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    return float((((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))).mean())


def test_cli_end_to_end(tmp_path: Path) -> None:
    """prepare → train → generate (slabs and whole) → project (scan, dataset features) → evaluate."""
    data, runs = tmp_path / "DATA", tmp_path / "RUNS"
    _cli("prepare", "brain-phantom", "-n", "8", "--shape", "32", "-o", str(data))
    manifest = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    _cli(
        "train",
        "--data",
        str(data),
        "--config",
        "hagan-tiny",
        "--kimg",
        "0.016",
        "--tick",
        "0.008",
        "--out",
        str(runs),
    )
    (run,) = runs.iterdir()
    assert _state(run)["cur_nimg"] == 16 and _state(run)["batch_idx"] == 4  # batch 4 = 2 × 2, 4 iterations

    s1, s2 = tmp_path / "S1", tmp_path / "S2"
    _cli(
        "generate", str(run), "-n", "2", "-o", str(s1), "--chunk-depth", "3"
    )  # slabs 3+3+2 of 8 latent slices
    _cli("generate", str(run), "-n", "2", "-o", str(s2), "--chunk-depth", "0")
    for name in ("seed0000.nii.gz", "seed0001.nii.gz"):
        chunked, affine = _volume(s1 / name)
        whole, _ = _volume(s2 / name)
        assert chunked.shape == (32, 32, 32)
        np.testing.assert_allclose(affine, np.asarray(manifest["affine"]), atol=1e-5)
        np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-4 * np.abs(whole).max())
    assert not np.allclose(_volume(s1 / "seed0000.nii.gz")[0], _volume(s1 / "seed0001.nii.gz")[0])

    proj = tmp_path / "P"
    _cli("project", str(run), str(s1 / "seed0000.nii.gz"), "-o", str(proj), "--steps", "2")
    out = proj / "seed0000"
    assert {"reconstruction.nii.gz", "target.nii.gz", "latent.npy", "metrics.json", "preview.png"} <= {
        p.name for p in out.iterdir()
    }
    assert np.load(out / "latent.npy").shape == (tiny_model().latent_dim,)
    rec, rec_affine = _volume(out / "reconstruction.nii.gz")
    target, target_affine = _volume(out / "target.nii.gz")
    np.testing.assert_array_equal(rec_affine, target_affine)
    assert rec.shape == target.shape == (32, 32, 32)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in ("encoder", "refined"):
        assert np.isfinite(metrics[key]["psnr_db"]) and -1 <= metrics[key]["ssim"] <= 1
    side = json.loads((out / "reconstruction.json").read_text(encoding="utf-8"))  # marked synthetic
    assert side["synthetic"] is True and side["tool"] == "project" and side["family"] == "hagan"
    assert (
        side["kimg"] == 0.016
        and side["label"].endswith("refined 2 steps")
        and side["clipped_to_window"] is False
    )
    assert (
        nib.load(out / "reconstruction.nii.gz").header["descrip"].tobytes().startswith(b"synthetic, medgan3d")
    )
    assert not (out / "target.json").exists()
    # the written reconstruction is the refined one: its scores, recomputed here on [-1, 1]
    from medgan3d.project import read_scan

    lo, hi = read_scan(s1 / "seed0000.nii.gz", Manifest.load(data))[1]["intensity_range"]
    rec_n, target_n = ((v - lo) * (2 / (hi - lo)) - 1 for v in (rec, target))
    mse = float(np.mean((rec_n - target_n) ** 2))
    assert metrics["refined"]["mse"] == pytest.approx(mse, rel=1e-3)
    assert metrics["refined"]["psnr_db"] == pytest.approx(10 * np.log10(4 / mse), abs=1e-2)
    assert metrics["refined"]["ssim"] == pytest.approx(_ssim(rec_n, target_n), abs=1e-3)
    assert (out / "preview.png").stat().st_size > 0

    feats = tmp_path / "F"
    _cli("project", str(run), "--data", str(data), "--features", "-o", str(feats))
    z = np.load(feats / "features.npy")
    rows = (feats / "features.csv").read_text(encoding="utf-8").splitlines()
    assert z.shape == (len(manifest["items"]), tiny_model().latent_dim) == (8, 64) and np.isfinite(z).all()
    assert rows[0] == "index,source,split" and len(rows) == 1 + len(z)
    assert [r.split(",")[1] for r in rows[1:]] == [item["source"] for item in manifest["items"]]

    ev = tmp_path / "E"
    _cli("evaluate", str(run), "--data", str(data), "-n", "8", "-o", str(ev), "--bootstrap", "0")
    scores = json.loads((ev / "metrics.json").read_text(encoding="utf-8"))
    for key in ("fid_avg", "fid_3d", "kid", "mmd", "ms_ssim"):
        assert np.isfinite(scores[key]), key


# --------------------------------------------------------------------------------------------- info


@pytest.mark.parametrize(
    "name, counts",
    [
        (
            "hagan-256",
            {"G": 52_518_210, "D": 7_402_258, "E_H": 161_152, "E_G": 19_663_264, "total": 79_744_884},
        ),
        (
            "hagan-128",
            {"G": 52_518_210, "D": 7_241_442, "E_H": 161_152, "E_G": 19_663_168, "total": 79_583_972},
        ),
    ],
)
def test_info_counts_the_published_networks(name: str, counts: dict[str, int]) -> None:
    from medgan3d.summary import summarize

    summary = summarize(load_preset(name)).to_json()
    R = int(name.split("-")[1])
    assert summary["params"] == counts
    assert summary["output_shape"] == [1, R, R, R]


def test_bf16_iterations_are_finite_and_move_every_network(brain32: Path, tmp_path: Path) -> None:
    """bf16 autocast through all four steps (spectral norm, GroupNorm, the folded up-sampling conv)."""
    cfg = hagan_cfg(kimg=0.004, tick_kimg=0.004, bf16=True)
    run = train(brain32, tiny_model(), cfg, outdir=tmp_path, preset="hagan-tiny")
    stats = json.loads((run / "stats.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    for key in ("loss/D", "loss/G", "loss/E_H", "loss/E_G"):
        assert np.isfinite(stats[key]), key
    assert stats["skipped_total"] == 0
    weights = _weights(run)
    assert all(torch.isfinite(v).all() for v in weights.values())
    initial = _initial(tiny_model(), cfg)
    for name in NETWORKS:
        assert _moved(weights, initial, f"{name}.") > 0, name


def test_generate_on_a_saved_network_folder(tmp_path: Path) -> None:
    """The README's API: build the preset's G, save_pretrained, `medgan3d generate DIR` samples it."""
    from medgan3d.data import read_volume
    from medgan3d.generate import sample_to_nifti

    torch.manual_seed(0)
    G = tiny_model().build_generator().eval()
    G.save_pretrained(tmp_path / "G")
    (path,) = sample_to_nifti(tmp_path / "G", [5], tmp_path / "out", chunk_depth=3)
    z = torch.randn(G.z_dim, generator=torch.Generator().manual_seed(5))[None]
    with torch.no_grad():
        expected = G.generate(z)[0, 0].numpy()  # whole volume at once; the file was decoded in slabs of 3
    got, _ = read_volume(path)  # back to [D, H, W]
    assert got.shape == (32, 32, 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)

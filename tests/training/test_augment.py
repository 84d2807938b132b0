"""Discriminator augmentation: each transform in 2D and 3D against an independent computation, identity at
p = 0, gradients to the input, the adaptive p's direction and speed, every family's D inputs augmented, p
checkpointed and a resumed ADA run bit-identical."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import ndimage

from medgan3d.config import load_preset
from medgan3d.data import VolumeDataset, make_brain_phantoms
from medgan3d.training import augment as A
from medgan3d.training import loop
from medgan3d.training.checkpoint import list_checkpoints
from medgan3d.training.family import family_for
from medgan3d.training.loop import TrainConfig, train

SHAPES = {2: (1, 1, 8, 6), 3: (1, 1, 6, 8, 7)}


def _x(dims: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    shape = (batch, *SHAPES[dims][1:])
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _reference_affine(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """scipy's linear resampling at the same map: output voxel i samples the input at c + M(i - c) + t
    (c the centre, voxel units), reflecting about the border (scipy's 'reflect' = half-sample symmetric)."""
    n = x.ndim
    centre = (np.array(x.shape) - 1) / 2
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in x.shape], indexing="ij")).reshape(n, -1)
    coords = matrix[:n, :n] @ (grid - centre[:, None]) + matrix[:n, n : n + 1] + centre[:, None]
    return ndimage.map_coordinates(x, coords, order=1, mode="reflect").reshape(x.shape)


# ---------------------------------------------------------------------------------------- geometric


@pytest.mark.parametrize("dims", [2, 3])
def test_quarter_turns_equal_torch_rot90_in_every_plane(dims: int) -> None:
    square = {2: (1, 1, 6, 6), 3: (1, 1, 6, 6, 6)}[dims]
    x = torch.randn(4, *square[1:])
    for plane in A._all_planes(tuple(range(dims))):
        got = A.warp(x, A.rot90_matrix(torch.arange(4), dims, plane))
        for k in range(4):
            want = torch.rot90(x[k], k, dims=(plane[0] + 1, plane[1] + 1))
            torch.testing.assert_close(got[k], want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_flips_equal_torch_flip(dims: int) -> None:
    x = _x(dims, batch=dims)
    flips = torch.eye(dims)  # sample i flipped along axis i
    got = A.warp(x, A.flip_matrix(flips))
    for i in range(dims):
        torch.testing.assert_close(got[i], torch.flip(x[i], dims=(i + 1,)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_integer_translation_is_a_roll_with_symmetric_padding(dims: int) -> None:
    x = _x(dims)
    shift = [2, -1, 3][:dims]
    got = A.warp(x, A.translate_matrix(torch.tensor([shift], dtype=torch.float32)))
    pad = 4
    padded = np.pad(x[0, 0].numpy(), pad, mode="symmetric")
    want = padded[tuple(slice(pad - s, pad - s + n) for s, n in zip(shift, x.shape[2:], strict=True))]
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kind", ["scale", "aniso", "rotate", "xfrac"])
def test_fractional_maps_match_scipy_linear_resampling(dims: int, kind: str) -> None:
    x = _x(dims, seed=1)
    if kind == "scale":
        m = A.scale_matrix(torch.full((1, dims), 1.3))
    elif kind == "aniso":
        m = A.scale_matrix(torch.tensor([[1.25, 0.8, 1.1][:dims]]))
    elif kind == "rotate":
        m = A.plane_rotation(torch.tensor([0.4]), dims, (0, 1))
    else:
        m = A.translate_matrix(torch.tensor([[0.3, -1.7, 0.55][:dims]]))
    got = A.warp(x, m)
    want = _reference_affine(x[0, 0].double().numpy(), m[0].double().numpy())
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-4)


# ---------------------------------------------------------------------------------------- intensity


def test_gamma_curve_against_numpy() -> None:
    x = torch.linspace(-1.2, 1.2, 50).view(1, 1, 50)
    got = A.gamma_curve(x, torch.tensor([0.7]))[0, 0].numpy()
    u = (x[0, 0].numpy().astype(np.float64) + 1) / 2
    want = np.where(u > A.GAMMA_EPS, np.maximum(u, A.GAMMA_EPS) ** 0.7, u * A.GAMMA_EPS ** (0.7 - 1)) * 2 - 1
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_cutout_zeroes_the_box_about_the_centre(dims: int) -> None:
    shape = (1, 1, *[8] * dims)
    mask = A.cutout_mask(shape, torch.full((1, dims), 0.5), 0.5)
    want = np.ones(shape)
    want[(0, 0, *[slice(2, 6)] * dims)] = 0  # centres (i + 0.5)/8 within 0.25 of 0.5: i = 2 .. 5
    np.testing.assert_array_equal(mask.numpy(), want)


def _only(name: str, dims: int, p: float = 1.0) -> A.AugmentPipe:
    axes = A.AXES[dims]
    spec = A.AugmentSpec({name: 1.0}, axes, A._all_planes(axes), axes)
    return A.AugmentPipe("fixed", p, spec, dims, torch.device("cpu"))


@pytest.mark.parametrize("dims", [2, 3])
def test_brightness_contrast_noise_follow_their_formulas(dims: int) -> None:
    x = _x(dims, batch=6)
    torch.manual_seed(0)
    bright = _only("brightness", dims)(x)
    offsets = (bright - x).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-6)  # one offset per sample
    torch.manual_seed(0)
    assert torch.allclose(offsets[:, 0], torch.randn(6) * A.BRIGHTNESS_STD, atol=1e-6)
    torch.manual_seed(0)
    ratio = (_only("contrast", dims)(x) / x).flatten(1)
    torch.manual_seed(0)
    assert torch.allclose(
        ratio, torch.exp2(torch.randn(6) * A.CONTRAST_STD)[:, None].expand_as(ratio), atol=1e-5
    )
    noisy = _only("noise", dims)(x)
    assert (noisy - x).abs().max() > 0 and (noisy - x).flatten(1).std(1).max() < 0.5


# ---------------------------------------------------------------------------------------- the pipe


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("preset", sorted(A.PRESETS))
def test_identity_at_p0_and_changes_at_p1(dims: int, preset: str) -> None:
    x = _x(dims, batch=8)
    spec = A.preset_spec(preset, dims)
    assert torch.equal(A.AugmentPipe("fixed", 0.0, spec, dims, torch.device("cpu"))(x), x)
    out = A.AugmentPipe("fixed", 1.0, spec, dims, torch.device("cpu"))(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert all(not torch.equal(out[i], x[i]) for i in range(8))


def test_presets_allow_what_they_say() -> None:
    lat = A.preset_spec("laterality", 3)
    assert "xflip" not in lat.multipliers and lat.flip_axes == ()
    plane = A.preset_spec("in-plane", 3)
    assert (
        plane.planes == (("H", "W"),) and set(plane.flip_axes) == {"H", "W"} and "D" not in plane.scale_axes
    )
    assert set(A.preset_spec("intensity", 3).multipliers) == set(A.INTENSITY)
    # in-plane: the depth profile of every sample is only shuffled within slices (no change along D)
    x = torch.rand(16, 1, 4, 8, 8)
    x[:, :, 1] = 5.0  # a marked slice
    spec = A.AugmentSpec({k: 1.0 for k in A.GEOMETRIC}, plane.flip_axes, plane.planes, plane.scale_axes)
    out = A.AugmentPipe("fixed", 1.0, spec, 3, torch.device("cpu"))(x)
    torch.testing.assert_close(out[:, :, 1], torch.full_like(out[:, :, 1], 5.0))


@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_the_input(dims: int) -> None:
    x = _x(dims, batch=4).requires_grad_(True)
    pipe = A.AugmentPipe("fixed", 1.0, A.preset_spec("all", dims), dims, torch.device("cpu"))
    weight = torch.randn(x.shape)
    (pipe(x) * weight).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and (x.grad.flatten(1).abs().sum(1) > 0).all()
    xd = _x(dims, seed=2).double().requires_grad_(True)
    m = A.plane_rotation(torch.tensor([0.3]), dims, (0, 1)).double()
    assert torch.autograd.gradcheck(lambda t: A.warp(t, m), (xd,))


def test_parse_mode() -> None:
    assert A.parse_mode("ada") == ("ada", 0.0) and A.parse_mode("fixed:0.25") == ("fixed", 0.25)
    assert A.parse_mode("diffaugment") == ("diffaugment", 1.0) and A.parse_mode("none") == ("none", 0.0)
    for bad in ("fixed:1.5", "fixed:x", "adaa", "fixed:"):
        with pytest.raises(ValueError, match="aug"):
            A.parse_mode(bad)


# ---------------------------------------------------------------------------------------- adaptive p


def test_the_heuristic_moves_p_at_the_published_speed() -> None:
    """Overfitting signs (r_t = 1 > 0.6) raise p by N/(ada_kimg·1000) per adjustment, signs below the target
    lower it, p stays in [0, 1]; 0 → 1 takes exactly ada_kimg thousand images."""
    pipe = A.AugmentPipe(
        "ada", 0.0, A.preset_spec("all", 3), 3, torch.device("cpu"), target=0.6, ada_kimg=0.5
    )
    batch = 25
    for step in range(20):  # 20 iterations of 25 images = 0.5 kimg
        pipe.accumulate(torch.tensor(1.0))
        pipe.end_iteration(step, batch)
        if step % 4 == 3:
            assert float(pipe.p) == pytest.approx(min(1.0, (step + 1) * batch / 500), abs=1e-6)
    assert float(pipe.p) == pytest.approx(1.0)
    pipe.accumulate(torch.tensor(0.9))
    for step in range(20, 24):
        pipe.end_iteration(step, batch)
    assert float(pipe.p) == 1.0 and float(pipe.rt) == pytest.approx(0.9)  # clamped at 1
    for step in range(24, 36):
        pipe.accumulate(torch.tensor(0.2))  # below the target: p falls
        pipe.end_iteration(step, batch)
    assert float(pipe.p) == pytest.approx(1 - 12 * batch / 500, abs=1e-6)
    for step in range(36, 40):  # no D phase in an interval: p stays
        pipe.end_iteration(step, batch)
    assert float(pipe.p) == pytest.approx(1 - 12 * batch / 500, abs=1e-6)
    for step in range(40, 80):
        pipe.accumulate(torch.tensor(-1.0))
        pipe.end_iteration(step, batch)
    assert float(pipe.p) == 0.0  # clamped at 0


def test_fixed_and_diffaugment_keep_p() -> None:
    pipe = A.AugmentPipe("fixed", 0.3, A.preset_spec("all", 3), 3, torch.device("cpu"))
    for step in range(8):
        pipe.accumulate(torch.tensor(1.0))
        pipe.end_iteration(step, 64)
    assert float(pipe.p) == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------- in the loop


@pytest.mark.parametrize(
    "preset", ["tiny", "hagan-tiny", "wgan-gp-tiny", "vae-gan-tiny", "alpha-gan-tiny", "alpha-wgan-gp-tiny"]
)
def test_every_family_augments_what_its_discriminator_sees(
    preset: str, brain16: Path, tmp_path: Path
) -> None:
    """Every forward of the image discriminator(s) gets augmented inputs in each phase that calls it, and
    the D phase reports sign(D(real)) for the heuristic."""
    model = load_preset(preset).model
    data = brain16
    if preset == "hagan-tiny":
        data = tmp_path / "brain32"
        make_brain_phantoms(4, data, seed=0, shape=(32, 32, 32))
    family = family_for(model)
    cfg = loop.resolve_loss(TrainConfig(batch=2, batch_gpu=2, seed=0, aug="fixed:1"), family)
    if preset == "wgan-gp-tiny":
        cfg = loop.resolve_loss(
            TrainConfig(batch=2, batch_gpu=2, seed=0, aug="fixed:1", loss={"n_critic": 1}), family
        )
    nets = family.build(model, cfg, torch.device("cpu"), False, None)
    pipe = A.make_pipe(cfg, model.spatial_dims, torch.device("cpu"))
    assert pipe is not None
    pipe.mode = "ada"  # accumulate the signs, keep p = 1
    seen: list[tuple[str, tuple[int, ...]]] = []
    phase_now = [""]
    original_call = A.AugmentPipe.__call__

    def recording(self: A.AugmentPipe, x: torch.Tensor) -> torch.Tensor:
        seen.append((phase_now[0], tuple(x.shape)))
        return original_call(self, x)

    original_phase = loop.run_phase

    def tracked(fam, phase, *args, **kw):  # type: ignore[no-untyped-def]
        phase_now[0] = phase.name
        return original_phase(fam, phase, *args, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(A.AugmentPipe, "__call__", recording)
    mp.setattr(loop, "run_phase", tracked)
    try:
        pipe.install(family.augmented_modules(nets))
        reals = loop.RealBatches(VolumeDataset(data, split="train"), cfg, loop.Dist(), 1)
        state = loop.TrainState(extra=family.initial_extra_state())
        for _ in range(2):
            loop.train_step(family, nets, reals, state, cfg, loop.Dist(), 1, pipe)
    finally:
        mp.undo()
    phases_with_d = {p for p, _ in seen}
    assert "D" in phases_with_d or "Dmain" in phases_with_d
    assert float(pipe.sign_count) > 0
    if preset == "tiny":
        assert {"Gmain", "Dmain", "Dreg"} <= phases_with_d  # G's loss and the R1 regulariser see them too
    if preset == "hagan-tiny":
        shapes = {s for _, s in seen}
        assert (2, 1, 4, 32, 32) in shapes and (2, 1, 8, 8, 8) in shapes  # sub-volume and low-res volume
    if preset == "wgan-gp-tiny":
        assert sum(p == "D" for p, _ in seen) == 2 * 3  # real, fake, interpolates (gradient penalty) x 2 its


def _tiny(**kw: object) -> TrainConfig:
    base = dict(
        batch=8,
        batch_gpu=4,
        kimg=0.096,
        tick_kimg=0.032,
        snapshot_ticks=100,
        grid=2,
        seed=3,
        aug="ada",
        ada_kimg=0.05,
    )
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def test_ada_run_logs_p_saves_it_and_resumes_bit_identically(brain16: Path, tmp_path: Path) -> None:
    model = load_preset("tiny").model
    full = train(brain16, model, _tiny(), outdir=tmp_path / "a", preset="tiny")
    half = train(brain16, model, _tiny(kimg=0.048), outdir=tmp_path / "b", preset="tiny")
    resumed = train(brain16, model, _tiny(), resume=half)
    a, b = list_checkpoints(full)[-1], list_checkpoints(resumed)[-1]
    for net in ("G", "G_ema", "D"):
        wa, wb = load_file(a / net / "model.safetensors"), load_file(b / net / "model.safetensors")
        assert all(torch.equal(wa[k], wb[k]) for k in wa), net
    ta, tb = load_file(a / "training_state.safetensors"), load_file(b / "training_state.safetensors")
    for key in ("augment.p", "augment.sign_sum", "augment.sign_count", "augment.rt", "augment.nimg"):
        assert torch.equal(ta[key], tb[key]), key
    stats = [json.loads(line) for line in (full / "stats.jsonl").read_text(encoding="utf-8").splitlines()]
    ps = [row["aug/p"] for row in stats]
    assert all(0 <= p <= 1 for p in ps) and "aug/rt" in stats[-1]
    assert ps[-1] == pytest.approx(float(ta["augment.p"]))
    step = 4 * 8 / 50  # p moves by ±0.64 per adjustment at ada_kimg 0.05: it must have moved
    assert any(math.isclose(p, k * step, abs_tol=1e-5) or p in (0.0, 1.0) for p in ps for k in range(3))
    assert (
        __import__("yaml").safe_load((full / "config.yaml").read_text(encoding="utf-8"))["train"]["aug"]
        == "ada"
    )


def test_aug_none_writes_no_augment_state(brain16: Path, tmp_path: Path) -> None:
    run = train(
        brain16,
        load_preset("tiny").model,
        _tiny(aug="none", kimg=0.016, tick_kimg=0.016),
        outdir=tmp_path,
        preset="tiny",
    )
    tensors = load_file(list_checkpoints(run)[-1] / "training_state.safetensors")
    assert not any(k.startswith("augment.") for k in tensors)
    stats = json.loads((run / "stats.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert "aug/p" not in stats


def test_train_config_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="aug 'sometimes'"):
        TrainConfig(aug="sometimes")
    with pytest.raises(ValueError, match="aug_preset"):
        TrainConfig(aug="ada", aug_preset="most")
    with pytest.raises(ValueError, match="ada_target"):
        TrainConfig(ada_target=1.5)
    with pytest.raises(ValueError, match="ada_kimg"):
        TrainConfig(ada_kimg=0)


@pytest.mark.parametrize(
    "preset, warm, start", [("tiny", 0, 14), ("hagan-tiny", 0, 1), ("wgan-gp-tiny", 3, 5)]
)
def test_no_device_reads_inside_augmented_iterations(preset: str, warm: int, start: int) -> None:
    """With ADA on, iterations (including an adjustment of p) still read nothing from the device."""
    from medgan3d.training.measure import DeviceReads
    from tests.training.test_loop_syncs import _bundle

    family, nets, reals, state, cfg, d = _bundle(preset, torch.device("cpu"), aug="ada", ada_kimg=0.01)
    pipe = A.make_pipe(cfg, 3, d.device)
    assert pipe is not None
    pipe.install(family.augmented_modules(nets))
    state.batch_idx = warm  # two iterations that create every optimizer state
    for _ in range(2):
        loop.train_step(family, nets, reals, state, cfg, d, 2, pipe)
    state.batch_idx = start
    with DeviceReads() as counter:
        for _ in range(4):
            loop.train_step(family, nets, reals, state, cfg, d, 2, pipe)
    assert counter.reads == [], f"{len(counter.reads)} device reads; first:\n{counter.reads[0]}"
    assert float(pipe.sign_count) > 0 and -1 <= float(pipe.rt) <= 1  # signs since the adjustment after 15

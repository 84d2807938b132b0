"""The one sampler: the volumes `generate --seeds` writes are the volumes `evaluate` and snapshots score."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medgan3d.cli.evaluate import _fake_volumes
from medgan3d.config import load_preset
from medgan3d.data import Manifest, make_brain_phantoms
from medgan3d.generate import sample_to_nifti
from medgan3d.metrics import evaluate as evaluate_module
from medgan3d.sampling import BATCH_SIZE, sample, sample_batches, seed_latents


@pytest.fixture(scope="module")
def G() -> torch.nn.Module:
    torch.manual_seed(0)
    G = load_preset("tiny").model.build_generator()
    with torch.no_grad():  # non-zero noise strengths, so the noise mode shows in the volumes
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
    return G


def test_each_volume_is_its_own_seeds_z_through_G(G) -> None:
    """Against an independent computation: one seed at a time, z from its own torch.Generator."""
    seeds = [7, 0, 3]
    got = sample(G, seeds, psi=0.7)
    for i, s in enumerate(seeds):
        z = torch.randn(G.z_dim, generator=torch.Generator().manual_seed(s))[None]
        with torch.no_grad():
            want = G(z, truncation_psi=0.7, noise_mode="const")
        torch.testing.assert_close(got[i : i + 1], want, rtol=1e-5, atol=1e-6)
    assert torch.equal(seed_latents(G.z_dim, [3]), seed_latents(G.z_dim, [7, 0, 3])[2:])


def test_batches_rng_and_mode(G) -> None:
    seeds = list(range(10))
    assert BATCH_SIZE == 1 and [c for c, _ in sample_batches(G, seeds)] == [[s] for s in seeds]
    chunks = [c for c, _ in sample_batches(G, seeds, batch_size=8)]
    assert chunks == [seeds[:8], seeds[8:]]
    torch.testing.assert_close(
        torch.cat([v for _, v in sample_batches(G, seeds, batch_size=8)]), sample(G, seeds)
    )
    state = torch.random.get_rng_state()
    G.train()
    a = sample(G, seeds[:3], noise_mode="random")
    assert torch.equal(state, torch.random.get_rng_state()) and G.training  # the caller's RNG and mode kept
    G.eval()
    assert torch.equal(a, sample(G, seeds[:3], noise_mode="random"))  # seeded: reproducible
    assert not torch.equal(a, sample(G, seeds[:3])) and not torch.equal(
        a, sample(G, seeds[:3], noise_mode="none")
    )
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        sample(G, seeds, noise_mode="fresh")


def test_generate_writes_what_evaluate_scores(G, tmp_path: Path, monkeypatch) -> None:
    """`generate --seeds 0-9` and `evaluate -n 10 --seed 0` (and evaluate_generator, as snapshots call it) see
    bit-identical volumes; the files hold them (model units with --raw: to float rounding of the identity map)."""
    import medgan3d.generate as generate_module

    G.save_pretrained(tmp_path / "G")
    n = 10
    handed: list[np.ndarray] = []  # what generate writes, before the NIfTI writer
    real_write = generate_module.write_synthetic

    def record(path, vol, *args, **kwargs):
        handed.append(np.array(vol))
        return real_write(path, vol, *args, **kwargs)

    monkeypatch.setattr(generate_module, "write_synthetic", record)
    written = sample_to_nifti(tmp_path / "G", list(range(n)), tmp_path / "gen", raw=True, clip=False)
    generated = np.stack(handed)
    files = np.stack(
        [np.asarray(nib.load(p).dataobj).transpose(2, 1, 0) for p in written]
    )  # NIfTI: (W, H, D)
    np.testing.assert_allclose(files, generated, rtol=0, atol=1e-6)

    data = tmp_path / "data"  # evaluate reads the dataset's manifest once, at its entry point
    make_brain_phantoms(2, data, seed=0, shape=(16, 16, 16))
    cli, source, _ = _fake_volumes(tmp_path / "G", None, Manifest.load(data), n, 0, 1.0, "auto", "all")
    assert source["seeds"] == [0, n - 1] and source["noise_mode"] == "const"
    assert np.array_equal(cli[:, 0].numpy(), generated)

    seen: list[torch.Tensor] = []

    def capture(fake, data_root, settings):
        seen.append(fake)
        return {"provenance": {}}

    monkeypatch.setattr(evaluate_module, "evaluate_volumes", capture)
    result = evaluate_module.evaluate_generator(G, data, num_samples=n, seed=0)
    assert result["provenance"]["generator"]["seeds"] == [0, n - 1]
    assert np.array_equal(seen[0][:, 0].numpy(), generated)

"""`medgan3d demo`: the whole pipeline on an embedded dataset (grows as the pipeline lands)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for everything the demo writes."),
    config: str = typer.Option("tiny", "--config", "-c", help="Preset to build."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build a preset, print its summary, sample one volume from the (untrained) generator, save NIfTI + PNG."""
    import nibabel as nib
    import numpy as np
    import torch

    from medgan3d.cli.info import info
    from medgan3d.config import load_preset
    from medgan3d.modeling import atomic_write
    from medgan3d.viz import save_slice_grid

    info(config=config, as_json=False)
    preset = load_preset(config)
    torch.manual_seed(seed)
    G = preset.model.build_generator().eval()
    with torch.no_grad():
        volume = G(torch.randn(1, G.z_dim), noise_mode="const")[0, 0].numpy()
    out.mkdir(parents=True, exist_ok=True)
    G.save_pretrained(out / "generator")
    # [D, H, W] with D axial (inferior→superior) is [k, j, i]; NIfTI wants [i, j, k] in RAS.
    image = nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine=np.eye(4))
    nifti = out / "sample_untrained.nii.gz"
    atomic_write(nifti, lambda p: nib.save(image, p))
    png = save_slice_grid([volume], out / "sample_untrained.png", vrange=(volume.min(), volume.max()))
    typer.echo(f"untrained {preset.name} generator: {out / 'generator'}")
    typer.echo(f"sample volume {list(volume.shape)}: {nifti}")
    typer.echo(f"centre slices: {png}")

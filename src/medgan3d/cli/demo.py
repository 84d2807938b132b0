"""`medgan3d demo`: the whole pipeline on the embedded brain phantom, offline, minutes on a laptop CPU.

prepare → pretrain the 2D twin on axial slices → inflate it (inflate-1, G and D) → train 3D → generate →
evaluate → project a held-out volume, mix styles, walk in W (3D-StyleGAN's tools); then a short HA-GAN leg at 32³ (prepare → train hagan-tiny → generate at full resolution → project a
raw scan through the encoder). Each step is the same command a user would type; the demo prints it first.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from medgan3d.cli import command
from medgan3d.errors import MedganError

# The 3D leg's budget, measured: on the 48 brain phantoms at 16³ the tiny model shows the head's outline and
# the brain's brightness after 6 kimg, the cerebellum and brain stem below the occipital lobe in the sagittal
# view only after about 12 (docs/results.md, "The demo").
KIMG_3D = 12.0
# ADA (Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020, §3) with p
# free to move from 0 to 1 within 10 kimg (the default 500 kimg could not move p in a run this short).
DEMO_3D = ["--aug", "ada", "--ada-kimg", "10"]


class _Steps:
    """Runs each step through the command line the demo was itself invoked from (its root click group), so the
    demo needs no import of the app that registers it."""

    def __init__(self, ctx: typer.Context) -> None:
        self.cli = ctx.find_root().command

    def __call__(self, args: list[str]) -> None:
        """One step as the user would type it; a failed step (already reported on its line) stops the demo."""
        typer.secho("\n$ medgan3d " + shlex.join(args), bold=True)
        code = self.cli.main(args, prog_name="medgan3d", standalone_mode=False)  # exit code: the return value
        if isinstance(code, int) and code:
            raise typer.Exit(code)


@command
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for everything the demo writes."),
    config: str = typer.Option("tiny", "--config", "-c", help="3D preset (its 2D twin is pretrained)."),
    subjects: int = typer.Option(48, "-n", "--num", min=4, help="Brain phantom subjects to generate."),
    kimg_2d: float | None = typer.Option(
        None,
        "--kimg-2d",
        help="2D pretraining length in thousands of slices (default: the preset's pretrain_kimg, tiny 4).",
    ),
    kimg_3d: float = typer.Option(KIMG_3D, "--kimg-3d", help="3D training length (thousands of volumes)."),
    samples: int = typer.Option(32, "--num-eval", min=2, help="Volumes generated for the evaluation."),
    kimg_hagan: float = typer.Option(0.2, "--kimg-hagan", min=0.0, help="HA-GAN leg length (0: skip it)."),
    proj_steps: int = typer.Option(
        1000,
        "--proj-steps",
        min=0,
        help="Steps projecting a held-out volume (0: skip project/mix/interpolate).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the phantoms, the runs and the evaluation."),
    old_subjects: int | None = typer.Option(None, "--subjects", hidden=True, help="Old name of --num."),
    old_samples: int | None = typer.Option(None, "--samples", hidden=True, help="Old name of --num-eval."),
) -> None:
    """Run the whole pipeline on an embedded dataset and print where the outputs are."""
    from medgan3d.config import load_preset
    from medgan3d.data.manifest import MANIFEST_NAME
    from medgan3d.training.checkpoint import list_checkpoints

    _run = _Steps(ctx)
    subjects = subjects if old_subjects is None else old_subjects
    samples = samples if old_samples is None else old_samples
    preset = load_preset(config)
    shape = "x".join(str(s) for s in preset.model.output_shape[1:])
    data, runs = out / "data" / f"brain-{shape}", out / "runs"
    if not (data / MANIFEST_NAME).is_file():
        _run(
            [
                "prepare",
                "brain-phantom",
                "-n",
                str(subjects),
                "-o",
                str(data),
                "--shape",
                shape,
                "--seed",
                str(seed),
            ]
        )
    _run(["info", "--config", config])
    common = ["--data", str(data), "--config", config, "--out", str(runs), "--seed", str(seed)]
    _run(
        [
            "pretrain",
            *common,
            *([] if kimg_2d is None else ["--kimg", str(kimg_2d)]),
            "--batch",
            "16",
            "--batch-gpu",
            "8",
            "--desc",
            "demo-2d",
        ]
    )
    run2d = _latest_run(runs, "demo-2d")
    _run(
        [
            "train",
            *common,
            "--kimg",
            str(kimg_3d),
            "--init-from",
            str(run2d),
            "--inflate",
            "inflate-1",
            "--inflate-parts",
            "GD",
            *DEMO_3D,
            "--desc",
            "demo-3d",
        ]
    )
    run3d = _latest_run(runs, "demo-3d")
    _run(["generate", str(run3d), "-n", "8", "--trunc", "0.8", "-o", str(out / "samples")])
    _run(
        [
            "evaluate",
            str(run3d),
            "--data",
            str(data),
            "-n",
            str(samples),
            "--metrics",
            "fid,mmd,ms_ssim,psnr,memorisation",
            "--bootstrap",
            "50",
            "-o",
            str(out / "evaluation"),
        ]
    )
    last = list_checkpoints(run3d)[-1]
    tools = _tools_leg(_run, out, run3d, data, proj_steps) if proj_steps > 0 else []
    hagan = _hagan_leg(_run, out, subjects, kimg_hagan, seed) if kimg_hagan > 0 else []
    typer.secho("\nDemo finished. Outputs:", bold=True, fg="green")
    for label, path in [
        ("prepared dataset", data),
        ("2D pretraining run", run2d),
        ("3D run (stats.jsonl, TensorBoard, fakes*.png)", run3d),
        ("3D checkpoint", last),
        ("generated NIfTI volumes (+ preview.png)", out / "samples"),
        ("evaluation report", out / "evaluation" / "report.html"),
        *tools,
        *hagan,
    ]:
        typer.echo(f"  {label:<48} {path}")
    typer.echo(f"  TensorBoard: tensorboard --logdir {runs}")
    _what_to_expect(run3d, kimg_3d, samples)


def _what_to_expect(run: Path, kimg: float, samples: int) -> None:
    """What the pictures and numbers of a minutes-long CPU run can and cannot show."""
    typer.secho("\nWhat to expect:", bold=True)
    shorter = (
        f"  This run's {kimg:g} kimg is shorter than the demo's {KIMG_3D:g}: at 6 kimg the samples were still\n"
        "  smooth head-shaped blobs, all alike (bright brain, darker centre).\n"
        if kimg < KIMG_3D
        else ""
    )
    typer.echo(
        f"  Pictures: compare {run / 'reals.png'} with the last fakes*.png beside it. After {KIMG_3D:g} kimg on\n"
        "  the 16³ phantoms most samples show the head's outline on a black background, the cerebellum and\n"
        "  brain stem below the back of the brain with the notch in front of them (sagittal) and, in some, the\n"
        "  gap between the temporal lobes (coronal); they are blurrier than the reals, some are lopsided, and\n"
        "  the midline fissure and the texture need far longer training (--kimg-3d). Augmentation (--aug ada)\n"
        "  rises to p ≈ 0.1 in the first 2 kimg, while the discriminator is ahead, and falls back to 0: at\n"
        "  this length D does not overfit the training volumes (docs/results.md, 'The demo'). A check that the\n"
        "  pipeline works and learns anatomy, not a trained model.\n"
        f"{shorter}"
        f"  Scores: FID, MMD and MS-SSIM here use a seeded random feature extractor (no Inception/MedicalNet\n"
        f"  weights offline) and {samples} generated volumes. They rank runs made on this machine with the same\n"
        "  settings only: they are not comparable with published FIDs, and the training itself rounds\n"
        "  differently on another CPU type or thread count, so another machine gives other numbers. Within\n"
        "  one evaluation, ms_ssim near ms_ssim_real means the samples vary about as much as the reals do."
    )


def _tools_leg(_run: _Steps, out: Path, run: Path, data: Path, steps: int) -> list[tuple[str, Path]]:
    """3D-StyleGAN's tools (Hong et al. 2021) on the 3D run: project a held-out (val) volume, mix its styles
    with seeds, walk between two seeds."""
    proj, grid, walk = out / "projection", out / "mixing", out / "interpolation"
    _run(
        [
            "project",
            str(run),
            "--data",
            str(data),
            "--split",
            "val",
            "--limit",
            "1",
            "-o",
            str(proj),
            "--steps",
            str(steps),
        ]
    )
    latent = next(proj.glob("*/projected.npz"))
    # the tiny model's coarse band is its 4³ stage alone, which changes little: mix its two lower stages
    styles = ["--styles", "coarse,middle"]
    _run(["mix", str(run), "--rows", "0,1,2", "--cols", f"10,11,{latent}", *styles, "-o", str(grid)])
    _run(["interpolate", str(run), "--seeds", "0,7", "--steps", "8", "-o", str(walk)])
    return [
        ("projection of a held-out volume (metrics.json)", latent.parent),
        ("style-mixing grids (grid_*.png)", grid),
        ("latent walk (walk.gif)", walk),
    ]


def _hagan_leg(_run: _Steps, out: Path, subjects: int, kimg: float, seed: int) -> list[tuple[str, Path]]:
    """HA-GAN (Sun et al. 2022) at 32³: train, sample full volumes, encode one raw scan."""
    from medgan3d.data.manifest import MANIFEST_NAME

    data, raw, runs = out / "data" / "brain-32x32x32", out / "data" / "raw-32", out / "runs"
    if not (data / MANIFEST_NAME).is_file():
        _run(
            [
                "prepare",
                "brain-phantom",
                "-n",
                str(subjects),
                "-o",
                str(data),
                "--shape",
                "32",
                "--seed",
                str(seed),
                "--raw-dir",
                str(raw),
            ]
        )
    _run(
        [
            "train",
            "--data",
            str(data),
            "--config",
            "hagan-tiny",
            "--out",
            str(runs),
            "--seed",
            str(seed),
            "--kimg",
            str(kimg),
            "--tick",
            str(kimg / 2),
            "--desc",
            "demo-hagan",
        ]
    )
    run = _latest_run(runs, "demo-hagan")
    _run(["generate", str(run), "-n", "4", "-o", str(out / "samples-hagan")])
    scan = sorted(raw.glob("*.nii*"))[-1]
    _run(["project", str(run), str(scan), "-o", str(out / "projection-hagan"), "--steps", "5"])
    return [
        ("HA-GAN run", run),
        ("HA-GAN samples (32³ NIfTI)", out / "samples-hagan"),
        ("HA-GAN encoder reconstruction", out / "projection-hagan"),
    ]


def _latest_run(runs: Path, desc: str) -> Path:
    matches = sorted(p for p in runs.iterdir() if p.is_dir() and p.name.endswith(f"-{desc}"))
    if not matches:
        raise MedganError(f"no run folder *-{desc} in {runs}")
    return matches[-1]

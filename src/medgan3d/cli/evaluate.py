"""`medgan3d evaluate`: score a trained generator, or a folder of volumes from any tool, against a dataset.

    medgan3d evaluate RUN_OR_CKPT --data data/coca [-n 64] [--metrics fid,fid_3d,kid,mmd,ms_ssim,psnr] [-o OUT]
    medgan3d evaluate --fake samples/ --data data/coca [--fake-mode auto|model|preset]
    medgan3d evaluate RUN_2D --data data/coca [-n 64]     # a 2D twin: fid_2d against the real axial slices

Writes OUT/metrics.json and OUT/report.html (+ PNG figures); see docs/evaluation.md. Imports are lazy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medgan3d.cli import command

if TYPE_CHECKING:
    from medgan3d.data.manifest import Manifest


def _fake_volumes(
    run: Path | None,
    fake: Path | None,
    data: Manifest,
    n: int,
    seed: int,
    trunc: float,
    mode: str,
    split: str,
):
    """The generated volumes, where they came from, and their labels (None when not conditional). A conditional
    generator is sampled with the real set's labels (each class as often as among the real volumes)."""
    if fake is not None:
        from medgan3d.metrics.inputs import load_fake_dir

        volumes, records = load_fake_dir(fake, data, mode)
        modes = sorted({r["mode"] for r in records})
        info = _sidecars(records)
        labels = info.pop("labels")
        return (
            volumes,
            {"fake_dir": str(fake.resolve()), "files": len(records), "modes": modes, **info},
            labels,
        )
    from medgan3d.data.labels import dataset_labels
    from medgan3d.generate import label_spec, resolve_source
    from medgan3d.sampling import sample

    assert run is not None  # evaluate() takes exactly one of run and fake
    G, origin = resolve_source(run)
    spec = label_spec(G, origin, run)
    labels, c = None, None
    if spec is not None:
        labels = dataset_labels(data, n, split)
        c = spec.encode(labels)
    volumes = sample(G, range(seed, seed + n), trunc, c=c)
    return (
        volumes,
        {
            "generator": str(run.resolve()),
            "truncation_psi": trunc,
            "seeds": [seed, seed + n - 1],
            "noise_mode": "const",
            "run": origin["run"],
            "checkpoint": origin["checkpoint"],
            "kimg": origin["kimg"],
            "family": origin["family"],
        },
        labels,
    )


def _sidecars(records: list[dict]) -> dict:
    """What the files' JSON sidecars (``medgan3d generate``) say about where they came from."""
    import json

    from medgan3d.generate import sidecar_path

    found = []
    for r in records:
        path = sidecar_path(r["source"])
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    origins = sorted(
        {(str(f.get("run")), f.get("checkpoint"), f.get("kimg")) for f in found if isinstance(f, dict)},
        key=str,
    )
    conditions = [f.get("condition") if isinstance(f, dict) else None for f in found]
    labelled = len(found) == len(records) and all(isinstance(c, dict) and "label" in c for c in conditions)
    return {
        "sidecars": len(found),
        "origins": [{"run": r, "checkpoint": c, "kimg": k} for r, c, k in origins],
        "labels": [c["label"] for c in conditions] if labelled else None,  # type: ignore[index]  # dicts when labelled
    }


def _metrics_2d(names: tuple[str, ...]) -> tuple[str, ...]:
    """A 2D generator (a pretrained twin) is scored by FID against the real axial slices (Liu et al., arXiv 2208.03934 Table 4)."""
    from medgan3d.errors import UsageError

    if "fid" not in names:
        raise UsageError("a 2D generator is scored with --metrics fid only (fid_2d against the axial slices)")
    others = [m for m in names if m != "fid"]
    typer.echo(
        "2D generator: fid_2d against the real axial slices"
        + (f"; {', '.join(others)} need volumes" if others else ""),
        err=True,
    )
    return ("fid",)


@command
def evaluate(
    run: Path | None = typer.Argument(None, help="Run folder, checkpoint, or saved generator directory."),
    data: Path = typer.Option(..., "--data", "-d", help="Prepared dataset folder (medgan3d prepare)."),
    fake: Path | None = typer.Option(
        None,
        "--fake",
        help="Folder of generated volumes (NIfTI/npy/...) to score instead of RUN_OR_CKPT (default: none).",
    ),
    metrics: str = typer.Option(
        "fid,fid_3d,kid,mmd,ms_ssim,psnr,memorisation",
        "--metrics",
        "-m",
        help="Comma list; memorisation is the copy detector, add is for the Inception Score.",
    ),
    num: int = typer.Option(64, "-n", "--num", min=2, help="Volumes to sample from the generator."),
    out: Path = typer.Option(Path("eval-out"), "-o", "--out", help="Folder for metrics.json and the report."),
    extractor_2d: str = typer.Option("auto", help="inception | random-2d | auto (inception if cached)."),
    extractor_3d: str = typer.Option("auto", help="medicalnet[-r10|-r18|-r34|-r50] | random-3d | auto."),
    weights_2d: str | None = typer.Option(
        None, help="Weights file for the 2D extractor, or 'random' (default: the cached FID Inception)."
    ),
    weights_3d: str | None = typer.Option(
        None, help="Weights file for the 3D extractor, or 'random' (default: the cached MedicalNet)."
    ),
    download: bool = typer.Option(
        False, "--download/--no-download", help="Allow downloading the FID Inception weights."
    ),
    all_slices: bool = typer.Option(
        False, "--all-slices/--no-all-slices", help="Slice FID on every slice, not the centre."
    ),
    split: str = typer.Option("all", help="Real set: all | train | val."),
    num_real: int | None = typer.Option(
        None, help="Use a seeded subset of this many real volumes (default: all of --split)."
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        help="Seed of the first volume sampled from RUN (seeds SEED..SEED+n-1, constant noise: the volumes"
        " `generate --seeds` writes) and of pairs, subsets and resampling.",
    ),
    trunc: float = typer.Option(1.0, "--trunc", "--psi", help="Truncation psi when sampling a generator."),
    fake_mode: str = typer.Option(
        "auto", help="auto | model ([-1,1] at dataset shape) | preset (scanner units)."
    ),
    bootstrap: int = typer.Option(
        100,
        min=0,
        help="Resampling rounds for the 95% intervals (0: none): half-samples without replacement for FID and IS"
        " (biased upward at small n), the bootstrap for PSNR and MS-SSIM means.",
    ),
    cache: Path | None = typer.Option(
        None, help="Cache folder (default $MEDGAN3D_CACHE or ~/.cache/medgan3d)."
    ),
    classifier: Path | None = typer.Option(
        None,
        help="3D classifier folder (save_pretrained) for the Inception Score 'is' (adds it to --metrics);"
        " without it (default) 'is' uses a seeded random classifier, a smoke test only.",
    ),
) -> None:
    """Score generated volumes against a prepared dataset; write metrics.json and an HTML report."""
    from medgan3d.cli.checks import check_out_folder, check_prepared, warn
    from medgan3d.config import parse_metric_names

    names = parse_metric_names(metrics)
    if (run is None) == (fake is None):
        raise typer.BadParameter("give either RUN_OR_CKPT or --fake DIR (exactly one)")
    check_out_folder(out)
    check_prepared(data)
    from medgan3d.config import MetricsConfig
    from medgan3d.data import Manifest

    manifest = Manifest.load(data)  # read once, passed to every step below
    from medgan3d.metrics import evaluate_volumes_with_artifacts
    from medgan3d.metrics.report import write_report

    settings = MetricsConfig(
        metrics=names,
        extractor_2d=extractor_2d,
        extractor_3d=extractor_3d,
        weights_2d=weights_2d,
        weights_3d=weights_3d,
        download=download,
        all_slices=all_slices,
        split=split,
        num_real=num_real,
        bootstrap=bootstrap,
        seed=seed,
        cache=None if cache is None else str(cache),
        classifier=None if classifier is None else str(classifier),
    )
    if classifier is not None and "is" not in settings.metrics:  # a classifier is only used by 'is'
        settings = dataclasses.replace(settings, metrics=(*settings.metrics, "is"))
    from medgan3d.console import Stages, make_console
    from medgan3d.metrics.evaluate import evaluation_stages

    with Stages(make_console(stderr=True), "evaluate") as stages:
        first = "reading --fake volumes" if fake is not None else f"sampling {num} volumes"
        stages(first, 0, 1 + len(evaluation_stages(settings)))
        volumes, source, labels = _fake_volumes(run, fake, manifest, num, seed, trunc, fake_mode, split)
        if volumes.ndim == 4:
            settings = dataclasses.replace(settings, metrics=_metrics_2d(settings.metrics))
        result, art = evaluate_volumes_with_artifacts(
            volumes, manifest, settings, progress=lambda name, done, total: stages(name, done + 1, total + 1)
        )
    result["provenance"]["source"] = source
    if labels is not None and _has_classes(manifest):
        from medgan3d.metrics import evaluate_per_class

        result["per_class"] = evaluate_per_class(volumes, labels, manifest, settings)
    page = write_report(result, art, out, seed=seed)
    for name, ext in result["provenance"]["extractors"].items():
        typer.echo(
            f"{name} extractor: {ext['extractor']} ({ext['weights']})"
            + (f" — {ext['note']}" if "note" in ext else "")
        )
    if "classifier" in result["provenance"]:
        clf = result["provenance"]["classifier"]
        typer.echo(f"IS classifier: {clf['classifier']}" + (f" — {clf['note']}" if "note" in clf else ""))
    _scored(source)
    for key, value in result.items():
        if isinstance(value, float):
            ci = result["ci95"].get(key)
            method = result["details"].get(key, {}).get("interval", {}).get("method", "")
            name = "half-sampling" if method.startswith("half") else "bootstrap"
            typer.echo(
                f"{key:>13}: {value:.4f}"
                + (f"  95% {name} interval [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
            )
    if "memorisation" in result:
        mem = result["memorisation"]
        typer.echo(f" memorisation: {mem['verdict']} — {mem['verdict_text']}")
    for key, scores in result.get("per_class", {}).items():
        values = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
        typer.echo(f"class {key} ({scores['num_fake']} generated vs {scores['num_real']} real): {values}")
    for line in result["warnings"]:
        warn(f"too few samples: {line}")
    typer.echo(f"metrics: {out / 'metrics.json'}")
    typer.echo(f"report: {page}")


def _has_classes(manifest: Manifest) -> bool:
    from medgan3d.data.labels import spec_of

    spec = spec_of(manifest)
    return spec is not None and spec.kind == "class"


def _scored(source: dict) -> None:
    """Which checkpoint was scored, when it is known (a run, a checkpoint, or sidecars that say so)."""
    if source.get("kimg") is not None:
        typer.echo(f"scored {source['checkpoint']} (kimg {source['kimg']:g}) of {source['run']}")
    for origin in source.get("origins", []):
        kimg = f"kimg {origin['kimg']:g}" if origin["kimg"] is not None else "kimg unknown"
        typer.echo(f"files from {origin['checkpoint'] or 'a saved generator'} ({kimg}) of {origin['run']}")

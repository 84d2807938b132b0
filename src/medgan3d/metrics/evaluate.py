"""Evaluation orchestrator: generated vs real volumes → the papers' metrics with provenance.

Metrics (names accepted in ``metrics=``):

- ``fid``    FID-ax, FID-sag, FID-cor on the centre slices (or all slices) of each plane, and FID-avg, their
             mean (Liu et al., arXiv 2208.03934 §4.1.2, Tables 6–7), with the 2D extractor.
- ``fid_3d`` FID on whole-volume features of the 3D extractor (MedicalNet, the HA-GAN convention, Sun et al., IEEE JBHI 2022).
- ``kid``    KID on the 3D features (cubic polynomial kernel; mean over subsets, std recorded).
- ``mmd``    unbiased Gaussian-kernel MMD² on the 3D features, median-heuristic bandwidth (recorded).
- ``ms_ssim`` MS-SSIM over random pairs of generated volumes: diversity, lower = more diverse (Table 8);
             the same score over real pairs is recorded as ``ms_ssim_real`` for reference.
- ``psnr``   PSNR of each generated volume against its nearest real volume by MSE, averaged (Table 8).
- ``memorisation`` the copy detector of :mod:`medgan3d.metrics.memorisation`: each generated volume's
             distance to its nearest *training* volume against the held-out (``val``) volumes' distances to
             theirs (Mann–Whitney Z_U, exact copies, a plain verdict); recorded as ``result["memorisation"]``.
- ``is``     Inception Score exp(E_x KL(p(y|x) || p(y))) of the generated volumes under a 3D classifier
             (Salimans et al. 2016; reported by HA-GAN); not in the default set, since without a trained
             classifier (``classifier=PATH``) it uses a seeded random one and means nothing.

2D images ``[N, 1, H, W]`` (the samples of a 2D twin) are scored with ``fid`` alone: ``fid_2d``, their FID
against the real axial slices of the dataset with the same 2D extractor (Liu et al., arXiv 2208.03934 Table 4, column FID-2D).

Intervals (``ci95``): half-sampling without replacement for FID and IS, which are biased upward at small
counts (resampling with replacement would inflate them further), the percentile bootstrap for the means PSNR
and MS-SSIM (:mod:`medgan3d.metrics.intervals`). ``warnings`` names every score that rests on fewer samples
than :data:`MIN_SAMPLES` (docs/evaluation.md, "Too few samples").

Real features are cached on disk under a hash of the dataset content, the real indices, the extractor
(name + weights hash or seed) and the view, written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medgan3d import __version__
from medgan3d.config import MetricsConfig
from medgan3d.data import SliceDataset
from medgan3d.data.labels import LabelSpec, dataset_labels, spec_of
from medgan3d.data.manifest import Manifest
from medgan3d.fs import atomic_write, file_sha256
from medgan3d.metrics import frechet, intervals, memorisation, mmd, msssim, psnr
from medgan3d.metrics.extractors import FeatureExtractor, auto_extractor, cache_dir, get_extractor
from medgan3d.metrics.inception_score import Classifier, get_classifier, inception_score
from medgan3d.metrics.inputs import load_real, real_indices
from medgan3d.metrics.slices import PLANES, plane_slices
from medgan3d.sampling import BATCH_SIZE, sample

SCORE_KEYS = ("fid_ax", "fid_sag", "fid_cor", "fid_avg", "fid_3d", "kid", "mmd", "ms_ssim", "psnr")
SCORE_KEYS_2D = ("fid_2d",)
CACHE_VERSION = 1
MIN_BOOTSTRAP_SAMPLES = 10  # generated volumes (or MS-SSIM pairs) below which no interval is given
# Fewest generated (and, for the distribution distances, real) samples a score needs before it is reported
# without a warning. FID fits a mean and covariance of 480-2048-dim features: with n samples the covariance has
# rank <= n - 1 and the bias falls like 1/n (Chong & Forsyth, CVPR 2020), so below ~50 the value says more
# about n than about the model. KID and MMD are unbiased (Binkowski et al., ICLR 2018) but noisy; MS-SSIM and
# PSNR are means over volumes. Thresholds are pragmatic floors, documented in docs/evaluation.md.
MIN_SAMPLES = {"fid": 50, "is": 50, "kid": 20, "mmd": 20, "ms_ssim": 10, "psnr": 10, "memorisation": 10}
_FAMILY = {
    "fid_ax": "fid",
    "fid_sag": "fid",
    "fid_cor": "fid",
    "fid_avg": "fid",
    "fid_3d": "fid",
    "fid_2d": "fid",
    "kid": "kid",
    "mmd": "mmd",
    "ms_ssim": "ms_ssim",
    "psnr": "psnr",
    "is": "is",
    "memorisation": "memorisation",
}
_PAIRED = {"fid", "kid", "mmd"}  # scores of two distributions: the real set's size matters too


@dataclass(frozen=True)
class Built:
    """Networks the caller built, used instead of the ones the settings name (:class:`MetricsConfig` holds
    names and paths only, and records a built network's name or label)."""

    extractor_2d: FeatureExtractor | None = None
    extractor_3d: FeatureExtractor | None = None
    classifier: Classifier | None = None

    def given(self) -> dict[str, FeatureExtractor | Classifier]:
        """The networks given, as the keyword arguments of the evaluation functions."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass
class EvalArtifacts:
    """What a report needs besides the scores: the volumes and the features."""

    real: Tensor
    fake: Tensor
    features: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ helpers
def _settings(settings: MetricsConfig | None, overrides: dict[str, Any]) -> tuple[MetricsConfig, Built]:
    """``settings`` with the keyword ``overrides`` (fields of :class:`MetricsConfig`); an extractor or
    classifier given built goes to :class:`Built`, and the settings record its name."""
    ext_2d, ext_3d, clf = (overrides.get(k) for k in ("extractor_2d", "extractor_3d", "classifier"))
    built = Built(
        ext_2d if isinstance(ext_2d, FeatureExtractor) else None,
        ext_3d if isinstance(ext_3d, FeatureExtractor) else None,
        clf if isinstance(clf, Classifier) else None,
    )
    names = {k: v.name for k, v in overrides.items() if isinstance(v, FeatureExtractor)}
    names |= {k: v.label for k, v in overrides.items() if isinstance(v, Classifier)}
    s = dataclasses.replace(settings or MetricsConfig(), **(overrides | names))
    return s, built


def _extractor(dims: int, built: Built, s: MetricsConfig) -> FeatureExtractor:
    """The ``dims``-D extractor: the one the caller built, else the one the settings name."""
    given = built.extractor_2d if dims == 2 else built.extractor_3d
    spec, weights = (s.extractor_2d, s.weights_2d) if dims == 2 else (s.extractor_3d, s.weights_3d)
    if given is not None:
        ext = given
    elif spec == "auto" and weights is None:
        ext = auto_extractor(dims, s.extractor_seed, s.cache)
    else:
        name = {2: "inception", 3: "medicalnet"}[dims] if spec == "auto" else spec
        ext = get_extractor(name, weights, s.extractor_seed, s.download, s.cache)
    if ext.spatial_dims != dims:
        raise ValueError(f"extractor {ext.name} is {ext.spatial_dims}D, a {dims}D extractor is needed here")
    return ext.to(s.device)


def _views(volumes: Tensor, view: str, all_slices: bool) -> Tensor:
    """The images a view scores: whole volumes (``3d``), 2D images as given (``2d:...``), or plane slices."""
    return volumes if view == "3d" or view.startswith("2d:") else plane_slices(volumes, view, all_slices)


def _score_key(view: str) -> str:
    return "fid_3d" if view == "3d" else "fid_2d" if view.startswith("2d:") else f"fid_{view}"


def _data_hash(manifest: Manifest) -> str:
    if manifest.content_hash:
        return manifest.content_hash
    return "sha256:" + file_sha256(manifest.root / manifest.array)


def _cache_file(
    s: MetricsConfig, data_hash: str, indices: list[int], ext: FeatureExtractor, view: str
) -> Path:
    key = {
        "v": CACHE_VERSION,
        "data": data_hash,
        "indices": indices,
        "extractor": ext.key,
        "view": view,
        "all_slices": s.all_slices and view != "3d",
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    root = Path(s.cache) if s.cache is not None else cache_dir()
    return root / "real-features" / f"{digest}.npz"


def _save_npz(path: Path, feats: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, features=feats)
    atomic_write(path, lambda p: p.write_bytes(buf.getvalue()))


def real_features(
    ext: FeatureExtractor, real: Tensor, view: str, s: MetricsConfig, data_hash: str, indices: list[int]
) -> tuple[np.ndarray, bool]:
    """Real features for ``view`` (``ax``/``sag``/``cor``/``3d``), from the disk cache when possible."""
    path = _cache_file(s, data_hash, indices, ext, view)
    if s.use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return f["features"], True
        except (OSError, ValueError, KeyError):
            pass  # a corrupt cache entry is recomputed and replaced
    feats = ext.features(_views(real, view, s.all_slices), s.batch_size)
    if s.use_cache:
        _save_npz(path, feats)
    return feats, False


def _as_tensor(fake: Tensor | Iterable[Tensor]) -> Tensor:
    return fake if isinstance(fake, Tensor) else torch.cat([torch.as_tensor(b) for b in fake])


def _check_fake(fake: Tensor, shape: list[int]) -> tuple[Tensor, dict]:
    x = fake.detach().float().cpu()
    if list(x.shape[1:]) != list(shape):
        what = "images" if x.ndim == 4 else "volumes"
        raise ValueError(f"generated {what} have shape {list(x.shape[1:])}, the dataset's are {list(shape)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 generated volumes, got {len(x)}")
    if not torch.isfinite(x).all():
        raise ValueError("generated volumes contain NaN or Inf")
    info = {"min": float(x.min()), "max": float(x.max()), "clipped_to": [-1.0, 1.0]}
    return x.clamp(-1.0, 1.0), info


# ------------------------------------------------------------------------------------------ metric groups
def _fid_group(ext, views, real, fake, s, data_hash, indices, result, art) -> None:
    boot = {}
    for view in views:
        rf, cached = real_features(ext, real, view, s, data_hash, indices)
        ff = ext.features(_views(fake, view, s.all_slices), s.batch_size)
        art.features[view] = (rf, ff)
        stats = frechet.feature_stats(rf)
        key = _score_key(view)
        result[key] = frechet.frechet_distance_to_features(stats, ff)
        result["details"][key] = {"real_images": len(rf), "fake_images": len(ff), "real_cached": cached}
        if s.bootstrap and len(fake) >= MIN_BOOTSTRAP_SAMPLES:
            # All slices: draw whole volumes (their slices are consecutive rows), not single slices.
            group = len(ff) // len(fake)
            scores, size = frechet.subsample_fid_scores(stats, ff, s.bootstrap, s.seed, group_size=group)
            result["ci95"][key] = intervals.subsampling_interval(result[key], scores, len(fake), size)
            result["details"][key]["interval"] = intervals.describe(
                intervals.HALF_SAMPLING, s.bootstrap, len(fake), size
            )
            boot[key] = (scores, size)
    if len(boot) == len(PLANES):  # the same volumes drawn per round for each plane: a paired FID-avg interval
        avg = float(np.mean([result[f"fid_{p}"] for p in PLANES]))
        scores = np.mean([boot[f"fid_{p}"][0] for p in PLANES], axis=0)
        size = boot[f"fid_{PLANES[0]}"][1]
        result["ci95"]["fid_avg"] = intervals.subsampling_interval(avg, scores, len(fake), size)
        result["details"]["fid_avg"] = {
            "interval": intervals.describe(intervals.HALF_SAMPLING, s.bootstrap, len(fake), size)
        }


def _kernel_group(art: EvalArtifacts, s: MetricsConfig, result: dict) -> None:
    rf, ff = art.features["3d"]
    if "kid" in s.metrics:
        mean, std, size = mmd.kid(rf, ff, s.kid_subsets, seed=s.seed)
        result["kid"] = mean
        result["details"]["kid"] = {
            "std": std,
            "subsets": s.kid_subsets,
            "subset_size": size,
            "kernel": "(x.y/d + 1)^3",
            "features": "3d",
        }
    if "mmd" in s.metrics:
        value, sigma = mmd.mmd_rbf(rf, ff)
        result["mmd"] = value
        result["details"]["mmd"] = {
            "kernel": "exp(-||x-y||^2 / (2 sigma^2)), unbiased MMD^2",
            "sigma": sigma,
            "bandwidth": "median pairwise distance",
            "features": "3d",
        }


def _msssim_group(real: Tensor, fake: Tensor, s: MetricsConfig, result: dict) -> None:
    vals, cfg = msssim.ms_ssim_pairs(fake, s.ms_ssim_pairs, s.seed)
    real_vals, _ = msssim.ms_ssim_pairs(real, s.ms_ssim_pairs, s.seed, cfg)
    result["ms_ssim"] = float(vals.mean())
    result["ms_ssim_real"] = float(real_vals.mean())
    result["details"]["ms_ssim"] = {
        **cfg.to_dict(),
        "pairs": len(vals),
        "real_pairs": len(real_vals),
        "pairing": "random distinct pairs of generated volumes",
    }
    if s.bootstrap and len(vals) >= MIN_BOOTSTRAP_SAMPLES:
        result["ci95"]["ms_ssim"] = intervals.bootstrap_mean_interval(vals, s.bootstrap, s.seed)
        result["details"]["ms_ssim"]["interval"] = intervals.describe(
            intervals.BOOTSTRAP_MEAN, s.bootstrap, len(vals)
        )


def _psnr_group(real: Tensor, fake: Tensor, s: MetricsConfig, result: dict) -> None:
    vals, _ = psnr.nearest_real_psnr(fake, real)
    result["psnr"] = float(vals.mean())
    result["details"]["psnr"] = {
        "data_range": 2.0,
        "max_db": 100.0,
        "pairing": "each generated volume vs its nearest real volume by MSE",
    }
    if s.bootstrap and len(vals) >= MIN_BOOTSTRAP_SAMPLES:
        result["ci95"]["psnr"] = intervals.bootstrap_mean_interval(vals, s.bootstrap, s.seed)
        result["details"]["psnr"]["interval"] = intervals.describe(
            intervals.BOOTSTRAP_MEAN, s.bootstrap, len(vals)
        )


class _Rows:
    """Rows ``indices`` of a dataset's memmap, read only when sliced (the training set may not fit in memory)."""

    def __init__(self, array: np.ndarray, indices: list[int]) -> None:
        self.array, self.indices = array, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | slice) -> np.ndarray:
        picked = self.indices[key]
        return self.array[np.asarray(picked)] if isinstance(key, slice) else self.array[picked]


def _memorisation_group(manifest: Manifest, fake: Tensor, result: dict) -> None:
    """Nearest-training distances of the generated vs the held-out volumes (the copy detector)."""
    train = list(manifest.splits.get("train") or range(manifest.count))
    val = list(manifest.splits.get("val") or ())
    heldout = load_real(manifest, val) if val else None
    rows = _Rows(manifest.open_array(), train)
    result["memorisation"] = memorisation.memorisation(fake, rows, heldout, train)


def _is_group(clf: Classifier, fake: Tensor, s: MetricsConfig, result: dict) -> None:
    probs = clf.probabilities(fake, s.batch_size)
    mean, std = inception_score(probs, s.is_splits)
    result["is"] = mean
    result["details"]["is"] = {
        "classifier": clf.label,
        "std": std,
        "splits": s.is_splits,
        "num_classes": int(probs.shape[1]),
        "direction": "higher is better",
        "formula": "exp(E_x KL(p(y|x) || p(y))), Salimans et al. 2016",
    }
    if "note" in clf.provenance:
        result["details"]["is"]["note"] = clf.provenance["note"]
    if s.bootstrap and len(fake) >= max(
        MIN_BOOTSTRAP_SAMPLES, 2 * s.is_splits
    ):  # IS is biased too: half-samples
        scores, size = intervals.subsampled(
            lambda idx: inception_score(probs[idx], s.is_splits)[0], len(probs), s.bootstrap, s.seed
        )
        result["ci95"]["is"] = intervals.subsampling_interval(mean, scores, len(probs), size)
        result["details"]["is"]["interval"] = intervals.describe(
            intervals.HALF_SAMPLING, s.bootstrap, len(probs), size
        )


# ------------------------------------------------------------------------------------------ public API
Progress = Callable[[str, int, int], None]  # (stage starting, stages done, stages in all)


def evaluation_stages(settings: MetricsConfig, spatial_dims: int = 3) -> list[str]:
    """The steps :func:`evaluate_volumes_with_artifacts` reports to its ``progress``, in order."""
    names = set(settings.metrics)
    if spatial_dims == 2:
        return ["real axial slices", "2D features (fid_2d)"]
    kernel = sorted(names & {"fid_3d", "kid", "mmd"})
    stages = ["real volumes", *(["2D features of 3 planes (fid)"] if "fid" in names else [])]
    stages += [f"3D features ({', '.join(kernel)})"] if kernel else []
    return stages + [m for m in ("ms_ssim", "psnr", "memorisation", "is") if m in names]


def evaluate_volumes_with_artifacts(
    fake: Tensor | Iterable[Tensor],
    data_root: Manifest | str | os.PathLike,
    settings: MetricsConfig | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> tuple[dict, EvalArtifacts]:
    """:func:`evaluate_volumes` plus the volumes and features (for reports); ``progress`` is told as each of
    :func:`evaluation_stages` starts."""
    s, built = _settings(settings, overrides)
    return _evaluate(fake, Manifest.of(data_root), s, built, progress)


def _evaluate(
    fake: Tensor | Iterable[Tensor],
    manifest: Manifest,
    s: MetricsConfig,
    built: Built,
    progress: Progress | None = None,
) -> tuple[dict, EvalArtifacts]:
    t0 = time.perf_counter()
    fake = _as_tensor(fake)
    stages = evaluation_stages(s, 2 if fake.ndim == 4 else 3)

    def stage(index: int) -> None:
        if progress is not None:
            progress(stages[index], index, len(stages))

    def metric_stage(prefix: str) -> None:  # the stage whose name starts with ``prefix``
        stage(next(i for i, name in enumerate(stages) if name.startswith(prefix)))

    if fake.ndim == 4:
        return _evaluate_images(fake, manifest, s, built, t0, stage)
    stage(0)
    indices = real_indices(manifest, s.split, s.num_real, s.seed, s.label)
    real = load_real(manifest, indices)
    fake, fake_range = _check_fake(fake, list(manifest.shape))
    data_hash = _data_hash(manifest)
    result: dict = {"ci95": {}, "details": {}}
    art = EvalArtifacts(real, fake)
    extractors = {}
    if "fid" in s.metrics:
        metric_stage("2D features")
        extractors["2d"] = _extractor(2, built, s)
        _fid_group(extractors["2d"], PLANES, real, fake, s, data_hash, indices, result, art)
        result["fid_avg"] = float(np.mean([result[f"fid_{p}"] for p in PLANES]))
    if {"fid_3d", "kid", "mmd"} & set(s.metrics):
        metric_stage("3D features")
        extractors["3d"] = _extractor(3, built, s)
        _fid_group(extractors["3d"], ("3d",), real, fake, s, data_hash, indices, result, art)
        if "fid_3d" not in s.metrics:
            result.pop("fid_3d")
            result["ci95"].pop("fid_3d", None)
        _kernel_group(art, s, result)
    if "ms_ssim" in s.metrics:
        metric_stage("ms_ssim")
        _msssim_group(real, fake, s, result)
    if "psnr" in s.metrics:
        metric_stage("psnr")
        _psnr_group(real, fake, s, result)
    if "memorisation" in s.metrics:
        metric_stage("memorisation")
        _memorisation_group(manifest, fake, result)
    classifier = None
    if "is" in s.metrics:
        metric_stage("is")
        classifier = (
            built.classifier
            if built.classifier is not None
            else get_classifier(s.classifier, s.extractor_seed)
        )
        classifier = classifier.to(s.device)
        _is_group(classifier, fake, s, result)
    result["provenance"] = {
        "medgan3d_version": __version__,
        "dataset": str(manifest.root.resolve()),
        "data_hash": data_hash,
        "preset": manifest.preset.name,
        "resolution": list(manifest.shape[1:]),
        "spacing": list(manifest.spacing),
        "data_units": manifest.intensity.to_dict(),
        "intensity_range": [-1.0, 1.0],
        "fake_intensity_before_clip": [fake_range["min"], fake_range["max"]],
        "num_real": len(real),
        "num_fake": len(fake),
        "real_split": s.split,
        "slices": "all" if s.all_slices else "centre",
        "extractors": {k: e.provenance for k, e in extractors.items()},
        "settings": s.to_dict(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if classifier is not None:
        result["provenance"]["classifier"] = classifier.provenance
    return _ordered(result), art


def real_axial_slices(data: Manifest | str | os.PathLike, s: MetricsConfig) -> tuple[Tensor, list[int], str]:
    """Real axial slices ``[M, 1, H, W]`` of split ``s.split`` (source ``s.slice_source``), a seeded subset of
    ``s.num_real`` when given; also their indices in the :class:`~medgan3d.data.SliceDataset` and the source."""
    slices = SliceDataset(data, split=s.split, slices=s.slice_source)
    if len(slices) == 0:
        raise ValueError(f"{slices.root}: split {s.split!r} holds no axial slices")
    idx = list(range(len(slices)))
    if s.num_real is not None and s.num_real < len(idx):
        idx = sorted(np.random.default_rng(s.seed).choice(len(idx), s.num_real, replace=False).tolist())
    return torch.stack([slices[i] for i in idx]), idx, slices.slices


def _evaluate_images(
    fake: Tensor, manifest: Manifest, s: MetricsConfig, built: Built, t0: float, stage: Callable[[int], None]
) -> tuple[dict, EvalArtifacts]:
    """FID of 2D images against the real axial slices (Liu et al., arXiv 2208.03934 Table 4, FID-2D): ``fid_2d``."""
    if set(s.metrics) - {"fid"}:
        raise ValueError(
            f"2D images are scored with fid only (fid_2d against axial slices); "
            f"{sorted(set(s.metrics) - {'fid'})} need volumes"
        )
    stage(0)
    real, idx, source = real_axial_slices(manifest, s)
    fake, fake_range = _check_fake(fake, list(real.shape[1:]))
    data_hash = _data_hash(manifest)
    result: dict = {"ci95": {}, "details": {}}
    art = EvalArtifacts(real, fake)
    stage(1)
    ext = _extractor(2, built, s)
    view = f"2d:axial-{source}:{s.split}"
    _fid_group(ext, (view,), real, fake, s, data_hash, idx, result, art)
    result["details"]["fid_2d"]["real"] = f"axial slices ({source}) of the {s.split} split"
    result["provenance"] = {
        "medgan3d_version": __version__,
        "dataset": str(manifest.root.resolve()),
        "data_hash": data_hash,
        "preset": manifest.preset.name,
        "resolution": list(real.shape[2:]),
        "spacing": list(manifest.spacing),
        "data_units": manifest.intensity.to_dict(),
        "intensity_range": [-1.0, 1.0],
        "fake_intensity_before_clip": [fake_range["min"], fake_range["max"]],
        "num_real": len(real),
        "num_fake": len(fake),
        "real_split": s.split,
        "slices": f"axial ({source})",
        "unit": "images",
        "extractors": {"2d": ext.provenance},
        "settings": s.to_dict(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return _ordered(result), art


def sample_warnings(result: dict) -> list[str]:
    """One line per metric family whose scores rest on fewer samples than :data:`MIN_SAMPLES` (generated, and
    real for the distribution distances), saying why such a number is not a quality measure."""
    prov = result["provenance"]
    unit = prov.get("unit", "volumes")
    out = []
    for family, need in MIN_SAMPLES.items():
        keys = [k for k, f in _FAMILY.items() if f == family and k in result]
        counts = [("generated", prov["num_fake"])] + (
            [("real", prov["num_real"])] if family in _PAIRED else []
        )
        short = [f"{n} {what}" for what, n in counts if n < need]
        if keys and short:
            why = (
                "their small-sample bias, which falls like 1/n, and noise dominate; compare only at equal counts"
                if family in ("fid", "is")
                else "noise dominates"
            )
            out.append(
                f"{', '.join(keys)}: {' and '.join(short)} {unit}, fewer than the {need} needed for the "
                f"score to mean anything: {why}"
            )
    return out


def _ordered(result: dict) -> dict:
    result["warnings"] = sample_warnings(result)
    scores = {k: result[k] for k in (*SCORE_KEYS, *SCORE_KEYS_2D, "ms_ssim_real", "is") if k in result}
    return {**scores, **{k: v for k, v in result.items() if k not in scores}}


def evaluate_volumes(
    fake: Tensor | Iterable[Tensor],
    data_root: Manifest | str | os.PathLike,
    settings: MetricsConfig | None = None,
    **overrides: Any,
) -> dict:
    """Score generated volumes ``[N, 1, D, H, W]`` in [-1, 1] against the prepared dataset at ``data_root``
    (its folder, or its :class:`~medgan3d.data.manifest.Manifest` read once by the caller), or 2D images
    ``[N, 1, H, W]``: ``fid_2d`` against its axial slices.

    Keyword ``overrides`` set :class:`~medgan3d.config.MetricsConfig` fields (e.g. ``metrics=("fid", "psnr")``;
    ``extractor_2d``, ``extractor_3d`` and ``classifier`` may also be built networks). Returns a
    dict whose top-level floats are the scores (``fid_ax`` … ``psnr``, ``ms_ssim_real``, ``is``), plus ``ci95``
    (95 % intervals: half-sampling for FID and IS, bootstrap for means; ``details[key]["interval"]`` says
    which), ``details`` (per-metric settings), ``provenance`` and ``warnings`` (scores on too few samples).
    """
    return evaluate_volumes_with_artifacts(fake, data_root, settings, **overrides)[0]


@torch.no_grad()
def evaluate_generator(
    G: torch.nn.Module,
    data_root: Manifest | str | os.PathLike,
    num_samples: int = 64,
    settings: MetricsConfig | None = None,
    *,
    truncation_psi: float = 1.0,
    batch_size: int = BATCH_SIZE,
    spec: LabelSpec | None = None,
    noise_mode: str = "const",
    **overrides: Any,
) -> dict:
    """Sample the volumes of seeds ``settings.seed … settings.seed + num_samples - 1`` from ``G`` with
    :func:`medgan3d.sampling.sample` (the volumes ``medgan3d generate --seeds`` writes) and
    :func:`evaluate_volumes` them; a 2D generator's images get ``fid_2d`` against the dataset's axial slices
    (pass ``metrics=("fid",)``). A conditional ``G`` (label ``spec``) is sampled with the real set's labels
    (:func:`dataset_labels`). The caller's RNG state is left as it was."""
    s, built = _settings(settings, overrides)
    manifest = Manifest.of(data_root)
    t0 = time.perf_counter()
    c = None
    if spec is not None:
        c = spec.encode(dataset_labels(manifest, num_samples, s.split))
    seeds = range(s.seed, s.seed + num_samples)
    fake = sample(G, seeds, truncation_psi, noise_mode, batch_size, c=c)
    result = evaluate_volumes(fake, manifest, s, **built.given())
    result["provenance"]["generator"] = {
        "truncation_psi": truncation_psi,
        "seeds": [seeds.start, seeds.stop - 1],
        "noise_mode": noise_mode,
        "seconds_sampling": round(time.perf_counter() - t0, 3),
    }
    return result


def evaluate_per_class(
    fake: Tensor,
    labels: Sequence[float],
    data_root: Manifest | str | os.PathLike,
    settings: MetricsConfig | None = None,
    **overrides: Any,
) -> dict[str, dict]:
    """Scores per class of a labelled dataset: the generated volumes of each class (``labels[i]`` of ``fake[i]``)
    against the real items of that class, with the same settings. ``{class: {score: value, ..., "ci95",
    "num_real", "num_fake", "warnings"}}``; a class with fewer than 2 generated volumes is left out."""
    s, built = _settings(settings, overrides)
    manifest = Manifest.of(data_root)
    spec = spec_of(manifest)
    if spec is None or spec.kind != "class":
        raise ValueError(f"{manifest.root}: per-class scores need a dataset with class labels")
    if len(labels) != len(fake):
        raise ValueError(f"{len(labels)} labels for {len(fake)} generated volumes")
    out: dict[str, dict] = {}
    for k in spec.classes:
        rows = [i for i, v in enumerate(labels) if v == k]
        if len(rows) < 2:
            continue
        r = evaluate_volumes(fake[rows], manifest, dataclasses.replace(s, label=k), **built.given())
        out[str(k)] = scalars(r) | {
            "ci95": r["ci95"],
            "num_real": r["provenance"]["num_real"],
            "num_fake": len(rows),
            "warnings": r["warnings"],
        }
    return out


def scalars(result: dict) -> dict[str, float]:
    """The top-level float scores of a result and the memorisation check's Z_U (``memorisation_z_u``): what
    training logs to stats.jsonl and TensorBoard as metric curves."""
    out = {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    z = (result.get("memorisation") or {}).get("z_u")
    if z is not None:
        out["memorisation_z_u"] = float(z)
    return out


_SCALARS = {
    "fid": ("fid_ax", "fid_sag", "fid_cor", "fid_avg"),
    "fid_3d": ("fid_3d",),
    "kid": ("kid",),
    "mmd": ("mmd",),
    "ms_ssim": ("ms_ssim", "ms_ssim_real"),
    "psnr": ("psnr",),
    "memorisation": ("memorisation_z_u",),
    "is": ("is",),
}


def scalar_keys(metrics: Iterable[str]) -> list[str]:
    """The keys of :func:`scalars` that the metric names ``metrics`` give (Z_U needs held-out volumes)."""
    return [k for m in metrics for k in _SCALARS.get(m, ())]

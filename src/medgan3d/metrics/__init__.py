"""Evaluation metrics: slice and 3D FID, KID, MMD, MS-SSIM, PSNR, t-SNE, Inception Score (docs/evaluation.md).

The training loop's snapshots call :func:`evaluate_generator`; ``medgan3d evaluate`` calls
:func:`evaluate_volumes_with_artifacts` on generated volumes (from a run, through :func:`medgan3d.sampling.sample`,
or from files) and writes the report with :func:`medgan3d.metrics.report.write_report`. Their settings are a
:class:`medgan3d.config.MetricsConfig`.
"""

from __future__ import annotations

from medgan3d.metrics.evaluate import (
    SCORE_KEYS,
    evaluate_generator,
    evaluate_per_class,
    evaluate_volumes,
    evaluate_volumes_with_artifacts,
    scalar_keys,
    scalars,
)
from medgan3d.metrics.extractors import ExtractorError, FeatureExtractor, get_extractor
from medgan3d.metrics.frechet import feature_stats, fid_from_features, frechet_distance
from medgan3d.metrics.inception_score import (
    VolumeClassifier,
    inception_score,
    load_classifier,
    random_classifier,
)
from medgan3d.metrics.msssim import ms_ssim, msssim_config

__all__ = [
    "SCORE_KEYS",
    "ExtractorError",
    "FeatureExtractor",
    "VolumeClassifier",
    "evaluate_generator",
    "evaluate_per_class",
    "evaluate_volumes",
    "evaluate_volumes_with_artifacts",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "get_extractor",
    "inception_score",
    "load_classifier",
    "ms_ssim",
    "msssim_config",
    "random_classifier",
    "scalar_keys",
    "scalars",
]

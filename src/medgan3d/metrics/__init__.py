"""Evaluation metrics of the seeds (issue 6): slice and 3D FID, KID, MMD, MS-SSIM, PSNR, t-SNE, Inception Score; docs/evaluation.md.

The training loop calls :func:`evaluate_generator`; ``medgan3d evaluate`` wraps :func:`evaluate_and_report`.
"""

from __future__ import annotations

from medgan3d.metrics.evaluate import (
    METRICS,
    SCORE_KEYS,
    EvalSettings,
    evaluate_generator,
    evaluate_per_class,
    evaluate_volumes,
    evaluate_volumes_with_artifacts,
    generate_volumes,
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
    "METRICS",
    "SCORE_KEYS",
    "EvalSettings",
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
    "generate_volumes",
    "get_extractor",
    "inception_score",
    "load_classifier",
    "ms_ssim",
    "msssim_config",
    "random_classifier",
    "scalar_keys",
    "scalars",
]

"""Inception Score of generated volumes over a user-supplied 3D classifier.

IS = exp(E_x KL(p(y|x) ‖ p(y))), Salimans et al., "Improved Techniques for Training GANs" (NeurIPS 2016), §4
("Inception score"), as HA-GAN reports it on generated volumes (Sun et al., "Hierarchical Amortized GAN for 3D
High Resolution Medical Image Synthesis", IEEE JBHI 2022, §IV). Its value depends entirely on the classifier:
the paper's is not published, so numbers from another classifier are not comparable with the paper's, and a
randomly initialised one (:func:`random_classifier`, the default without ``--classifier``) scores a smoke test
only. Every result names its classifier: ``"random, seed S"`` or ``"<path> sha256 <hex>"``.

A classifier is any medgan3d network saved with ``save_pretrained`` (``config.json`` + ``model.safetensors``)
whose forward maps volumes ``(B, 1, D, H, W)`` in [-1, 1] to logits ``(B, K)``; :class:`VolumeClassifier` is
the architecture shipped for that.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medgan3d.fs import file_sha256
from medgan3d.modeling import WEIGHTS_NAME, PretrainedMixin, from_pretrained

RANDOM_CLASSES = 10  # classes of the default random classifier (arbitrary: its IS means nothing anyway)
GN_GROUPS = 8


def inception_score(probs: Tensor | np.ndarray, splits: int = 1) -> tuple[float, float]:
    """Mean and std over ``splits`` of exp(E_x KL(p(y|x) ‖ p(y))) for class probabilities ``(N, K)``.

    Salimans et al. 2016, §4: with p(y) the mean of p(y|x) over the split, IS = exp(mean_x Σ_y p(y|x) (log
    p(y|x) − log p(y))). The N rows are cut into ``splits`` consecutive parts of ⌊kN/splits⌋ … rows (their
    reference code); the std is the population std (ddof 0) of the per-split scores, 0 for one split.
    1 ≤ IS ≤ K: 1 when every row is the same, K when the rows are one-hot and equally spread over K classes.
    """
    p = torch.as_tensor(probs).detach().to("cpu", torch.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"probabilities must be a non-empty (N, K) array, got shape {list(p.shape)}")
    if not torch.isfinite(p).all() or (p < 0).any() or not torch.allclose(p.sum(1), p.new_ones(1), atol=1e-4):
        raise ValueError("probabilities must be finite, non-negative and sum to 1 per row")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in [1, {n}] (the number of samples), got {splits}")
    scores = []
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]
        marginal = part.mean(0, keepdim=True)
        # xlogy: a zero probability contributes 0 (0 log 0 = 0), also where the marginal is 0
        kl = (torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


class VolumeClassifier(PretrainedMixin, nn.Module):
    """Small 3D CNN classifier: volumes ``(B, C, D, H, W)`` in [-1, 1] → logits ``(B, num_classes)``.

    One 3³ conv stage per width, each conv → GroupNorm → ReLU, every stage stride 2 (the first halves the
    input already, which keeps 256³ volumes cheap), then the global average pool and a linear layer, so any
    input size works. ``seed`` (optional) initialises the weights from its own generator (He-normal convs,
    small normal linear layer), leaving torch's global RNG untouched; None uses the default init.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64, 128),
        seed: int | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if num_classes < 1 or in_channels < 1 or not widths or min(widths) < 1:
            raise ValueError(
                f"need num_classes, in_channels and widths >= 1, got {num_classes}, {in_channels}, {widths}"
            )
        self.num_classes, self.spatial_dims = num_classes, 3
        stages, c_in = [], in_channels
        for c_out in widths:
            norm = nn.GroupNorm(GN_GROUPS if c_out % GN_GROUPS == 0 else 1, c_out)
            stages.append(nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=2, padding=1), norm, nn.ReLU()))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, num_classes)
        if seed is not None:
            self._seeded_init(seed)

    def _seeded_init(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv3d | nn.Linear):
                    std = (2.0 / m.weight[0].numel()) ** 0.5 if isinstance(m, nn.Conv3d) else 0.01
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                    assert m.bias is not None
                    m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(x).mean(dim=(2, 3, 4)))


def random_classifier(num_classes: int = RANDOM_CLASSES, seed: int = 0) -> VolumeClassifier:
    """A seeded randomly initialised :class:`VolumeClassifier`: for tests and smoke runs only."""
    with torch.random.fork_rng(devices=[]):  # the default init draws from the global RNG before ours
        return VolumeClassifier(num_classes, seed=seed)


@dataclass
class Classifier:
    """A 3D classifier with the label and provenance that every IS result carries."""

    network: nn.Module
    label: str  # "random, seed S" or "<path> sha256 <hex>"
    provenance: dict = field(default_factory=dict)

    @torch.no_grad()
    def probabilities(self, volumes: Tensor, batch_size: int = 8) -> Tensor:
        """Softmax of the logits of ``volumes`` ``(N, 1, D, H, W)`` in [-1, 1], as float64 ``(N, K)``."""
        self.network.eval()
        device = next(self.network.parameters()).device
        out = []
        for batch in volumes.split(batch_size):
            logits = self.network(batch.to(device=device, dtype=torch.float32))
            if logits.ndim != 2 or logits.shape[0] != len(batch):
                raise ValueError(
                    f"{self.label}: the classifier returned shape {list(logits.shape)}, not (B, K)"
                )
            out.append(F.softmax(logits.double(), dim=1).cpu())
        return torch.cat(out)

    def to(self, device: str | torch.device) -> Classifier:
        self.network.to(device)
        return self


def _provenance(network: nn.Module, label: str, weights: str, sha256: str | None) -> dict:
    return {
        "classifier": label,
        "class": type(network).__name__,
        "weights": weights,
        "weights_sha256": sha256,
        "input": "native size, 1 channel",
        "intensity_range": [-1.0, 1.0],
    }


def seeded_classifier(seed: int = 0, num_classes: int = RANDOM_CLASSES) -> Classifier:
    """:func:`random_classifier` labelled ``"random, seed S"``."""
    label = f"random, seed {seed}"
    net = random_classifier(num_classes, seed)
    prov = _provenance(net, label, label, None) | {
        "num_classes": num_classes,
        "note": "randomly initialised classifier: the IS is a smoke test, not a measure of quality",
    }
    return Classifier(net, label, prov)


def load_classifier(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Classifier:
    """A classifier saved with ``save_pretrained``, loaded with :func:`medgan3d.modeling.from_pretrained`.

    The saved sha256 is checked on load; the label names the folder and the weights' sha256.
    """
    path = Path(directory).resolve()
    network = from_pretrained(path, device)
    sha = file_sha256(path / WEIGHTS_NAME)
    label = f"{path} sha256 {sha}"
    prov = _provenance(network, label, str(path), sha)
    if hasattr(network, "num_classes"):
        prov["num_classes"] = int(network.num_classes)
    return Classifier(network, label, prov)


def get_classifier(spec: str | os.PathLike | Classifier | None, seed: int = 0) -> Classifier:
    """``None`` or ``"random"``: the seeded random classifier; a path: :func:`load_classifier`."""
    if isinstance(spec, Classifier):
        return spec
    if spec is None or str(spec) == "random":
        return seeded_classifier(seed)
    return load_classifier(spec)

"""Feature extractors for FID/KID/MMD/t-SNE: FID InceptionV3 (2D), MedicalNet 3D ResNets, seeded random CNNs.

No weights are bundled and none can be fetched offline. Pretrained weights come from (in order) an explicit
path, the cache folder ``$MEDGAN3D_CACHE/weights`` (default ``~/.cache/medgan3d/weights``), or — only when
asked with ``download=True`` and online — the official FID Inception release. Files are safetensors, or
``.pth``/``.pt`` read with ``torch.load(weights_only=True)`` (never unpickling arbitrary objects).

Every extractor carries ``provenance``: its name, the weights file and SHA-256 (or ``"random, seed S"``),
its input convention and feature size. Scores are meaningful only between runs with equal provenance.

Architectures are written from the papers: Szegedy et al. 2016 (InceptionV3) with the FID variant of the
TF 2015-12-05 graph (Heusel et al. 2017: average pools that exclude padding, a max pool in the last block's
pool branch; 2048-d pool3 features of 299×299 inputs), and Chen et al. 2019 (Med3D/MedicalNet: 3D ResNet
with dilated layers 3–4; 512-d or 2048-d global-average-pooled features), as used by HA-GAN (Sun et al., IEEE JBHI 2022).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medgan3d.fs import atomic_write, file_sha256

FID_INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
INCEPTION_FILES = ("inception_fid.safetensors", "pt_inception-2015-12-05-6726825d.pth")
MEDICALNET_DEPTHS = (10, 18, 34, 50)
INTENSITY_RANGE = (-1.0, 1.0)


class ExtractorError(RuntimeError):
    """Weights that cannot be found or loaded; the message names the file and the reason."""


def cache_dir() -> Path:
    """``$MEDGAN3D_CACHE`` or ``~/.cache/medgan3d``."""
    return Path(os.environ.get("MEDGAN3D_CACHE", Path.home() / ".cache" / "medgan3d"))


# ------------------------------------------------------------------------------------------ base class
class FeatureExtractor(nn.Module):
    """Maps images ``[N, 1, *spatial]`` with intensities in [-1, 1] to features ``[N, feature_dim]``."""

    def __init__(self, name: str, spatial_dims: int, feature_dim: int, input_note: str) -> None:
        super().__init__()
        self.name, self.spatial_dims, self.feature_dim = name, spatial_dims, feature_dim
        self.provenance: dict = {
            "extractor": name,
            "spatial_dims": spatial_dims,
            "feature_dim": feature_dim,
            "input": input_note,
            "intensity_range": list(INTENSITY_RANGE),
        }

    def set_weights_info(self, weights: str, sha256: str | None, note: str | None = None) -> None:
        self.provenance.update({"weights": weights, "weights_sha256": sha256})
        if note:
            self.provenance["note"] = note

    @property
    def key(self) -> str:
        """Short identity for caches: name + weights hash or random seed."""
        return f"{self.name}:{self.provenance.get('weights_sha256') or self.provenance.get('weights')}"

    @torch.no_grad()
    def features(self, images: Tensor | Iterable[Tensor], batch_size: int = 32) -> np.ndarray:
        """Features of a batch tensor (or an iterable of batches) as float64 ``[N, feature_dim]``."""
        self.eval()
        device = next(self.parameters()).device
        batches = images.split(batch_size) if isinstance(images, Tensor) else images
        out = [self(b.to(device=device, dtype=torch.float32)).double().cpu() for b in batches]
        if not out:
            return np.zeros((0, self.feature_dim))
        return torch.cat(out).numpy()


# ------------------------------------------------------------------------------------------ random CNN
class RandomConvNet(FeatureExtractor):
    """Seeded randomly initialised CNN (2D or 3D): per stage, channel means and stds of activations.

    Four 3-tap conv stages (stride 1, then 2) with leaky ReLU; He-normal weights from ``seed``. Random
    convolutional features separate texture/intensity statistics well enough to rank degraded sets (tested),
    are cheap at any input size, and need no download. They are not comparable with published numbers.
    """

    def __init__(
        self, spatial_dims: int, seed: int = 0, channels: tuple[int, ...] = (16, 32, 64, 128)
    ) -> None:
        super().__init__(f"random-{spatial_dims}d", spatial_dims, 2 * sum(channels), "native size, 1 channel")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        gen = torch.Generator().manual_seed(seed)
        layers, c_in = [], 1
        for i, c_out in enumerate(channels):
            layer = conv(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1)
            fan_in = layer.weight[0].numel()
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                assert layer.bias is not None
                layer.bias.zero_()
            layers.append(layer)
            c_in = c_out
        self.stages = nn.ModuleList(layers)
        self.set_weights_info(f"random, seed {seed}", None)

    def forward(self, x: Tensor) -> Tensor:
        feats = []
        for conv in self.stages:
            x = F.leaky_relu(conv(x), 0.2)
            flat = x.flatten(2)
            feats += [flat.mean(2), flat.std(2, unbiased=False)]
        return torch.cat(feats, dim=1)


# ------------------------------------------------------------------------------------------ InceptionV3
class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: Tensor) -> Tensor:
    # The TF graph behind FID averages over valid pixels only at the borders.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """``max_pool``: the last block of the FID graph pools its pool branch with a max, not an average."""

    def __init__(self, c_in: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(a), self.branch3x3_2b(a)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class InceptionV3FID(FeatureExtractor):
    """InceptionV3, FID variant: 2048-d pool3 features of slices resized to 299×299 (bilinear), gray → RGB.

    Inputs in [-1, 1] are what the FID network expects after its own scaling, so no rescaling is done.
    Parameter names follow the widely used PyTorch port of the FID weights so its file loads unchanged.
    """

    def __init__(self) -> None:
        super().__init__("inception", 2, 2048, "bilinear resize to 299x299, gray replicated to 3 channels")
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


# ------------------------------------------------------------------------------------------ MedicalNet
def _conv3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class _Shortcut(nn.Module):
    """Type-A shortcut (no parameters): strided subsampling, zero channels appended."""

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.c_out - x.shape[1]))


class BasicBlock3d(nn.Module):
    expansion = 1

    def __init__(
        self, c_in: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3(c_in, planes, stride, dilation), nn.BatchNorm3d(planes)
        self.conv2, self.bn2 = _conv3(planes, planes, 1, dilation), nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(
        self, c_in: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv3d(c_in, planes, 1, bias=False), nn.BatchNorm3d(planes)
        self.conv2, self.bn2 = _conv3(planes, planes, stride, dilation), nn.BatchNorm3d(planes)
        self.conv3, self.bn3 = nn.Conv3d(planes, planes * 4, 1, bias=False), nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


_RESNET_LAYOUT: dict[int, tuple[Any, tuple[int, ...]]] = {
    10: (BasicBlock3d, (1, 1, 1, 1)),
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
}


class MedicalNetResNet(FeatureExtractor):
    """MedicalNet (Med3D) 3D ResNet-10/18/34/50 backbone; features = global average of layer4.

    Stem 7³ conv stride 2 + 3³ max pool stride 2; layers 3 and 4 keep resolution with dilation 2 and 4.
    ``shortcut``: ``"B"`` (1³ conv + BN projection) or ``"A"`` (parameter-free), as the checkpoint needs.
    """

    def __init__(self, depth: int = 50, shortcut: str = "B") -> None:
        if depth not in _RESNET_LAYOUT:
            raise ValueError(f"MedicalNet depth must be one of {MEDICALNET_DEPTHS}, got {depth}")
        block, counts = _RESNET_LAYOUT[depth]
        super().__init__(f"medicalnet-r{depth}", 3, 512 * block.expansion, "native size, 1 channel")
        self.provenance["shortcut"] = shortcut
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self._c = 64
        specs = ((64, 1, 1), (128, 2, 1), (256, 1, 2), (512, 1, 4))
        for i, ((planes, stride, dil), n) in enumerate(zip(specs, counts, strict=True)):
            setattr(self, f"layer{i + 1}", self._layer(block, planes, n, stride, dil, shortcut))

    def _layer(
        self, block: Any, planes: int, n: int, stride: int, dilation: int, shortcut: str
    ) -> nn.Sequential:
        out_c = planes * block.expansion
        down = None
        if stride != 1 or self._c != out_c:
            down = (
                _Shortcut(out_c, stride)
                if shortcut == "A"
                else nn.Sequential(
                    nn.Conv3d(self._c, out_c, 1, stride=stride, bias=False), nn.BatchNorm3d(out_c)
                )
            )
        blocks = [block(self._c, planes, stride, dilation, down)]
        self._c = out_c
        blocks += [block(out_c, planes, 1, dilation, None) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    layer1: nn.Sequential  # set in __init__ with setattr
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))


# ------------------------------------------------------------------------------------------ weights
_IGNORED = {"inception": ("fc.", "AuxLogits."), "medicalnet": ("conv_seg.", "fc.")}


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of a safetensors or ``.pth``/``.pt`` file (``weights_only``), ``module.`` prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise ExtractorError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix in (".pth", ".pt", ".bin"):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
        else:
            raise ExtractorError(f"{path}: unknown weights format (use .safetensors, .pth or .pt)")
    except ExtractorError:
        raise
    except Exception as err:  # corrupt file, or a pickle that needs arbitrary objects
        raise ExtractorError(f"{path}: cannot read weights ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise ExtractorError(f"{path}: holds {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def load_weights(model: FeatureExtractor, path: str | os.PathLike, family: str) -> None:
    """Strictly load a weights file into ``model`` and record its path and SHA-256."""
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(_IGNORED[family])}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches
        reason = str(err).splitlines()[-1].strip()
        raise ExtractorError(f"{path}: does not fit {model.name} ({reason})") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ExtractorError(
            f"{path}: does not fit {model.name} (missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''})"
        )
    model.set_weights_info(str(Path(path).resolve()), file_sha256(path))


def convert_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Rewrite a ``.pth`` state dict as safetensors (read with ``weights_only=True``; atomic write)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in read_state_dict(src).items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dst, lambda p: save_file(state, str(p)))
    return dst


def _find_cached(names: Iterable[str], root: Path | None) -> Path | None:
    folder = (root or cache_dir()) / "weights"
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _inception(_shortcut: str) -> FeatureExtractor:
    return InceptionV3FID()


def _medicalnet_files(depth: int) -> tuple[str, ...]:
    return (f"medicalnet_resnet{depth}.safetensors", f"resnet_{depth}_23dataset.pth", f"resnet_{depth}.pth")


def _download_inception(root: Path | None) -> Path:
    dst = (root or cache_dir()) / "weights" / INCEPTION_FILES[1]
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(FID_INCEPTION_URL, str(dst), progress=True)
    except Exception as err:
        raise ExtractorError(
            f"{FID_INCEPTION_URL}: download failed ({err}); place the file in {dst.parent}"
        ) from None
    return dst


def _random_init(model: FeatureExtractor, seed: int) -> FeatureExtractor:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
    model.set_weights_info(f"random, seed {seed}", None)
    return model


def _pretrained(
    family: str,
    build: Callable[[str], FeatureExtractor],
    names: tuple[str, ...],
    weights,
    seed,
    download,
    root,
) -> FeatureExtractor | None:
    """The model with weights from a path, ``"random"``, the cache, or a download; None if none found."""
    if weights == "random":
        return _random_init(build("B"), seed)
    path = Path(weights) if weights else _find_cached(names, root)
    if path is None and download and family == "inception":
        path = _download_inception(root)
    if path is None:
        return None
    # MedicalNet checkpoints come with projection (B) or parameter-free (A) shortcuts; the file tells which.
    shortcut_a = family == "medicalnet" and not any("downsample" in k for k in read_state_dict(path))
    model = build("A") if shortcut_a else build("B")
    load_weights(model, path, family)
    return model


def get_extractor(
    name: str,
    weights: str | os.PathLike | None = None,
    seed: int = 0,
    download: bool = False,
    root: str | os.PathLike | None = None,
    fallback_random: bool = True,
) -> FeatureExtractor:
    """An extractor by name: ``inception``, ``medicalnet[-r10|-r18|-r34|-r50]``, ``random-2d``, ``random-3d``.

    ``weights``: a file, ``"random"`` (the named architecture, seeded random init) or None (search the cache
    ``root``/weights, then download if allowed). When pretrained weights are not found and
    ``fallback_random`` is set, the fast :class:`RandomConvNet` of the same dimensionality is returned and
    its provenance says why; otherwise :class:`ExtractorError` is raised.
    """
    # Building layers draws default inits from torch's global RNG: keep the caller's (training) stream intact.
    with torch.random.fork_rng(devices=[]):
        return _get_extractor(name, weights, seed, download, Path(root) if root else None, fallback_random)


def _get_extractor(
    name: str, weights, seed: int, download: bool, root: Path | None, fallback_random: bool
) -> FeatureExtractor:
    if name in ("random-2d", "random-3d"):
        return RandomConvNet(int(name[7]), seed)
    names: tuple[str, ...]
    build: Callable[[str], FeatureExtractor]
    if name == "inception":
        family, dims, names = "inception", 2, INCEPTION_FILES
        build = _inception
    elif name.startswith("medicalnet"):
        depth = 50 if name == "medicalnet" else int(name.removeprefix("medicalnet-r") or 0)
        if depth not in MEDICALNET_DEPTHS:
            raise ValueError(f"unknown MedicalNet depth in {name!r}; choose from {MEDICALNET_DEPTHS}")
        family, dims, names = "medicalnet", 3, _medicalnet_files(depth)
        build = functools.partial(MedicalNetResNet, depth)
    else:
        raise ValueError(
            f"unknown extractor {name!r}; choose inception, medicalnet[-rN], random-2d, random-3d"
        )
    model = _pretrained(family, build, names, weights, seed, download, root)
    if model is not None:
        return model
    where = (root or cache_dir()) / "weights"
    if not fallback_random:
        raise ExtractorError(f"{where}: no weights for {name} (expected one of {list(names)}); pass a path")
    model = RandomConvNet(dims, seed)
    model.provenance["note"] = f"no {name} weights in {where} (looked for {list(names)}): random CNN used"
    return model


def auto_extractor(
    spatial_dims: int, seed: int = 0, root: str | os.PathLike | None = None
) -> FeatureExtractor:
    """Inception (2D) or the deepest cached MedicalNet (3D) when weights are cached, else the random CNN."""
    if spatial_dims == 2:
        return get_extractor("inception", seed=seed, root=root)
    for depth in (50, 34, 18, 10):
        if _find_cached(_medicalnet_files(depth), Path(root) if root else None):
            return get_extractor(f"medicalnet-r{depth}", seed=seed, root=root)
    return get_extractor("medicalnet", seed=seed, root=root)

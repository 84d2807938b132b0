"""Architecture summary: parameters per module, output shape, number of w vectors, forward GFLOPs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from medgan3d.config import ModelConfig, Preset


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def params_by_child(module: nn.Module, prefix: str) -> dict[str, int]:
    """Parameters of every direct child (and of ModuleList items), keyed by dotted name."""
    out: dict[str, int] = {}
    for name, child in module.named_children():
        items = child.named_children() if isinstance(child, nn.ModuleList) else [(None, child)]
        for sub, mod in items:
            key = f"{prefix}.{name}" + (f".{sub}" if sub is not None else "")
            out[key] = count_params(mod)
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if own:
        out[f"{prefix}.<own>"] = own
    return out


def forward_gflops(fn: Any, *inputs: torch.Tensor) -> float:
    """GFLOPs of one call, as executed (grouped convs count their groups), via torch's FLOP counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn(*inputs)
    return counter.get_total_flops() / 1e9


def _gflops_per_sample(preset: Preset, batch: int = 2) -> dict[str, float]:
    """Forward GFLOPs of G and D per sample, counted on the meta device (shapes only, no arithmetic)."""
    cfg = preset.model
    with torch.device("meta"):
        G, D = cfg.build_generator(), cfg.build_discriminator()
        z = torch.empty(batch, cfg.z_dim)
        img = torch.empty(batch, *cfg.output_shape)
    return {"G": forward_gflops(G, z) / batch, "D": forward_gflops(D, img) / batch}


@dataclass
class Summary:
    name: str
    params: dict[str, int]
    modules: dict[str, int]
    output_shape: list[int]
    num_ws: int
    gflops: dict[str, float]
    paper_params_m: float | None
    spatial_dims: int
    variants: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "params_per_module": self.modules,
            "paper_params_m": self.paper_params_m,
            "output_shape": self.output_shape,
            "num_ws": self.num_ws,
            "gflops_per_sample": self.gflops,
            "spatial_dims": self.spatial_dims,
            "variants": self.variants,
        }


def summarize(preset: Preset) -> Summary:
    """Build the networks of a preset and measure them (FLOPs on a batch of 2, reported per sample)."""
    cfg = preset.model
    if not isinstance(cfg, ModelConfig):  # HA-GAN, the baselines
        return _summarize_family(preset)
    torch.manual_seed(0)
    G, D = cfg.build_generator().eval(), cfg.build_discriminator().eval()
    modules = params_by_child(G.mapping, "G.mapping")
    modules |= params_by_child(G.synthesis, "G.synthesis")
    modules |= params_by_child(D, "D")
    g, d = count_params(G), count_params(D)
    gflops = _gflops_per_sample(preset)
    return Summary(
        name=preset.name,
        params={"G": g, "D": d, "total": g + d},
        modules=modules,
        output_shape=list(cfg.output_shape),
        num_ws=G.num_ws,
        gflops=gflops,
        paper_params_m=preset.paper_params_m,
        spatial_dims=cfg.spatial_dims,
        variants={"G": cfg.g_variant, "D": cfg.d_variant},
    )


def _summarize_family(preset: Preset) -> Summary:
    """Any other family (HA-GAN, the baselines): every network of ``cfg.build_networks()`` counted on the
    meta device (no memory, exact counts); per-module counts from a network's ``param_groups()`` if it has
    one, else its direct children; GFLOPs of the calls ``cfg.flop_probes`` names (HA-GAN: G's full-volume
    inference and one D call on a training pair; the baselines: one forward of each network)."""
    cfg = preset.model
    assert not isinstance(cfg, ModelConfig), "StyleGAN2 presets are summarised by summarize"
    batch = 2
    with torch.device("meta"):
        nets = cfg.build_networks()
        probes = cfg.flop_probes(nets, batch)
        gflops = {name: forward_gflops(fn, *inputs) / batch for name, (fn, inputs) in probes.items()}
    params = {name: count_params(net) for name, net in nets.items()}
    params["total"] = sum(params.values())
    modules: dict[str, int] = {}
    for name, net in nets.items():
        modules |= net.param_groups() if hasattr(net, "param_groups") else params_by_child(net, name)
    settings = {k: v for k, v in cfg.to_dict().items() if k != "family"}
    return Summary(
        name=preset.name,
        params=params,
        modules=modules,
        output_shape=list(cfg.output_shape),
        num_ws=0,
        gflops=gflops,
        paper_params_m=preset.paper_params_m,
        spatial_dims=3,
        variants={"family": cfg.family} | {k: str(v) for k, v in settings.items()},
    )

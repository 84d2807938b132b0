"""Counters for what a training step costs besides time: device reads, dispatched ops, saved activations.

Used by ``benchmarks/bench_step.py`` and the tests of the step (``tests/training/test_loop_syncs.py``,
``tests/training/test_loop_memory.py``). All of them work on CPU, where no profiler of a device is needed:

* :class:`OpCounter` counts the ATen operators dispatched (after autograd), i.e. the kernels a device would
  launch, up to ops that a backend fuses or that are views;
* :class:`DeviceReads` counts ``aten._local_scalar_dense`` (what ``.item()``, ``float(t)``, ``bool(t)``
  dispatch to), the host↔device syncs of a CUDA run, leaving out reads of tensors that live on the host in a
  CUDA run too (non-fused Adam's step counters; with a GPU ``device``, every CPU tensor) or are read by one
  of ``host_sites`` (``(file name, function)`` of host-side decisions, e.g. drawn from the CPU generator);
* :class:`SavedActivations` tracks the bytes autograd keeps for backward (``saved_tensors_hooks``): the
  total packed and the peak alive at once.
"""

from __future__ import annotations

import traceback
import weakref
from collections import Counter
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

# (file, function) whose reads are of host memory on every device: decisions drawn from the CPU generator, and
# the guard's flag where the device is the CPU (on a GPU guarded_step never reads it)
HOST_READS = frozenset(
    {("losses.py", "map_with_mixing"), ("hagan.py", "draw_crop"), ("optim.py", "guarded_step")}
)


class OpCounter(TorchDispatchMode):
    """Dispatched ATen ops (``ops``: total; ``by_name``: per operator)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_name: Counter[str] = Counter()

    @property
    def ops(self) -> int:
        return sum(self.by_name.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.by_name[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


class DeviceReads(TorchDispatchMode):
    """``_local_scalar_dense`` calls except the host reads; ``reads`` holds a short stack of each counted one,
    ``host_reads`` counts the others. Host reads: of a CPU tensor by ``torch.optim`` (non-fused Adam's step
    counters: CPU tensors on every device), from one of ``host_sites``, and with a GPU ``device`` of any CPU
    tensor."""

    def __init__(self, host_sites: frozenset = HOST_READS, device: torch.device | None = None) -> None:
        super().__init__()
        self.host_sites = host_sites
        self.cpu_is_host = device is not None and device.type != "cpu"  # CPU tensors of a GPU run
        self.reads: list[str] = []
        self.host_reads = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            t, frames = args[0], traceback.extract_stack()[:-1]
            ours = [f for f in frames if "/medgan3d/" in f.filename and not f.filename.endswith("measure.py")]
            site = (ours[-1].filename.rsplit("/", 1)[-1], ours[-1].name) if ours else ("?", "?")
            on_cpu = t.device.type == "cpu"
            optimizer = on_cpu and any("/torch/optim/" in f.filename for f in frames)
            if optimizer or site in self.host_sites or (self.cpu_is_host and on_cpu):
                self.host_reads += 1
            else:
                self.reads.append("".join(traceback.format_list(frames[-6:])))
        return func(*args, **(kwargs or {}))


class _Saved:
    """One tensor saved for backward (its bytes count as alive until autograd drops this holder)."""

    def __init__(self, t: Tensor) -> None:
        self.t = t


class SavedActivations(torch.autograd.graph.saved_tensors_hooks):
    """Bytes of the tensors saved for backward inside the context: ``total`` packed, ``peak`` alive at once.

    Parameters are left out; a tensor saved by two ops counts twice, so the figures are upper bounds of
    what the graphs hold, comparable between two versions of the same step."""

    def __init__(self) -> None:
        self.total = self.alive = self.peak = 0
        super().__init__(self._pack, lambda saved: saved.t)

    def __enter__(self) -> SavedActivations:  # type: ignore[override]  # torch's hook context returns None
        super().__enter__()
        return self

    def _release(self, nbytes: int) -> None:
        self.alive -= nbytes

    def _pack(self, t: Tensor) -> _Saved:
        holder = _Saved(t)
        if not isinstance(t, torch.nn.Parameter):
            self.total += t.nbytes
            self.alive += t.nbytes
            self.peak = max(self.peak, self.alive)
            weakref.finalize(holder, self._release, t.nbytes)
        return holder

"""What a run shows: run folders, stats.jsonl, TensorBoard (scalars, metric curves, the real and generated grids,
the run's hyper-parameters), snapshot grids, progress."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from medgan3d.console import make_console
from medgan3d.viz import MODEL_WINDOW, IntensityWindow, save_image_grid, save_slice_grid

RUN_RE = re.compile(r"^(\d{5})-")
_RESERVE_RE = re.compile(r"^\.(\d{5})\.reserve$")
_MAX_TRIES = 10_000


def _numbers(outdir: Path, runs_only: bool = False) -> set[int]:
    """Run numbers in use: run folders and (unless ``runs_only``) reservations."""
    found = set()
    for p in outdir.iterdir():
        if m := RUN_RE.match(p.name) or (None if runs_only else _RESERVE_RE.match(p.name)):
            found.add(int(m.group(1)))
    return found


def new_run_dir(outdir: str | Path, desc: str) -> Path:
    """Create and return ``outdir/NNNNN-desc`` with the next free number, unique even among concurrent calls.

    A number is claimed by creating ``outdir/.NNNNN.reserve`` (atomic, whatever the desc) and released once
    the run folder exists; a claimed or taken number makes the caller try the next one.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", desc)
    for _ in range(_MAX_TRIES):
        number = max(_numbers(outdir), default=-1) + 1
        reserve = outdir / f".{number:05d}.reserve"
        try:
            reserve.mkdir()
        except FileExistsError:
            continue
        try:
            # a holder of this number before us may have listed before we did; it made its folder first
            if number in _numbers(outdir, runs_only=True):
                continue
            run = outdir / f"{number:05d}-{name}"
            run.mkdir()
            return run
        except FileExistsError:  # made without a reservation (by hand, or an older medgan3d)
            continue
        finally:
            reserve.rmdir()
    raise RuntimeError(f"{outdir}: no free run number after {_MAX_TRIES} tries")


def save_grid(
    volumes: np.ndarray,
    path: Path,
    spacing: Sequence[float] | None = None,
    title: str = "",
    labels: list[str] | None = None,
    window: IntensityWindow = MODEL_WINDOW,
) -> Path:
    """Centre-slice grid for 3D volumes, a grid of axial images for 2D samples; ``title`` is drawn in the
    picture (snapshots: the kimg), ``labels`` name the rows / images (default ``#i``)."""
    labels = labels if labels is not None else [f"#{i}" for i in range(len(volumes))]
    if volumes.ndim == 3:  # 2D samples [n, H, W]
        return save_image_grid(list(volumes), path, labels=labels, window=window, title=title)
    spacing = spacing if spacing is not None else (1.0, 1.0, 1.0)
    return save_slice_grid(list(volumes), path, spacing=spacing, titles=labels, window=window, title=title)


def flat_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested configuration as one level of dotted keys; lists as JSON text, None left out."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_hparams(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        elif value is not None:
            out[name] = json.dumps(value, default=str)
    return out


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class RunLogger:
    """stats.jsonl lines, TensorBoard scalars/images and console output; inert on ranks other than 0."""

    def __init__(self, run_dir: Path | None, total_kimg: float, start_kimg: float) -> None:
        self.run_dir = run_dir
        self.total_kimg = total_kimg
        self.console = make_console()
        self.writer = None
        self.progress: Progress | None = None
        if run_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            # on resume, events after the checkpoint (written before a kill) are purged, as stats.jsonl is cut
            purge = round(start_kimg * 1000) + 1 if start_kimg > 0 else None
            self.writer = SummaryWriter(str(run_dir), purge_step=purge)
        except ImportError:  # tensorboard is optional at run time
            self.console.print("[yellow]tensorboard not installed: no TensorBoard events[/yellow]")
        self.progress = Progress(
            TextColumn("[bold]kimg {task.completed:.2f}/{task.total:.2f}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("train", total=total_kimg, completed=start_kimg, info="")  # type: ignore[arg-type]  # rich counts floats; its stub says int
        self.progress.start()

    def step(self, kimg: float, info: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=kimg, info=info)

    def started(self, tick: int, kimg: float, sec_per_kimg: float, next_tick_kimg: float) -> None:
        """The line of tick ``tick`` (0 in a fresh run: the start; the last row's tick on resume), printed after
        the session's first iteration, on a terminal or off it: its speed and the time left at that speed."""
        if self.run_dir is None:
            return
        left = max(self.total_kimg - kimg, 0.0) * sec_per_kimg
        self.console.print(
            f"tick {tick:<4d} kimg {kimg:<8.2f} s/kimg {sec_per_kimg:<7.2f} first iteration; about "
            f"{_duration(left)} to kimg {self.total_kimg:g} at this speed; tick {tick + 1} at kimg "
            f"{min(next_tick_kimg, self.total_kimg):.2f}"
        )

    def tick(self, record: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if isinstance(v, int | float) and k not in ("kimg", "tick"):
                    self.writer.add_scalar(k, v, global_step=int(record["kimg"] * 1000))
            self.writer.flush()
        losses = " ".join(f"{k.split('/')[-1]} {record[k]:.3f}" for k in ("loss/G", "loss/D") if k in record)
        self.console.print(
            f"tick {record['tick']:<4d} kimg {record['kimg']:<8.2f} s/kimg {record['sec_per_kimg']:<7.2f} "
            f"{losses} skipped {record['skipped_total']}"
        )

    def hparams(self, config: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
        """The run's configuration as TensorBoard hparams (flattened: ``model.channel_base``, ``train.batch``,
        ``preset``, ...) with the scalar tags it is judged by, in the run's own event file."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        for summary in hparams(flat_hparams(config), {tag: 0.0 for tag in metric_tags}):
            self.writer._get_file_writer().add_summary(summary)
        self.writer.flush()

    def image(self, tag: str, png: Path, kimg: float) -> None:
        if self.writer is None:
            return
        import matplotlib.image as mpimg

        arr = mpimg.imread(str(png))[..., :3]
        self.writer.add_image(tag, arr, global_step=int(kimg * 1000), dataformats="HWC")

    def print(self, text: str) -> None:
        if self.run_dir is not None:
            self.console.print(text, markup=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.writer is not None:
            self.writer.close()

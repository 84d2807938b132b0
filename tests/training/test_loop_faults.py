"""Fault injection: tiny training runs killed at chosen points must resume to the uninterrupted run.

No hook exists in production code for this: each victim is a ``python -c DRIVER`` subprocess that monkeypatches
one function so that the process SIGKILLs itself at the chosen moment, then calls
:func:`medgan3d.training.loop.train`. The test process resumes the run and compares it with an uninterrupted
reference run of the same config: every tensor of the last checkpoint bit-identical, and stats.jsonl /
metrics.jsonl rows identical apart from timings. Also: a NaN blow-up with ``keep_last=1``, two processes on one
run, and a SIGTERM stop through the real command line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from medgan3d.config import load_preset
from medgan3d.training import loop as loop_module
from medgan3d.training import losses
from medgan3d.training.checkpoint import CHECKPOINTS_DIR, is_intact, is_network_dir, list_checkpoints
from medgan3d.training.loop import TrainConfig, TrainingError, train
from medgan3d.training.runfolder import RunLockedError

# keys whose values are wall-clock measurements (stats: sec_per_kimg, sec_per_iter; metrics: seconds,
# seconds_sampling; training_state.json: elapsed_s): everything else must match exactly
TIMING = re.compile(r"^(sec_|seconds|elapsed)")
# 3 ticks of one iteration each, a snapshot (grid, MMD, checkpoint) at every tick
FAULT_CFG: dict[str, Any] = dict(
    batch=8,
    batch_gpu=4,
    kimg=0.024,
    tick_kimg=0.008,
    snapshot_ticks=1,
    keep_last=2,
    grid=2,
    seed=3,
    metrics=("mmd",),
    metrics_samples=4,
)
WAIT_S = 180.0  # generous: the machine's two cores are shared

DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path

    import medgan3d.metrics
    from medgan3d import modeling
    from medgan3d.config import load_preset
    from medgan3d.training import checkpoint, loop, observe

    args = json.loads(sys.argv[1])
    point, nth = args["point"], args["nth"]
    calls = {}
    saving = [0]  # which save_checkpoint call is running (1, 2, ...); 0 outside one

    def nth_call(name):
        calls[name] = calls.get(name, 0) + 1
        return calls[name] == nth

    def act():
        if args["hold"]:  # stay alive, holding the run's lock, until the test kills us
            Path(args["hold"]).write_text("ready")
            time.sleep(600)
        os.kill(os.getpid(), signal.SIGKILL)

    save_checkpoint = checkpoint.save_checkpoint
    def counting_save(*a, **k):
        saving[0] = calls["save_checkpoint"] = calls.get("save_checkpoint", 0) + 1
        try:
            return save_checkpoint(*a, **k)
        finally:
            saving[0] = 0
    checkpoint.save_checkpoint = counting_save

    if point == "write":  # the nth file of checkpoint args["ckpt"]: temp file complete, not yet renamed
        atomic_write = modeling.atomic_write
        def write(path, fn):
            if saving[0] == args["ckpt"] and nth_call("write"):
                return atomic_write(path, lambda p: (fn(p), act()))
            return atomic_write(path, fn)
        # save_pretrained looks it up in modeling, save_checkpoint has its own binding
        modeling.atomic_write = checkpoint.atomic_write = write
    elif point == "save":  # the stats row of this tick is written, its checkpoint not yet
        _save = loop._save
        def save(*a, **k):
            if nth_call("save"):
                act()
            return _save(*a, **k)
        loop._save = save
    elif point == "evaluate":  # scores computed, no metrics.jsonl row yet
        evaluate_generator = medgan3d.metrics.evaluate_generator
        def evaluate(*a, **k):
            result = evaluate_generator(*a, **k)
            if nth_call("evaluate"):
                act()
            return result
        medgan3d.metrics.evaluate_generator = evaluate
    elif point == "tick":  # metrics.jsonl row written; the stats row torn halfway
        tick = observe.RunLogger.tick
        def torn_tick(self, record):
            if nth_call("tick"):
                line = json.dumps(record, sort_keys=True)
                with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as f:
                    f.write(line[: len(line) // 2])
                act()
            return tick(self, record)
        observe.RunLogger.tick = torn_tick
    else:
        raise SystemExit(f"unknown point {point}")

    cfg = loop.TrainConfig(**args["cfg"])
    loop.train(args["data"], load_preset("tiny").model, cfg, outdir=args["out"], preset="tiny",
               resume=args["resume"])
    """
)


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MEDGAN3D_ALLOCATOR="system", MEDGAN3D_CACHE=str(cache))


def _victim(
    data: Path,
    out: Path,
    point: str,
    nth: int,
    *,
    ckpt: int = 2,
    cfg: dict[str, Any] | None = None,
    resume: Path | None = None,
    hold: Path | None = None,
) -> subprocess.Popen[str]:
    args = {
        "point": point,
        "nth": nth,
        "ckpt": ckpt,
        "cfg": cfg or FAULT_CFG,
        "data": str(data),
        "out": str(out),
        "resume": str(resume) if resume else None,
        "hold": str(hold) if hold else None,
    }
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        env=_env(out / "cache"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not TIMING.match(k)}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _lines(run: Path, name: str) -> list[str]:
    path = run / name
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _rows(run: Path, name: str) -> list[dict[str, Any]]:
    cache = str(run.parent / "cache")  # each run's own feature cache, named in metrics provenance
    return [_untimed(json.loads(line.replace(cache, "<cache>"))) for line in _lines(run, name)]


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint: G, G_ema, D weights, Adam moments and the RNG state."""
    files = [ckpt / n / "model.safetensors" for n in ("G", "G_ema", "D")] + [
        ckpt / "training_state.safetensors"
    ]
    return {f"{f.parent.name}/{f.name}:{k}": v for f in files for k, v in load_file(f).items()}


def _state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / "training_state.json").read_text(encoding="utf-8"))


def _temps(run: Path) -> list[Path]:
    return sorted((run / CHECKPOINTS_DIR).glob(".tmp-*"))


def _names(run: Path) -> list[str]:
    return [p.name for p in list_checkpoints(run)]


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the subprocess exited ({proc.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=60)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The victims run with one thread; the in-process runs must too, or float sums may differ."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # and keeps setup_distributed from changing the thread count
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(brain16: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run of FAULT_CFG (its own feature cache, like every victim)."""
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDGAN3D_CACHE", str(out / "cache"))
        return train(brain16, load_preset("tiny").model, TrainConfig(**FAULT_CFG), outdir=out, preset="tiny")


# ------------------------------------------------------------------------------------ kill and resume


@dataclass(frozen=True)
class Fault:
    point: str
    nth: int
    checkpoints: tuple[str, ...]  # what the kill leaves (all kills are in the second snapshot, kimg 0.016)
    temp_left: bool  # a .tmp-* checkpoint folder left behind
    lines: tuple[int, int]  # stats.jsonl and metrics.jsonl lines left
    temp_networks: tuple[str, ...] = ()  # network folders already complete in the .tmp-* folder


FAULTS = {
    "inside the first file of a checkpoint write": Fault("write", 1, ("ckpt-000000008",), True, (2, 2)),
    "inside the last file of a checkpoint write": Fault(
        "write", 7, ("ckpt-000000008",), True, (2, 2), ("D", "G", "G_ema")
    ),
    "between a stats row and its checkpoint": Fault("save", 2, ("ckpt-000000008",), False, (2, 2)),
    "during a metrics snapshot": Fault("evaluate", 2, ("ckpt-000000008",), False, (1, 1)),
    "in a stats row, after its metrics row": Fault("tick", 2, ("ckpt-000000008",), False, (2, 2)),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_killed_run_resumes_to_the_uninterrupted_one(
    fault: Fault, brain16: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = _victim(brain16, tmp_path, fault.point, fault.nth)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL, f"the victim was not killed at the fault point:\n{err[-3000:]}"
    (run,) = tmp_path.glob("00000-*")
    # the kill happened where intended: what it left behind
    assert tuple(_names(run)) == fault.checkpoints
    assert bool(_temps(run)) == fault.temp_left
    for temp in _temps(run):
        assert sorted(p.name for p in temp.iterdir() if is_network_dir(p)) == list(fault.temp_networks)
        assert not (temp / "training_state.json").exists()
    assert (len(_lines(run, "stats.jsonl")), len(_lines(run, "metrics.jsonl"))) == fault.lines

    monkeypatch.setenv("MEDGAN3D_CACHE", str(tmp_path / "cache"))
    assert train(brain16, load_preset("tiny").model, TrainConfig(**FAULT_CFG), resume=run) == run

    assert _temps(run) == []
    assert _names(run) == _names(reference)
    for log in ("stats.jsonl", "metrics.jsonl"):  # no duplicate, no missing, no torn row
        assert _rows(run, log) == _rows(reference, log), log
    last, ref_last = list_checkpoints(run)[-1], list_checkpoints(reference)[-1]
    assert _untimed(_state(last)["state"]) == _untimed(_state(ref_last)["state"])
    got, want = _tensors(last), _tensors(ref_last)
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


# ------------------------------------------------------------------------------------ NaN blow-up


def _poison_from(batch_idx: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Gmain loss non-finite from iteration ``batch_idx`` on."""
    original_step, original_g_main = loop_module.train_step, losses.g_main
    poisoned = [False]

    def step(family: Any, nets: Any, reals: Any, state: Any, *args: Any) -> dict[str, float]:
        poisoned[0] = state.batch_idx >= batch_idx
        return original_step(family, nets, reals, state, *args)

    def g_main(*args: Any, **kwargs: Any) -> Any:
        loss, stats = original_g_main(*args, **kwargs)
        return (loss * float("nan") if poisoned[0] else loss), stats

    monkeypatch.setattr(loop_module, "train_step", step)
    monkeypatch.setattr(losses, "g_main", g_main)


def test_nan_blowup_with_keep_last_1_names_a_good_checkpoint_that_resumes(
    brain16: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_preset("tiny").model
    # snapshots due at every tick (one iteration), so three fall inside the streak (iterations 2, 3, 4)
    cfg = TrainConfig(
        batch=8,
        batch_gpu=4,
        kimg=0.08,
        tick_kimg=0.008,
        snapshot_ticks=1,
        keep_last=1,
        grid=2,
        seed=3,
        max_bad_steps=3,
    )
    _poison_from(2, monkeypatch)
    with pytest.raises(TrainingError, match=r"4 iterations in a row.*Gmain") as info:
        train(brain16, model, cfg, outdir=tmp_path, preset="tiny")
    (run,) = tmp_path.glob("00000-*")
    match = re.search(r"last good checkpoint: (.+)$", str(info.value))
    assert match, str(info.value)
    named = Path(match.group(1))
    assert named.parent == run / CHECKPOINTS_DIR and is_intact(named) is None
    state = _state(named)["state"]
    assert state["bad_consecutive"] == 0 and state["cur_nimg"] == 16
    assert list_checkpoints(run)[-1] == named  # none written during the streak, the good one not pruned
    assert _temps(run) == []
    assert [r["skipped_total"] > 0 for r in _rows(run, "stats.jsonl")] == [False, False, True, True, True]

    monkeypatch.undo()
    assert train(brain16, model, TrainConfig(kimg=0.032), resume=named) == run
    assert [round(r["kimg"], 3) for r in _rows(run, "stats.jsonl")] == [0.008, 0.016, 0.024, 0.032]
    assert all(r["skipped_total"] == 0 for r in _rows(run, "stats.jsonl"))
    assert _state(list_checkpoints(run)[-1])["state"]["cur_nimg"] == 32


def test_keep_last_1_keeps_one_checkpoint(brain16: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(
        batch=8, batch_gpu=4, kimg=0.016, tick_kimg=0.008, snapshot_ticks=1, keep_last=1, grid=2
    )
    run = train(brain16, load_preset("tiny").model, cfg, outdir=tmp_path, preset="tiny")
    assert _names(run) == ["ckpt-000000016"]


def test_a_run_that_ends_inside_a_nonfinite_streak_does_not_report_success(
    brain16: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrainConfig(
        batch=8, batch_gpu=4, kimg=0.032, tick_kimg=0.008, snapshot_ticks=1, grid=2, seed=3, max_bad_steps=5
    )
    _poison_from(2, monkeypatch)  # the last two iterations are skipped: fewer than max_bad_steps
    with pytest.raises(
        TrainingError, match=r"inside a streak of 2 non-finite.*last good checkpoint: .*ckpt-000000016"
    ):
        train(brain16, load_preset("tiny").model, cfg, outdir=tmp_path, preset="tiny")


# ------------------------------------------------------------------------------------ two processes


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_second_process_on_a_training_run_is_refused_and_touches_nothing(
    brain16: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDGAN3D_CACHE", str(tmp_path / "cache"))
    model = load_preset("tiny").model
    cfg = dict(batch=8, batch_gpu=4, kimg=0.008, tick_kimg=0.008, snapshot_ticks=1, grid=2, seed=3)
    run = train(brain16, model, TrainConfig(**cfg), outdir=tmp_path, preset="tiny")
    ready = tmp_path / "ready"
    # the first process resumes and holds still inside its next checkpoint write (a live .tmp-* folder)
    first = _victim(brain16, tmp_path, "write", 1, ckpt=1, cfg=cfg | {"kimg": 1.0}, resume=run, hold=ready)
    try:
        _wait_for(ready.exists, first, "the first process to start writing a checkpoint")
        assert (run / ".lock").read_text().strip() == str(first.pid)
        (temp,) = _temps(run)
        before = _file_bytes(run / CHECKPOINTS_DIR)
        with pytest.raises(RunLockedError) as info:
            train(brain16, model, TrainConfig(kimg=1.0), resume=run)
        assert str(run) in str(info.value) and f"pid {first.pid}" in str(info.value)
        assert temp.is_dir() and first.poll() is None  # its live temp folder was not cleaned as stale
        assert _file_bytes(run / CHECKPOINTS_DIR) == before
    finally:
        _kill(first)


# ------------------------------------------------------------------------------------ SIGTERM


def test_sigterm_stops_with_code_143_a_checkpoint_and_a_resume_line(brain16: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "cache")
    out = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "medgan3d",
        "train",
        "--data",
        str(brain16),
        "--config",
        "tiny",
        "--kimg",
        "10",
        "--batch",
        "8",
        "--batch-gpu",
        "4",
        "--tick",
        "0.008",
        "--snap",
        "1000",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8")
    try:
        _wait_for(lambda: any(p.stat().st_size for p in out.glob("*/stats.jsonl")), proc, "a stats row")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        _kill(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err
    (run,) = out.glob("0*")
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "stopped by SIGTERM" in line and f"--resume {run}" in line, line
    stop_nimg = _state(list_checkpoints(run)[-1])["state"]["cur_nimg"]  # written at the stop
    assert stop_nimg >= 8 and round(_rows(run, "stats.jsonl")[-1]["kimg"] * 1000) == stop_nimg

    more = f"{(stop_nimg + 8) / 1000:g}"
    done = subprocess.run(
        [sys.executable, "-m", "medgan3d", "train", "--resume", str(run), "--kimg", more],
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=WAIT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kimgs = [round(r["kimg"] * 1000) for r in _rows(run, "stats.jsonl")]
    assert kimgs == list(range(8, stop_nimg + 16, 8))
    assert _names(run)[-1] == f"ckpt-{stop_nimg + 8:09d}"

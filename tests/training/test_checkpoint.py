"""Reliability of run folders and checkpoints: integrity, fallback, locking, temps, logs, modes."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from medgan3d.config import load_preset
from medgan3d.fs import file_sha256
from medgan3d.modeling import SHA256_KEY, WeightsError, from_pretrained
from medgan3d.networks import Generator
from medgan3d.training.checkpoint import (
    NETWORKS_KEY,
    STATE_SHA_KEY,
    CheckpointError,
    CheckpointWarning,
    is_intact,
    list_checkpoints,
    load_checkpoint,
    load_generator,
    resolve_checkpoint,
    save_checkpoint,
)
from medgan3d.training.observe import new_run_dir
from medgan3d.training.runfolder import RunLockedError, clean_stale_temps, lock_run_dir, truncate_logs

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _networks(seed: int) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
    """Tiny G, G_ema, D (G_ema differs from G, so a swap is visible) and an Adam with state."""
    torch.manual_seed(seed)
    model = load_preset("tiny").model
    G, D = model.build_generator(), model.build_discriminator()
    G_ema = copy.deepcopy(G)
    with torch.no_grad():
        G_ema.mapping.layers[0].weight.add_(1.0)
    opt = torch.optim.Adam(D.parameters())
    D(torch.randn(4, *model.output_shape)).sum().backward()
    opt.step()
    return {"G": G, "G_ema": G_ema, "D": D}, {"D": opt}


def _save(run: Path, nimg: int, seed: int | None = None, **kw: object) -> Path:
    nets, opts = _networks(nimg if seed is None else seed)
    payload = {"state": {"cur_nimg": nimg}}
    return save_checkpoint(run, nimg, nets, opts, payload, {"rng.torch": torch.get_rng_state()}, **kw)  # type: ignore[arg-type]


def _ema_weight(ckpt: Path) -> torch.Tensor:
    return Generator.from_pretrained(ckpt / "G_ema").mapping.layers[0].weight


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - 7] ^= 0x01  # inside the tensor data, past the header
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


@pytest.fixture(scope="module")
def two_ckpts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with checkpoints at 32 and 64 images (copied per test before damaging)."""
    run = tmp_path_factory.mktemp("proto") / "00000-tiny"
    (run / "config.yaml").parent.mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    _save(run, 32)
    _save(run, 64)
    return run


@pytest.fixture
def run(two_ckpts: Path, tmp_path: Path) -> Path:
    dest = tmp_path / two_ckpts.name
    shutil.copytree(two_ckpts, dest)
    return dest


# ------------------------------------------------------------------------------------- integrity


def test_saved_network_records_its_sha256_and_a_flipped_byte_is_caught(tmp_path: Path) -> None:
    G = load_preset("tiny").model.build_generator()
    G.save_pretrained(tmp_path / "G")
    weights, config = tmp_path / "G" / "model.safetensors", tmp_path / "G" / "config.json"
    assert json.loads(config.read_text())[SHA256_KEY] == file_sha256(weights)
    original = weights.read_bytes()
    _flip_byte(weights)
    with pytest.raises(WeightsError, match=r"G/model\.safetensors: sha256 .* differs .*truncated or altered"):
        from_pretrained(tmp_path / "G")
    weights.write_bytes(original)
    assert isinstance(from_pretrained(tmp_path / "G"), Generator)


def test_files_saved_without_a_hash_still_load_and_truncation_is_still_caught(run: Path) -> None:
    """Checkpoints written before the hash was recorded: load as before; a cut file is caught by its header."""
    for ckpt in list_checkpoints(run):
        for name in ("G", "G_ema", "D"):
            cfg = ckpt / name / "config.json"
            cfg.write_text(
                json.dumps({k: v for k, v in json.loads(cfg.read_text()).items() if k != SHA256_KEY})
            )
        state = ckpt / "training_state.json"
        legacy = {
            k: v for k, v in json.loads(state.read_text()).items() if k not in (STATE_SHA_KEY, NETWORKS_KEY)
        }
        state.write_text(json.dumps(legacy))
    newest = list_checkpoints(run)[-1]
    nets, opts = _networks(0)
    saved, extra = load_checkpoint(newest, nets, opts)
    assert saved == {"state": {"cur_nimg": 64}} and "rng.torch" in extra
    torch.testing.assert_close(load_generator(run).mapping.layers[0].weight, _ema_weight(newest))
    _truncate(newest / "G_ema" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"G_ema/model\.safetensors: not a readable safetensors file"):
        load_checkpoint(newest, nets, opts)
    shutil.rmtree(newest / "G_ema")  # a legacy checkpoint lists no networks: it must have G, G_ema and D
    assert "G_ema: missing network directory" in str(is_intact(newest))


def test_training_state_hash_is_checked(run: Path) -> None:
    newest = list_checkpoints(run)[-1]
    state = json.loads((newest / "training_state.json").read_text())
    assert state[STATE_SHA_KEY] == file_sha256(newest / "training_state.safetensors")
    nets, opts = _networks(0)
    assert load_checkpoint(newest, nets, opts)[0] == {"state": {"cur_nimg": 64}}  # bookkeeping keys removed
    _flip_byte(newest / "training_state.safetensors")
    with pytest.raises(
        CheckpointError, match=r"ckpt-000000064/training_state\.safetensors: sha256 .* differs"
    ):
        load_checkpoint(newest, *_networks(0))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped G_ema byte": (
        lambda c: _flip_byte(c / "G_ema" / "model.safetensors"),
        r"G_ema/model\.safetensors: sha256",
    ),
    "truncated D": (lambda c: _truncate(c / "D" / "model.safetensors"), r"D/model\.safetensors: sha256"),
    "empty folder": (lambda c: (shutil.rmtree(c), c.mkdir()), r"ckpt-000000064: empty folder"),
    "no G_ema/config.json": (
        lambda c: (c / "G_ema" / "config.json").unlink(),
        r"G_ema/config\.json: missing",
    ),
    "no G_ema/": (lambda c: shutil.rmtree(c / "G_ema"), r"ckpt-000000064/G_ema: missing network directory"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_falls_back_with_a_warning_or_errors_when_named(
    run: Path, damage: str
) -> None:
    older, newest = list_checkpoints(run)
    apply, reason = DAMAGE[damage]
    apply(newest)
    assert is_intact(older) is None
    assert is_intact(newest) is not None and __import__("re").search(reason, is_intact(newest))
    # generate and evaluate load through load_generator: G_ema of the older checkpoint, never G of the newer
    with pytest.warns(CheckpointWarning, match=rf"skipped 1 checkpoint.*{reason}.*using ckpt-000000032"):
        G = load_generator(run)
    torch.testing.assert_close(G.mapping.layers[0].weight, _ema_weight(older))
    with pytest.warns(CheckpointWarning, match=reason):
        assert resolve_checkpoint(run) == older  # what train --resume uses
    with pytest.raises(CheckpointError, match=reason):
        load_generator(newest)
    with pytest.raises(CheckpointError, match=reason):
        resolve_checkpoint(newest)
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint(newest, *_networks(0))


def test_generate_from_a_run_folder_uses_the_newest_intact_checkpoint(run: Path, tmp_path: Path) -> None:
    from medgan3d.generate import sample_to_nifti

    (list_checkpoints(run)[-1] / "G_ema" / "config.json").unlink()
    with pytest.warns(CheckpointWarning, match=r"G_ema/config\.json: missing"):
        written = sample_to_nifti(run, [0], tmp_path / "out")
    assert [p.name for p in written] == ["seed0000.nii.gz"]


def test_no_intact_checkpoint_is_an_error_naming_each(run: Path) -> None:
    for ckpt in list_checkpoints(run):
        (ckpt / "D" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no intact checkpoint: .*ckpt-000000064/D.*ckpt-000000032/D"):
        load_generator(run)


def test_a_checkpoint_without_g_ema_uses_g_only_with_a_warning(tmp_path: Path) -> None:
    """An inflated (non-training) checkpoint with no G_ema at all: G, but never silently."""
    load_preset("tiny").model.build_generator().save_pretrained(tmp_path / "c" / "G")
    with pytest.warns(CheckpointWarning, match="holds no G_ema/"):
        load_generator(tmp_path / "c")


def test_a_family_without_g_ema_samples_from_g_quietly(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """A training checkpoint lists its networks: one saved without G_ema (HA-GAN) is intact and gives G."""
    nets, opts = _networks(0)
    del nets["G_ema"]
    nets["E"] = load_preset("tiny").model.build_discriminator()
    ckpt = save_checkpoint(tmp_path / "run", 8, nets, opts, {}, {})
    assert json.loads((ckpt / "training_state.json").read_text())[NETWORKS_KEY] == ["D", "E", "G"]
    assert is_intact(ckpt) is None
    G = load_generator(tmp_path / "run")
    torch.testing.assert_close(G.mapping.layers[0].weight, nets["G"].mapping.layers[0].weight)
    assert not [w for w in recwarn if issubclass(w.category, CheckpointWarning)]
    shutil.rmtree(ckpt / "E")
    assert is_intact(ckpt) == f"{ckpt / 'E'}: missing network directory"


# ---------------------------------------------------------------------------------- run folders


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=ENV,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )


def test_temp_folder_left_by_a_kill_mid_write_is_cleaned(run: Path) -> None:
    killed = _run_python(f"""
        import os, signal, torch
        from medgan3d.config import load_preset
        from medgan3d.training import checkpoint
        checkpoint.save_file = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        G = load_preset("tiny").model.build_generator()
        checkpoint.save_checkpoint({str(run)!r}, 96, {{"G": G}}, {{}}, {{}}, {{}})
    """)
    assert killed.returncode == -9, killed.stderr
    (temp,) = (run / "checkpoints").glob(".tmp-*")
    assert (temp / "G" / "model.safetensors").is_file()  # the kill left a half-written checkpoint
    (run / "checkpoints" / ".tmp-stray-file").write_text("x")
    removed = clean_stale_temps(run)
    assert sorted(removed) == sorted([temp, run / "checkpoints" / ".tmp-stray-file"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000032", "ckpt-000000064"]
    assert clean_stale_temps(run) == [] and clean_stale_temps(run / "nothing") == []


LOCKER = """
    import sys, time
    from medgan3d.training.runfolder import RunLockedError, lock_run_dir
    try:
        with lock_run_dir({run!r}):
            print("locked", flush=True)
            {then}
    except RunLockedError as exc:
        print(exc)
        sys.exit(3)
"""


def test_a_second_process_cannot_lock_a_run_while_the_first_holds_it(run: Path) -> None:
    with lock_run_dir(run) as lock_file:
        assert lock_file.read_text().strip() == str(os.getpid())
        second = _run_python(LOCKER.format(run=str(run), then="pass"))
        assert second.returncode == 3, second.stderr
        assert second.stdout.strip() == (
            f"{run}: another process is training this run (pid {os.getpid()}); wait for it to finish or stop it "
            "before resuming"
        )
    after = _run_python(LOCKER.format(run=str(run), then="pass"))
    assert after.returncode == 0 and after.stdout.strip() == "locked", after.stdout + after.stderr
    # a holder killed with SIGKILL leaves the file but not the lock
    killed = _run_python(
        LOCKER.format(run=str(run), then="import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    )
    assert killed.returncode == -9 and (run / ".lock").exists()
    with lock_run_dir(run):
        second_in_this_process = lock_run_dir(run)  # a second open file description conflicts too
        with pytest.raises(RunLockedError, match="another process is training this run"):
            second_in_this_process.__enter__()


def _allocate(outdir: str, desc: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    names = []
    for _ in range(CALLS):
        try:
            names.append(new_run_dir(outdir, desc).name)
        except OSError as exc:  # FileExistsError before the fix
            names.append(repr(exc))
    results.put(names)  # type: ignore[attr-defined]


PROCS, CALLS = 32, 8  # before the fix: 2-6 FileExistsError and 8-14 duplicate numbers in 256 calls


def test_concurrent_new_run_dir_gives_every_call_its_own_number(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(PROCS), ctx.Queue()
    procs = [
        ctx.Process(target=_allocate, args=(str(tmp_path), "ab"[i % 2], barrier, results))
        for i in range(PROCS)
    ]
    for p in procs:
        p.start()
    runs = [r for _ in procs for r in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * PROCS
    assert [r for r in runs if not r[:5].isdigit()] == []
    assert sorted(int(r[:5]) for r in runs) == list(range(PROCS * CALLS))  # unique numbers, whatever the desc
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(runs)  # no reservation left behind
    assert new_run_dir(tmp_path, "next x").name == f"{PROCS * CALLS:05d}-next_x"


# ----------------------------------------------------------------------------------- pruning, logs


def test_protected_checkpoint_survives_pruning(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _save(run, 1, seed=0, keep_last=2)
    for nimg in (2, 3, 4, 5):
        _save(run, nimg, seed=0, keep_last=2, protect=first)
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-000000001", "ckpt-000000004", "ckpt-000000005"]
    _save(run, 6, seed=0, keep_last=2)
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-000000005", "ckpt-000000006"]
    # resumed from an older checkpoint below a newer (damaged) one: the one just written is never pruned
    _save(run, 3, seed=0, keep_last=1)
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-000000003", "ckpt-000000006"]


def _rows(path: Path) -> list[float]:
    return [json.loads(line)["kimg"] for line in path.read_text().splitlines()]


def test_truncate_logs_cuts_rows_written_after_the_checkpoint(tmp_path: Path) -> None:
    stats, metrics = tmp_path / "stats.jsonl", tmp_path / "metrics.jsonl"
    stats.write_text(
        "".join(json.dumps({"kimg": k, "tick": i}) + "\n" for i, k in enumerate((0.032, 0.064, 0.096)))
        + '{"kimg": 0.1'  # a row torn by the kill
    )
    metrics.write_text(json.dumps({"kimg": 0.064, "fid": 1.0}) + "\n" + json.dumps({"kimg": 0.128}) + "\n")
    truncate_logs(tmp_path, 64 / 1000)
    assert _rows(stats) == [0.032, 0.064] and _rows(metrics) == [0.064]
    inode = stats.stat().st_ino
    truncate_logs(tmp_path, 0.064)  # nothing to cut: the file is not rewritten
    assert stats.stat().st_ino == inode
    truncate_logs(tmp_path / "missing", 0.0)


# ------------------------------------------------------------------------------------------ umask


@pytest.mark.parametrize(("umask", "dirs", "files"), [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664)])
def test_checkpoints_and_inflated_folders_follow_the_umask(
    tmp_path: Path, umask: int, dirs: int, files: int
) -> None:
    from medgan3d.inflate import save_inflated

    old = os.umask(umask)
    try:
        ckpt = _save(tmp_path / "run", 32)
        nets, _ = _networks(0)
        inflated = save_inflated(nets, tmp_path / "inflated", {"strategy": "none"})
    finally:
        os.umask(old)
    for top in (ckpt, inflated):
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (dirs if path.is_dir() else files), (path, oct(mode))

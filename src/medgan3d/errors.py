"""The package's error classes, their exit codes, and checks that must pass before a run folder exists.

The command line (``medgan3d.cli.main``) turns any error into one line ``error: <message>`` and an exit code;
see docs/reliability.md, "Exit codes and error messages". Library code raises :class:`MedganError` (or a
standard ``ValueError``/``OSError``) for a failure the user can act on, and :class:`UsageError` for a value
that is wrong by itself or with the others, found before anything was read or written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config imports this module
    from medgan3d.config import ModelSettings, TrainConfig

EXIT_OK = 0
EXIT_FAILURE = 1  # an input could not be used, or the work failed
EXIT_USAGE = 2  # the command line is wrong; refused before anything was created (click's code too)
EXIT_INTERNAL = 3  # a bug in medgan3d: an exception nobody expected
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
# A training run stopped by a signal after writing a checkpoint exits 128 + the signal (130 SIGINT, 143 SIGTERM):
# see medgan3d.training.loop.TrainingStopped.


class MedganError(Exception):
    """A failure the user can act on; the message names the file or value and the reason."""

    exit_code: int = EXIT_FAILURE


class UsageError(MedganError, ValueError):
    """A value that is wrong by itself or with the others; nothing was created.

    Also a ``ValueError``, so callers that catch ``ValueError`` from configuration keep working."""

    exit_code = EXIT_USAGE


def check_batch_fits_model(model_cfg: ModelSettings, train_cfg: TrainConfig, world: int = 1) -> None:
    """Refuse a batch split the networks cannot run, before any run folder or network exists.

    The global batch is split into ``world`` processes × micro-batches of ``batch_gpu``. The discriminator's
    minibatch-std layer groups each micro-batch into groups of ``min(mbstd_group_size, batch_gpu)``
    (networks.layers.MinibatchStd), so ``batch_gpu`` must be a multiple of the group size or at most it.
    Families without minibatch-std (no ``mbstd_group_size``) only need the split to be exact.
    """
    batch, batch_gpu = train_cfg.batch, train_cfg.batch_gpu
    if batch_gpu < 1 or batch < 1:
        raise UsageError(f"batch {batch} and batch_gpu {batch_gpu} must both be >= 1")
    if batch % (batch_gpu * world):
        procs = f" × processes {world}" if world > 1 else ""
        raise UsageError(f"batch {batch} must be a multiple of batch_gpu {batch_gpu}{procs}")
    group = getattr(model_cfg, "mbstd_group_size", None)
    if group and batch_gpu % min(group, batch_gpu):
        raise UsageError(
            f"batch_gpu {batch_gpu} does not split into the discriminator's minibatch-std groups of {group} "
            f"(mbstd_group_size): use a multiple of {group} or at most {group}"
        )

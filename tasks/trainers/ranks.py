"""Publishing a model folder from one process under multi-process (DDP) training.

With ``train.strategy: ddp`` Lightning's subprocess launcher re-runs the training command once per
further device, so every process runs the whole trainer function. All processes must train and
validate (their collectives have to match), but only global rank 0 writes the model folder:
:func:`rank_zero_dir` gives rank 0 the :func:`~tasks.storage.atomic_dir` temporary of the output
and the other ranks a scratch folder outside it (removed at the end; Lightning's checkpoints and
logs are written by rank 0 only, into rank 0's folder). :func:`rank_zero_result` then holds the
other ranks until rank 0 has published and hands them rank 0's result, so every rank returns
the published folder and its values.

The rank is Lightning's ``rank_zero_only.rank``: the launcher sets ``LOCAL_RANK`` (``RANK`` under
torchrun) in each child's environment before it imports Lightning, and the DDP strategy sets the
global rank when training starts. A single process is rank 0 and behaves as without this module.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from tasks.storage import atomic_dir

T = TypeVar("T")


def global_rank() -> int:
    """Return this process's global DDP rank (0 in a single-process run)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


@contextlib.contextmanager
def rank_zero_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield the folder a trainer writes ``final``'s files into; only rank 0 publishes ``final``.

    Rank 0: :func:`~tasks.storage.atomic_dir` of ``final`` (published when the block succeeds).
    Other ranks: a scratch folder in the system temporary directory, removed afterwards, so they
    write nothing under or beside ``final``.

    Raises:
        RuntimeError: the process's rank changed inside the block (it was not known before
            training started: a multi-node or externally launched job without ``RANK`` set);
            nothing is published then.

    """
    rank = global_rank()
    if rank == 0:
        with atomic_dir(final) as tmp:
            yield tmp
            _check_rank_unchanged(rank, final)
        return
    with tempfile.TemporaryDirectory(prefix=f"eeflow-rank{rank}-") as scratch:
        yield Path(scratch)
        _check_rank_unchanged(rank, final)


def _check_rank_unchanged(before: int, final: str | os.PathLike[str]) -> None:
    after = global_rank()
    if after != before:
        raise RuntimeError(
            f"this process was rank {before} when it started writing {final} but is rank {after} "
            "after training: the rank was not known before training (set RANK, or LOCAL_RANK on "
            "one node, in each process's environment, as torchrun and Lightning's launcher do)"
        )


def rank_zero_result(value: T | None) -> T:
    """Return rank 0's ``value`` on every rank, once every DDP process has reached this call.

    Rank 0 passes its result, the other ranks None. A collective (every rank must call it at the
    same point: rank 0 after publishing) when a multi-process group is initialised; otherwise
    ``value`` itself. ``value`` must be picklable.

    Raises:
        RuntimeError: rank 0 (or a single process) passed None.

    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box: list[Any] = [value]
        dist.broadcast_object_list(box, src=0)
        value = cast("T | None", box[0])
    if value is None:
        raise RuntimeError("rank 0 returned no result to hand to the other ranks")
    return value

"""Resumable sweeps: orbax checkpoints per bucket and chunk of steps.

Layout of ``checkpoint_dir``::

    sweep.json            fingerprint of the sweep (task, interventions, budget, key, chunking)
    bucket_000/<chunk>/   orbax checkpoint after <chunk> chunks of bucket 0 (only the latest kept)
    bucket_001/...

A checkpoint holds the whole carry of the bucket's program (parameters,
optimiser state, permutation, alive flags, ...) and the metric history so far.
Orbax writes each checkpoint to a temporary folder and renames it when
complete, so a process killed at any point (SIGKILL included) leaves either
the previous or the new checkpoint, never a torn one; re-running the same sweep
restores the latest one and continues with the same compiled chunk program, so
the results are bit-identical to an uninterrupted sweep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from hgcnet_jax import _io

__all__ = ["check_fingerprint", "BucketCheckpointer"]

FINGERPRINT = "sweep.json"


#: Fingerprint keys that earlier versions recorded but that do not change a sweep's results:
#: ``devices`` (a sweep sharded over k devices trains the same runs as on one, to float
#: rounding; a checkpoint written on one device count resumes on another).
RESULT_NEUTRAL = ("devices",)


def check_fingerprint(checkpoint_dir: str | Path, fingerprint: dict[str, Any]) -> Path:
    """Create ``checkpoint_dir`` and record ``fingerprint``, or check it matches the recorded one.

    Raises:
        ValueError: if the folder holds a checkpoint of a different sweep.
        PermissionError: if the folder cannot be written.
    """
    root = _io.ensure_writable_dir(checkpoint_dir, what="checkpoint folder")
    path = root / FINGERPRINT
    canon = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        for k in RESULT_NEUTRAL:  # recorded by older versions; they do not change the results
            old.pop(k, None)
        if old != canon:
            diff = sorted(k for k in set(old) | set(canon) if old.get(k) != canon.get(k))
            raise ValueError(
                f"checkpoint_dir {str(root)!r} holds a different sweep (differs in {diff}); "
                "use a new checkpoint_dir or delete this one to start over"
            )
    else:
        _io.write_json(path, canon)
    return root


class BucketCheckpointer:
    """Latest-only orbax checkpoints of one bucket, indexed by completed chunks."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._mngr = ocp.CheckpointManager(
            self.directory.absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False, create=True),
            item_handlers=ocp.StandardCheckpointHandler(),  # so a fresh manager reads saved metadata
        )

    def latest(self) -> int | None:
        """Number of chunks completed in the latest checkpoint, or ``None``."""
        return self._mngr.latest_step()

    def save(self, chunks_done: int, tree: Any) -> None:
        self._mngr.save(chunks_done, args=ocp.args.StandardSave(tree))
        self._mngr.wait_until_finished()

    def saved_replicas(self, chunks_done: int) -> int:
        """Replicas (padding included) in a saved checkpoint: axis 1 of its ``history``.

        A sweep pads each bucket to a multiple of its mesh size, so a checkpoint written on
        another device count may hold another number of padding replicas.
        """
        return int(self._mngr.item_metadata(chunks_done)["history"].shape[1])

    def restore(self, chunks_done: int, target: Any) -> Any:
        abstract = jax.tree.map(_abstract, target)
        return self._mngr.restore(chunks_done, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self._mngr.close()


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return np.asarray(x)

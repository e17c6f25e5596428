"""A study's output folder: its files, their phases, atomic writes, and the errors about it.

Everything lands in one output folder, one file per finished phase, each written
atomically (a temporary file renamed over the target) as soon as the phase is
complete, with the permissions the umask gives a new file:

============================  =====================================================
``config.json``               the config and its fingerprint (written once)
``checkpoints/sweep/``        the sweep engine's checkpoints (a killed sweep resumes)
``sweep.parquet``             one row per run: the sweep's table (losses, accuracies, ``diverged``)
``runs.parquet``              the same rows plus the N, S, C columns
``posterior_hypergraph.nc``   ArviZ netCDF posterior of the hypergraph SCM
``posterior_pairwise.nc``     ArviZ netCDF posterior of its pairwise twin
``posterior_<candidate>.nc``  the other candidate graphs' posteriors (:func:`posterior_file`)
``summary.json``              every number of the report (see :func:`hgcnet_jax.study.summary.summarise`)
``plots/<name>.png|svg``      the figures
``report.html``               one self-contained page (figures inlined)
``phases.json``               when and how long each phase ran (and which one failed)
============================  =====================================================

A folder that holds a study of a *different* config is refused (the error lists the
changed fields) unless ``overwrite`` — except where the change leaves the finished
phases' results as they are: a study whose config differs only in ``causal.*`` or
``current_batch_size`` keeps its trained and measured runs and recomputes the causal
phase; one that differs also in ``mediators.*`` keeps its sweep (:func:`reusable_phases`).
Recomputing a phase deletes the files of the phases after it (:func:`drop_after`), so
the folder never mixes two computations.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from hgcnet_jax import _io
from hgcnet_jax.config import ConfigError, StudyConfig

__all__ = ["ARTIFACTS", "DIRS", "FORMAT", "StudyFolderError", "StudyPhaseError", "Phases", "default_out",
           "prepare_folder", "posterior_file", "reusable_phases", "drop_after", "first_missing", "read_json", "remove", "write_parquet", "write_netcdf"]

#: Files of a study folder, in phase order.
ARTIFACTS = (
    "config.json",
    "sweep.parquet",
    "runs.parquet",
    "posterior_hypergraph.nc",
    "posterior_pairwise.nc",
    "summary.json",
    "report.html",
    "phases.json",
)


DIRS = ("plots", "checkpoints")


FORMAT = 1


class StudyFolderError(RuntimeError):
    """The output folder holds another study (a different config) or foreign study files."""


class StudyPhaseError(RuntimeError):
    """A phase of a study failed after training started; the finished phases were kept.

    Attributes:
        phase: ``"sweep"``, ``"mediators"``, ``"causal fits"``, ``"effects"`` or ``"report"``.
        reason: what went wrong (the cause's message).
        out: the output folder; its ``report.html`` says which phase failed and what is there.
        user_error: the cause is the config (e.g. every run diverged at its learning rate),
            not a bug or a resource limit.
    """

    def __init__(self, phase: str, reason: str, out: Path, *, user_error: bool = False):
        self.phase, self.reason, self.out, self.user_error = phase, reason, Path(out), user_error
        super().__init__(
            f"the {phase} phase failed: {reason}. Everything finished before it is kept in {str(self.out)!r} "
            f"(report.html says what is there); fix the cause and re-run the same command to resume"
        )


def default_out(config: StudyConfig) -> Path:
    """The default output folder of a config: ``hgcnet-out/study-<dataset>-<model>`` in the working directory."""
    return Path("hgcnet-out") / f"study-{config.data.name}-{config.model.name}"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def prepare_folder(out: Path, config: StudyConfig, *, overwrite: bool) -> bool:
    """Check the folder before any work. Returns True when it holds this config's study (resume).

    Raises:
        PermissionError: the folder cannot be written.
        StudyFolderError: another study is there and ``overwrite`` is false.
    """
    existed = out.exists()
    _io.ensure_writable_dir(out)
    if not existed:
        return False
    saved = read_json(out / "config.json")
    ours = [n for n in ARTIFACTS[1:] if (out / n).exists()] + [d for d in DIRS if (out / d).exists()]
    if saved is None:
        if not ours and not (out / "config.json").exists():
            return False
        if not overwrite:
            raise StudyFolderError(
                f"{str(out)!r} holds study files ({', '.join(ours) or 'config.json'}) without a readable "
                "config.json; choose another --out or pass --overwrite to delete them"
            )
    elif saved.get("fingerprint") == config.fingerprint():
        return True
    else:
        try:
            changed = StudyConfig.from_dict(saved["config"]).diff(config)
        except (ConfigError, KeyError, TypeError):
            changed = ["<unreadable previous config>"]
        keep = reusable_phases(changed)
        if keep:
            last = "runs.parquet" if "mediators" in keep else "sweep.parquet"
            drop_after(out, last)
            phases = Phases(out)
            phases.drop(*[p for p in ("mediators", "fits", "causal", "report", "failed") if p not in keep])
            _io.write_json(out / "config.json", {**saved, "fingerprint": config.fingerprint(),
                                                 "config": config.to_dict(), "changed": changed, "updated": now()})
            return True
    if saved is not None and not overwrite:
        raise StudyFolderError(
            f"{str(out)!r} holds a study with a different config (changed: {', '.join(changed)}). "
            "Re-run with the same config to resume it, choose another --out, or pass --overwrite to "
            "delete it and start again"
        )
    for name in (*ARTIFACTS, *DIRS):
        remove(out / name)
    return False


#: Config sections whose change leaves each phase's result as it is.
_LATER = {"mediators": ("causal.", "current_batch_size"), "sweep": ("mediators.", "causal.", "current_batch_size")}


def reusable_phases(changed: list[str]) -> tuple[str, ...]:
    """The finished phases a study can keep when its config changed in the fields ``changed``.

    ``("sweep", "mediators")`` when only ``causal.*`` and ``current_batch_size`` changed (the
    trained and measured runs stand; the causal phase is recomputed), ``("sweep",)`` when
    ``mediators.*`` changed too, ``()`` otherwise. The memory knobs of the measurement are
    not in the fingerprint at all (:meth:`StudyConfig.fingerprint`).
    """
    if not changed or any(c.startswith("<") for c in changed):
        return ()
    return tuple(p for p in ("sweep", "mediators") if all(c.startswith(_LATER[p]) for c in changed))


def first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it would add)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def posterior_file(candidate: str) -> str:
    """The file name of a candidate graph's posterior: ``posterior_<candidate>.nc``, ``->`` written
    ``-to-`` and ``,`` written ``+`` (``"B->S,B->C"`` → ``posterior_B-to-S+B-to-C.nc``)."""
    return f"posterior_{candidate.replace('->', '-to-').replace(',', '+')}.nc"


def drop_after(out: Path, artifact: str) -> None:
    """Delete the files of every phase after ``artifact`` (they were computed from older inputs)."""
    later = ARTIFACTS[ARTIFACTS.index(artifact) + 1 : -1]
    for name in later:
        remove(out / name)
    if ARTIFACTS.index(artifact) < ARTIFACTS.index("posterior_hypergraph.nc"):
        for p in out.glob("posterior_*.nc"):
            remove(p)
    if ARTIFACTS.index(artifact) < ARTIFACTS.index("report.html"):
        remove(out / "plots")


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    with _io.atomic_write(path, "wb") as f:
        df.to_parquet(f, index=False)


def write_netcdf(idata, path: Path) -> None:
    with _io.atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp))


class Phases:
    """``phases.json``: when each phase finished and how long it took (informational)."""

    def __init__(self, out: Path):
        self.path = out / "phases.json"
        self.data = read_json(self.path) or {}

    def done(self, name: str, seconds: float, **extra: Any) -> None:
        self.data[name] = {"seconds": round(float(seconds), 3), "finished": now(), **extra}
        _io.write_json(self.path, self.data)

    def drop(self, *names: str) -> None:
        for n in names:
            self.data.pop(n, None)
        _io.write_json(self.path, self.data)

    def fail(self, phase: str, error: BaseException) -> None:
        self.data["failed"] = {"phase": phase, "error": str(error), "type": type(error).__name__, "when": now()}
        _io.write_json(self.path, self.data)

    @property
    def failed(self) -> dict[str, Any] | None:
        return self.data.get("failed")

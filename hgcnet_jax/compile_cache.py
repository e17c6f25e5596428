"""JAX's persistent compilation cache, for the programs a study compiles again and again.

A study compiles one NUTS program per candidate graph, and every refit of the answering
graph (placebo and held-out-seed refuters, leave-one-batch-size-out) builds a fresh closure
that JAX's in-memory cache cannot recognise, so it compiles the very same program again.
With JAX's persistent cache (``jax_compilation_cache_dir``) the second compile is a read
from disk, within a run and across runs (a resumed study, a re-run, a notebook restarted).
A loaded executable computes exactly what a fresh compile does.

``hgcnet study`` turns it on by default (``--no-compile-cache`` turns it off). A library
must not change JAX's global configuration on import, so this is a function that the
command line, the experiment scripts and a user's notebook call explicitly::

    import hgcnet_jax as hg
    hg.compile_cache.enable()          # ~/.cache/hgcnet_jax/xla (or $XDG_CACHE_HOME/hgcnet_jax/xla)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_dir", "enable", "CompileClock"]

#: Compiles shorter than this are not worth a disk write (JAX's own default is 1 s).
MIN_COMPILE_TIME_S = 0.5
#: Upper bound of the cache folder, where the ``filelock`` package is installed (JAX needs it to
#: evict the least recently used entries); without it the folder is not bounded.
MAX_SIZE_BYTES = 2 * 1024**3


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/hgcnet_jax/xla``, else ``~/.cache/hgcnet_jax/xla``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "hgcnet_jax" / "xla"


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process.

    Call it before the first compilation: JAX decides once per process whether it uses a
    cache. Where the caller's environment already chose a folder (``JAX_COMPILATION_CACHE_DIR``
    or an earlier ``jax.config.update``), that choice is kept.

    Args:
        path: The cache folder (created if missing); :func:`default_dir` by default.

    Returns:
        The folder in use, or ``None`` when it cannot be created (the run then compiles as
        usual; nothing fails for want of a cache).
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    folder = Path(path) if path is not None else default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:  # the caller's threshold wins
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    try:  # JAX bounds the folder (LRU eviction) only with the filelock package; unbounded otherwise
        import filelock  # noqa: F401
    except ImportError:
        pass
    else:
        jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
    return folder


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling while the ``with`` body runs.

    Listens to JAX's own compile-duration events (``jax.monitoring``) for the body's
    duration only, so a program's warm run time can be reported apart from its one-off
    compilation (a compile in another thread meanwhile is counted too).

    Attributes:
        seconds: tracing + lowering + XLA compilation.
        compile_seconds: XLA backend compilation alone.
        compiles: the number of XLA backend compilations (0 when every program was cached).
    """

    _BACKEND = "/jax/core/compile/backend_compile_duration"
    _EVENTS = frozenset({"/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                         _BACKEND})

    def __init__(self):
        self.seconds = 0.0
        self.compile_seconds = 0.0
        self.compiles = 0

    def _listen(self, event: str, duration: float, **_):
        if event in self._EVENTS:
            self.seconds += float(duration)
        if event == self._BACKEND:
            self.compile_seconds += float(duration)
            self.compiles += 1

    def __enter__(self):
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc):
        import jax

        jax.monitoring.unregister_event_duration_listener(self._listen)
        return False

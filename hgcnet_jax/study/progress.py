"""Progress display of a study: the log lines and the bar of the causal phase.

Display only: nothing here changes a number or the memory use of a study.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

from hgcnet_jax.config import StudyConfig

__all__ = ["log_to_stderr", "causal_bar", "alive", "step", "tick"]


def log_to_stderr(msg: str) -> None:
    print(f"[hgcnet study] {msg}", file=sys.stderr, flush=True)


def causal_bar(config: StudyConfig, progress: bool, num_graphs: int = 2):
    """A ``tqdm`` bar over the causal phase: one tick per NUTS fit and criticism (one each per candidate
    graph), per query and per refutation."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    total = 2 * num_graphs + 4 + len(config.causal.refuters)
    return tqdm(total=total, desc="causal (NUTS fits, criticism, queries)", unit="step", leave=False)


@contextlib.contextmanager
def alive(bar, *, every: float = 1.0) -> Iterator[None]:
    """Redraw ``bar`` every ``every`` seconds (its elapsed time and the step it names) while the body runs.

    A NUTS or SVI fit is one compiled XLA program (warm-up and sampling in one scan, the
    chains vmapped, inside :mod:`hgcnet_jax.causal`): nothing reaches the host until it
    ends, so the bar cannot count its transitions. This keeps the bar moving and
    :func:`step` says which fit or query is running, at no cost to the computation (a
    host thread that sleeps between redraws).
    """
    if bar is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            bar.refresh()

    thread = threading.Thread(target=beat, name="hgcnet-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def step(bar, what: str) -> None:
    """Name the step that starts now on ``bar``."""
    if bar is not None:
        bar.set_postfix_str(what, refresh=True)


def tick(bar, what: str) -> None:
    if bar is not None:
        bar.set_postfix_str(what, refresh=False)
        bar.update(1)

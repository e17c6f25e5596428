"""The ``hgcnet`` command line.

``hgcnet study`` (the default command) runs the whole batch-size study and
writes its report; ``hgcnet prune`` runs Granger-causal pruning; ``hgcnet data``
lists the datasets and where their files are found. Every user error (a bad flag,
a bad config file, a missing dataset, an unwritable or foreign output folder)
ends with exit status 2 and a one-line message that names the field, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "config_from_args"]

_STUDY_DESCRIPTION = """\
Find out how the batch size B changes generalisation G, and why.

The study trains the model once per (batch size, seed) -- all runs of one batch
size at once, vectorised -- measures on every run the gradient noise N, the
sharpness S (top Hessian eigenvalue by Lanczos) and a complexity C, fits a
Bayesian structural causal model over the hypergraph B -> N -> S -> C -> G with
the hyperedge {N, S} -> C, its pairwise twin and the variants with a training-
budget path (B -> C, B -> S), checks each against the experiment's own arms and
the independences it implies, and writes a report: whether a graph fits (first),
E[G | do(B = b)] for every b, the ATE of the smallest against the largest batch
size, direct and mediated effects and their sensitivity, PSIS-LOO, refutations,
MCMC diagnostics and a recommended batch size (from the arm means when no graph
fits).

With no arguments it runs a small offline demo (a synthetic CSBM graph with a
GCN; a few minutes on a laptop CPU). The paper's setting:

    hgcnet study --dataset cora --model gcn

Every check that needs no training runs first (the config, the dataset and
model, the mediator columns, enough runs for the causal fit and each refuter);
--dry-run runs only these. Re-running the same command resumes: finished phases
are read back from the output folder, also after a failed phase (its report.html
says which phase failed and why). A changed config is refused unless you pass
--overwrite.
"""

_STUDY_EPILOG = """\
configuration precedence (later wins):
  preset  <  --config FILE  <  flags  <  --set KEY=VALUE

presets:
  tiny    a smoke test in about a minute (3 batch sizes, 2 epochs, short MCMC; numbers mean nothing)
  quick   the embedded demo: B in {16,32,64,128,256} x 4 seeds, few epochs (default for csbm/digits)
  paper   the paper's grid: B in {16,...,512} x 10 seeds (default for every other dataset)

size of the grid: the causal fit needs at least 10 runs (batch sizes x seeds) that
trained without diverging, and the data_subset refuter, which refits on 80 % of
them, needs 12; the holdout_seeds refuter (in the quick preset) refits on the seeds
it does not hold out (70 %), so their runs must reach 10 too (e.g. 3 batch sizes
need 6 seeds); all are checked before training.

examples:
  hgcnet study                                   # offline demo, report in ./hgcnet-out/study-csbm-gcn/
  hgcnet study --preset tiny --out smoke         # a smoke test of the whole pipeline
  hgcnet study --dataset cora --model gcn        # the paper's setting on Cora
  hgcnet study --dataset cora --model gcn --dry-run   # check config, data and grid; train nothing
  hgcnet study --batch-sizes 16,64,256 --seeds 6 --epochs 10
  hgcnet study --devices 2                       # runs sharded over 2 devices (on a CPU: 2 host devices)
  hgcnet study --config study.toml --out runs/exp1
  hgcnet study --set causal.num_samples=2000 --set model.options.hidden=32
  hgcnet study --print-config > study.toml       # write the resolved config, edit, reuse

output folder (--out): report.html (open it in a browser), summary.json,
sweep.parquet, runs.parquet, posterior_<candidate graph>.nc,
plots/*.png|svg, phases.json. A failed phase keeps everything finished before it
and its report.html says which phase failed and why.
"""


class _UsageError(Exception):
    """A user error reported as ``hgcnet: error: …`` with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)  # --epoch must not silently mean --epochs
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse's own errors: same format, status 2
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 16,32,64, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one batch size")
    return values


def _assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. train.epochs=5), got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise argparse.ArgumentTypeError(f"empty key in {text!r}")
    try:  # a TOML value: 5, 0.1, true, "text", [16, 32]
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The ``hgcnet`` argument parser (subcommands ``study``, ``prune``, ``data``)."""
    from hgcnet_jax._version import __version__

    parser = _Parser(
        prog="hgcnet",
        description="hgcnet_jax: intervene on training, measure what happens inside, fit a causal hypergraph.",
        epilog="Run 'hgcnet study --help' for the main command. 'hgcnet' alone runs 'hgcnet study'.",
    )
    parser.add_argument("--version", action="version", version=f"hgcnet_jax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{study,prune,data}", parser_class=_Parser)

    s = sub.add_parser("study", help="batch-size study end to end (default)", description=_STUDY_DESCRIPTION,
                       epilog=_STUDY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = s.add_argument_group("what to study")
    g.add_argument("--dataset", metavar="NAME", help="dataset (default csbm; see 'hgcnet data'): csbm, digits, "
                   "cora, citeseer, pubmed, fashion_mnist, ...")
    g.add_argument("--model", metavar="NAME", help="model (default gcn): gcn, gat, mlp, lenet5, transformer, ...")
    g.add_argument("--data-root", metavar="DIR", help="folder with dataset files (default: $HGCNET_DATA_DIR, cache)")
    g.add_argument("--split", metavar="NAME", help="dataset split (paper preset on Planetoid: full)")
    g.add_argument("--preset", choices=("auto", "tiny", "quick", "paper"), default="auto",
                   help="starting values of the grid (default auto: quick for csbm/digits, paper otherwise)")
    g = s.add_argument_group("interventions and training")
    g.add_argument("--batch-sizes", type=_int_list, metavar="B,B,...", help="batch sizes to intervene with, e.g. 16,64,256")
    g.add_argument("--seeds", type=int, metavar="N", help="seeds per batch size")
    g.add_argument("--epochs", type=int, metavar="N", help="epochs per run")
    g.add_argument("--lr", type=float, metavar="X", help="learning rate")
    g.add_argument("--optimizer", metavar="NAME", help="sgd, momentum or adam")
    g.add_argument("--current-batch-size", type=int, metavar="B",
                   help="the batch size you use now; the report gives P(best beats it) (default: the largest)")
    g.add_argument("--seed", type=int, metavar="N", help="master random seed (default 0)")
    g.add_argument("--budget", metavar="KIND", help="how long runs train: epochs (equal epochs, default), steps "
                   "(equal steps: also --set train.steps=N) or convergence (early stopping on validation accuracy)")
    g = s.add_argument_group("causal model")
    g.add_argument("--edge-form", metavar="FORM", help="form of the mediators' edges: linear (default) or rbf")
    g.add_argument("--treatment-form", metavar="FORM", help="form of the edges out of B: rbf (default) or linear")
    g.add_argument("--hyperedge-form", metavar="FORM", help="form of {N, S} -> C: interaction (default) or mlp")
    g.add_argument("--outcome-transform", metavar="NAME", help="equation of G: logit (default, bounded) or identity")
    g.add_argument("--noise", metavar="FAMILY", help="noise of every equation: gaussian (default) or student "
                   "(heavy tails)")
    g.add_argument("--noise-scale", metavar="KIND", help="noise scale of every equation: parents (default: "
                   "heteroscedastic, the spread may change with B) or constant")
    g = s.add_argument_group("configuration, output and behaviour")
    g.add_argument("--config", metavar="FILE", help="TOML or YAML config file (layout: see --print-config)")
    g.add_argument("--set", dest="sets", action="append", type=_assignment, default=[], metavar="KEY=VALUE",
                   help="set any config field by its dotted name, e.g. causal.num_chains=4 (repeatable)")
    g.add_argument("--out", metavar="DIR", help="output folder (default ./hgcnet-out/study-<dataset>-<model>)")
    g.add_argument("--devices", type=int, metavar="N",
                   help="shard the sweep's runs over N devices (default: every GPU/TPU, one CPU device); on a CPU "
                   "the command restarts itself with N host devices, which helps on a multi-core machine")
    g.add_argument("--data-devices", type=int, metavar="K",
                   help="train each run on K devices, its minibatches split over them (default 1: every device "
                   "trains its own runs); K divides --devices and every batch size")
    g.add_argument("--no-compile-cache", action="store_true",
                   help="do not use JAX's persistent compilation cache (default: on, in ~/.cache/hgcnet_jax/xla or "
                   "$JAX_COMPILATION_CACHE_DIR): refits and re-runs then compile every program again")
    g.add_argument("--overwrite", "--force", action="store_true",
                   help="delete a previous study with a different config in --out and start again")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bars (sweep steps, mediator runs, causal fits and queries); the phase log stays")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="nothing on stderr but errors: no progress bars and no phase log")
    g.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    g.add_argument("--dry-run", action="store_true",
                   help="run every check that needs no training (config, dataset, model, mediator columns, "
                   "enough runs), print the plan and exit; writes nothing")

    sub.add_parser("prune", help="Granger-causal pruning against magnitude pruning (see 'hgcnet prune --help')",
                   add_help=False)

    d = sub.add_parser("data", help="list the datasets and where their files are found",
                       description="List the datasets 'hgcnet study --dataset' accepts and where files are searched.")
    d.add_argument("--data-root", metavar="DIR", help="also search this folder")
    return parser


def config_from_args(args: argparse.Namespace):
    """Resolve preset, config file, flags and ``--set`` into a validated :class:`StudyConfig`.

    The precedence is the documented one, later wins: preset < ``--config`` < flags <
    ``--set`` (:func:`hgcnet_jax.config.resolve`): a file overrides only the fields it
    sets, so ``--preset tiny --config f.toml`` keeps the file's epochs and the preset's
    other fields.

    Raises:
        ConfigError: naming the first invalid field.
        FileNotFoundError: the config file does not exist.
    """
    from hgcnet_jax import config as C

    file = C.read_config_file(args.config) if args.config else None
    flag_map = {
        "dataset": "data.name", "model": "model.name", "data_root": "data.root", "split": "data.split",
        "batch_sizes": "train.batch_sizes", "seeds": "train.seeds", "epochs": "train.epochs", "lr": "train.lr",
        "optimizer": "train.optimizer", "current_batch_size": "current_batch_size", "seed": "seed",
        "budget": "train.budget", "edge_form": "causal.edge_form", "treatment_form": "causal.treatment_form",
        "hyperedge_form": "causal.hyperedge_form", "outcome_transform": "causal.outcome_transform",
        "noise": "causal.noise", "noise_scale": "causal.noise_scale", "devices": "train.devices",
        "data_devices": "train.data_devices",
    }
    updates: dict[str, Any] = {}
    for attr, field in flag_map.items():
        value = getattr(args, attr)
        if value is not None:
            updates[field] = value
    if args.data_root:
        updates["data.root"] = str(Path(args.data_root).expanduser())
    for k, v in args.sets:
        updates.pop(k, None)  # a later --set of a flag's field wins, and keeps its place last
        updates[k] = v
    return C.resolve(args.preset, file, updates)


#: Set in a study restarted with host devices (:func:`_restart_with_host_devices`): it never restarts twice.
_RESTARTED = "HGCNET_HOST_DEVICES"
_HOST_DEVICES = "--xla_force_host_platform_device_count"


def _restart_with_host_devices(n: int | None, argv: Sequence[str], console: bool) -> int | None:
    """Run the study again in a process whose CPU has ``n`` host devices; ``None``: go on here.

    XLA reads ``XLA_FLAGS`` once, when JAX starts its backends, so the flag that splits a CPU
    into ``n`` devices must be set before that: the command starts itself again with it (the
    console script replaces its process, ``main(argv)`` waits for a child and returns its
    status). Nothing restarts when ``n`` is 1, when the flag already gives ``n`` devices, or
    when JAX has started in this process (a notebook, a test): the study then uses the devices
    JAX has and names ``train.devices`` if they are too few. The flag only affects the CPU
    platform: on GPU/TPU the restarted study uses the accelerators.
    """
    import re
    import subprocess

    if n is None or n <= 1 or os.environ.get(_RESTARTED):
        return None
    from jax._src import xla_bridge

    if getattr(xla_bridge, "backends_are_initialized", lambda: True)():
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    have = re.search(_HOST_DEVICES + r"=(\d+)", flags)
    if have and int(have.group(1)) >= n:
        return None
    flags = (re.sub(_HOST_DEVICES + r"=\d+", "", flags) + f" {_HOST_DEVICES}={n}").strip()
    env = {**os.environ, "XLA_FLAGS": flags, _RESTARTED: str(n)}
    cmd = [sys.executable, "-m", "hgcnet_jax.cli", *argv]
    if console:  # pragma: no cover - replaces the process; tests call main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, cmd, env)
    return subprocess.run(cmd, env=env, check=False).returncode


def _run_study(args: argparse.Namespace, argv: Sequence[str] = (), console: bool = False) -> int:
    config = config_from_args(args)
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    from hgcnet_jax import study

    code = _restart_with_host_devices(config.train.devices, argv, console)
    if code is not None:
        return code
    out = Path(args.out) if args.out else study.default_out(config)
    if args.dry_run:
        return _dry_run(config, out)
    quiet = {"progress": False, "log": None} if args.quiet else {"progress": not args.no_progress}
    if not args.no_compile_cache:  # before the first compilation (the dataset check above compiles nothing)
        from hgcnet_jax import compile_cache

        compile_cache.enable()
    result = study.run(config, out=out, overwrite=args.overwrite, **quiet)
    rec = result.summary["recommendation"]
    print(f"report: {result.report.resolve()}")
    crit = result.summary.get("criticism")
    if crit:
        print(("causal model: " + ("passes its criticism (graph " + crit["chosen"] + ")" if crit["trusted"] else
                                   "MISFIT: no candidate graph passes its criticism; the recommendation is the "
                                   "arms' (design-based)")))
    best, cur = rec["best_batch_size"], rec["current_batch_size"]
    if best == cur:
        p_best = rec.get("p_best")
        extra = f"; P(it is the best) = {p_best:.3f}" if p_best is not None else ""
        print(f"recommended batch size: {best} (the current one: keep it{extra})")
    else:
        print(f"recommended batch size: {best} (P(beats the current B={cur}) = {rec['prob_beats_current']:.3f})")
    return 0


def _dry_run(config, out: Path) -> int:
    """``--dry-run``: :func:`hgcnet_jax.study.validate` and the state of ``out``; nothing is written."""
    from hgcnet_jax import study

    plan = study.validate(config)
    need = ", ".join(f"{k} {v}" for k, v in plan["minimum_runs"].items())
    print(f"config OK: {config.model.name} on {config.data.name} ({plan['train_examples']} training examples); "
          f"{plan['runs']} runs = batch sizes {plan['batch_sizes']} x {plan['seeds']} seeds, {plan['epochs']} epochs "
          f"each; usable runs needed: {need}")
    saved = study.folder.read_json(out / "config.json") if out.is_dir() else None
    if out.exists() and not out.is_dir():
        state = "is a file, not a folder: the study would be refused"
    elif saved is None:
        state = "new" if not out.exists() else "usable"
    elif saved.get("fingerprint") == config.fingerprint():
        state = "holds this study: it would resume"
    else:
        state = "holds a study of another config: it would be refused without --overwrite"
    print(f"output folder {str(out)!r}: {state}; nothing was written (--dry-run)")
    return 0


def _run_prune(argv: list[str]) -> int:
    try:
        from hgcnet_jax.prune import cli as prune_cli
    except ImportError:
        raise _UsageError("'hgcnet prune' is not available in this version (hgcnet_jax.prune has no CLI)") from None
    return int(prune_cli.main(argv) or 0)


def _run_data(args: argparse.Namespace) -> int:
    from hgcnet_jax import data

    env = os.environ.get("HGCNET_DATA_DIR")
    print("datasets (hgcnet study --dataset NAME):")
    for name in data.available():
        print(f"  {name}")
    print("\nfiles are searched in: --data-root, $HGCNET_DATA_DIR"
          f" ({env or 'not set'}), the system data folder, the cache ({data.cache_dir()}); "
          "csbm and digits need no files")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hgcnet`` console script. Returns the exit status."""
    console = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["study", *argv]
    from hgcnet_jax.config import ConfigError
    from hgcnet_jax.study import StudyFolderError, StudyPhaseError

    if argv[0] == "prune":  # its own parser and help (hgcnet_jax.prune.cli)
        try:
            return _run_prune(argv[1:])
        except _UsageError as e:
            print(f"hgcnet: error: {e}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "data":
            return _run_data(args)
        return _run_study(args, argv, console)
    except (ConfigError, StudyFolderError, PermissionError, FileNotFoundError, NotADirectoryError, _UsageError) as e:
        print(f"hgcnet: error: {e}", file=sys.stderr)
        return 2
    except StudyPhaseError as e:  # a late phase failed; its report.html says so, a re-run resumes
        print(f"hgcnet: error: {e}", file=sys.stderr)
        return 2 if e.user_error else 1
    except KeyboardInterrupt:
        print("hgcnet: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The names of a study's files, tables, columns, keys, statuses, phases, frameworks and verdicts,
defined once and imported by the harness that writes the tables and the reports that read them."""
from __future__ import annotations

import os

from numpy_mlp import PHASES
from numpy_mlp import VARIANTS as NUMPY_VARIANTS

# Imported without Keras or PyTorch: keras_baseline loads them (and Keras' backend) lazily.
from keras_baseline import BACKEND_VARIANTS, TORCH_INSTALL_HINT, torch_available

RUNS_FILE, EPOCHS_FILE, SUMMARY_FILE = "runs.csv", "epochs.csv", "summary.csv"
ENVIRONMENT_FILE, STUDY_FILE, PARITY_FILE = "environment.json", "study.json", "parity.csv"
MNIST_TRAIN_SAMPLES = 60000  # the training set a study draws on (train_limit: its first N)
SHARED_MACHINE = "shared_machine"  # study.json: true when a session ran beside another study (--share-machine)
# The answer's tables, written beside summary.csv (reports.stats.winners, reports.stats.cost_model).
WINNERS_FILE, COST_MODEL_FILE, CROSSOVERS_FILE = "winners.csv", "cost_model.csv", "crossovers.csv"

# Every framework but numpy is a peer, named after the engine that runs it: the one Keras 3 model on the Keras
# backend of that name (keras_baseline.BACKEND_VARIANTS), on PyTorch also PyTorch's own loops (keras_baseline.TorchMLP).
FRAMEWORKS = {
    "numpy": "numpy_mlp: the article's hand-written NumPy MLP and its optimization ladder",
    "tensorflow": "keras_baseline: the same network and training in Keras 3 on TensorFlow 2 (CPU)",
    "jax": "keras_baseline: the same Keras 3 model and training on Keras' JAX backend (XLA, CPU)",
    "torch": "keras_baseline: the same network and training in PyTorch: Keras 3 on its PyTorch backend (fit) "
             "and PyTorch's own loop, eager and torch.compile'd (CPU; optional install)",
}
# Frameworks not in the base install: (is it installed here, how to add it).
OPTIONAL_FRAMEWORKS = {"torch": (torch_available, TORCH_INSTALL_HINT)}


def peer_frameworks() -> list[str]:
    return [name for name in FRAMEWORKS if name != "numpy"]


def framework_missing(name: str) -> str | None:
    """Why a framework cannot run here (one line saying how to add it), or None when it can."""
    if name in OPTIONAL_FRAMEWORKS and not OPTIONAL_FRAMEWORKS[name][0]():
        return f"framework {name!r} is not installed here; add it with: {OPTIONAL_FRAMEWORKS[name][1]}"
    return None


def available_frameworks() -> list[str]:
    """The frameworks that can run here, in FRAMEWORKS' order: a study's default (an optional one, such
    as PyTorch, only when installed)."""
    return [name for name in FRAMEWORKS if framework_missing(name) is None]


PLUGINS_VARIABLE = "MLP_STUDY_PLUGINS"


def load_plugins() -> None:
    """Import the modules named in $MLP_STUDY_PLUGINS (comma-separated), in the parent and in every
    worker: the way to add a variant of your own (register it in ``numpy_mlp.VARIANTS``) without
    editing the study. The tests use it for a deliberately broken model."""
    import importlib

    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        importlib.import_module(name)


def variant_descriptions() -> dict[str, dict[str, str]]:
    """Per framework, each variant's one-line description, plugins included."""
    load_plugins()
    return {
        "numpy": {name: cls.description for name, cls in NUMPY_VARIANTS.items()},
        **{name: dict(BACKEND_VARIANTS[name]) for name in peer_frameworks()},
    }


def phase_column(phase: str) -> str:
    """The epochs.csv column of one phase of an instrumented NumPy run (PHASES: numpy_mlp's)."""
    return f"phase_{phase}_s"


# runs.csv: how busy the machine was around each run (harness.noise): the 1-minute load average before
# it, CPU seconds stolen by the hypervisor and taken by other processes during it, and those seconds'
# share of all the machine's CPU time over the run.
LOAD_BEFORE, STEAL_S, OTHERS_CPU_S, OTHERS_SHARE = "load_before", "steal_s", "others_cpu_s", "others_cpu_share"
NOISE_COLUMNS = [LOAD_BEFORE, STEAL_S, OTHERS_CPU_S, OTHERS_SHARE]
BUSY_RUNS = "busy_runs"  # summary.csv: a cell's runs during which others took a notable share of the cores

# runs.csv: one row per run.
RUN_COLUMNS = [
    "framework", "variant", "batch_size", "epochs", "repeat", "seed", "threads", "instrumented",
    "status", "error", "wall_s", "cpu_s", "first_epoch_wall_s", "steady_epoch_wall_s", "setup_s",
    "train_acc", "test_acc", "final_loss", "gemm_floor_s", "peak_rss_mb",
    "blas_threads", "row_threads", "tf_intra_threads", "tf_inter_threads", "torch_intra_threads", "torch_inter_threads",
    "session",  # index of the record in environment.json of the session that made the run
    "backend", "cpu_affinity", "xla_threads", "cpu_per_wall",
    "machine", "worker",  # where the run ran: host name (see harness.dask_executor); the Dask worker, if any
    *NOISE_COLUMNS,
]
# epochs.csv: one row per run and epoch.
EPOCH_COLUMNS = [
    "framework", "variant", "batch_size", "threads", "repeat", "instrumented", "epoch",
    "wall_s", "cpu_s", "eval_s", "loss", "train_acc", "test_acc", "test_loss", "lr",
    *map(phase_column, PHASES),
    "machine",
]
# A cell: the runs that differ only in their repeat (one row of summary.csv).
CELL_KEY = ["framework", "variant", "batch_size", "threads"]
# A run of a study's plan: its cell, repeat, and whether it is a per-phase-timed NumPy run.
RUN_KEY = CELL_KEY + ["repeat", "instrumented"]

OK = "ok"
LOST = "lost"  # status of a run whose cluster worker left before it finished; --resume runs it again
STATUSES = (OK, "failed", "timeout", "diverged", LOST)

# Verdicts of a speed-up's interval (reports.stats.summary).
FASTER, SLOWER, UNCLEAR, NO_INTERVAL, REFERENCE = "faster", "slower", "no clear difference", "no interval", "reference"


def speedup_column(reference: str, steady: bool) -> str:
    """The one name of a speed-up column; ``reference``: best_peer, best_<framework> or step3."""
    return f"{'steady_' if steady else ''}speedup_vs_{reference}"


def interval_columns(column: str) -> list[str]:
    """A speed-up column, its interval's bounds and its verdict."""
    return [column, f"{column}_lo", f"{column}_hi", f"{column}_verdict"]


def reference_column(reference: str, steady: bool) -> str:
    """The column naming the reference variant (best_peer: 'framework/variant'; best_<fw>: 'variant')."""
    if reference == "best_peer":
        return "best_peer_steady" if steady else "best_peer"
    return f"{reference}{'_steady' if steady else ''}_variant"


def references() -> list[str]:
    return ["best_peer"] + [f"best_{name}" for name in peer_frameworks()] + ["step3"]


# summary.csv column: the runs.csv column it is the median of, over a cell's runs that finished ok.
MEDIANS = {
    "wall_median_s": "wall_s", "cpu_median_s": "cpu_s", "first_epoch_median_s": "first_epoch_wall_s",
    "steady_epoch_median_s": "steady_epoch_wall_s", "setup_median_s": "setup_s", "test_acc_median": "test_acc",
    "train_acc_median": "train_acc", "gemm_floor_median_s": "gemm_floor_s", "peak_rss_median_mb": "peak_rss_mb",
}


def summary_columns() -> list[str]:
    """summary.csv: one row per cell."""
    columns = CELL_KEY + [
        "n_runs", "n_ok", "wall_median_s", "wall_q25_s", "wall_q75_s", "wall_iqr_s", "wall_rel_iqr", "noisy", BUSY_RUNS,
        "cpu_median_s", "cpu_q25_s", "cpu_q75_s", "cpu_iqr_s", "first_epoch_median_s", "steady_epoch_median_s",
        "setup_median_s", "test_acc_median", "train_acc_median",
    ]
    for reference in references():
        for steady in (False, True):
            if reference != "step3":
                columns.append(reference_column(reference, steady))
            columns += interval_columns(speedup_column(reference, steady))
    return columns + ["break_even_epochs", "break_even_epochs_lo", "break_even_epochs_hi",
                      "gemm_floor_median_s", "gemm_efficiency", "peak_rss_median_mb"]


# winners.csv: per threads, batch size and training length (epochs), the variant with the shortest median
# training (first + (epochs - 1) x steady epoch), the runner-up and the ratio runner-up / winner [95 %].
CLEAR, NO_CLEAR_WINNER, ALONE = "clear", "no clear winner", "only one variant"
WINNER_COLUMNS = [
    "threads", "batch_size", "epochs", "winner", "runner_up", "winner_s", "runner_up_s",
    "ratio", "ratio_lo", "ratio_hi", "lead",  # lead: CLEAR, NO_CLEAR_WINNER, NO_INTERVAL or ALONE
    "break_even_epochs",  # where the winner changes below this row: the epochs at which both tie
]
# cost_model.csv: per framework variant, threads and measured batch size, the steady epoch fitted as
# steps x step cost + samples x sample cost (each cost with its 95 % interval) and the point's residual.
COST_MODEL_COLUMNS = [
    "framework", "variant", "threads", "batch_size", "samples", "steps", "steady_epoch_median_s", "fitted_s",
    "residual_rel", "step_cost_s", "step_cost_lo_s", "step_cost_hi_s", "sample_cost_s", "sample_cost_lo_s",
    "sample_cost_hi_s", "max_residual_rel", "bad_fit",
]
# crossovers.csv: per threads, NumPy optimized against the fastest variant of each other framework: where
# NumPy is faster per steady epoch. direction: the fit's "from" (NumPy faster from batch_size b* on), "up to",
# ALWAYS or NEVER; kind: the same read within the measured batch sizes; the interval is b*'s (0: always, inf:
# never for "from"); clear: for kind ALWAYS / NEVER, whether the whole interval says so too, for FROM / UP_TO
# whether the interval is finite (neither always nor never in it).
ALWAYS, NEVER = "always", "never"
CROSSOVER_COLUMNS = [
    "threads", "numpy_variant", "framework", "variant", "kind", "direction", "batch_size", "batch_size_lo",
    "batch_size_hi", "clear", "measured_min", "measured_max",
]

"""What a study runs: frameworks, variants, presets and the list of runs they expand to."""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field

from numpy_mlp import MLPConfig

from .schema import FRAMEWORKS


def all_cores() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


SWEEP_BATCH_SIZES = (32, 128, 500, 2000, 20000, 60000)
ANSWER_BATCH_SIZES = (32, 128, 500, 2000, 20000)
# The fastest variant of each framework: NumPy's optimized, each Keras backend's (and PyTorch's) own loop,
# PyTorch's compiled loop; a name a framework lacks is skipped.
FASTEST_VARIANTS = ("optimized", "loop", "loop-compiled")


@dataclass(frozen=True)
class Block:
    """Extra runs of a preset beside its grid: these variants (of each framework that has them) at these
    batch sizes and thread settings (None: all cores), with the grid's epochs and repeats."""

    variants: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    threads: tuple[int | None, ...] = (None,)


@dataclass(frozen=True)
class Preset:
    description: str
    frameworks: tuple[str, ...] = tuple(FRAMEWORKS)
    variants: tuple[str, ...] = ()  # empty: every variant of each framework
    batch_sizes: tuple[int, ...] = (500, 20000)
    epochs: int = 35
    repeats: int = 3
    threads: tuple[int | None, ...] = (None,)  # None: all cores
    train_limit: int | None = None
    phase_epochs: int = 3  # epochs of the extra per-phase-timed numpy run (0: none)
    eval_every_epoch: bool = True
    once: tuple[str, ...] = ()  # variants run in the first repeat only
    extras: tuple[Block, ...] = ()  # runs beside the grid; dropped when options change the grid's frameworks,
    # variants, batch sizes or threads (the study asked for is then that grid alone)


PRESETS = {
    "answer": Preset(
        "the answer for this machine (the default): the fastest variant of each framework (NumPy optimized, "
        "each peer's loop, PyTorch's compiled loop when installed) at batch 32, 128, 500, 2000 and 20000, at all "
        "cores and at one thread, plus the article's ladder (original once, step1-step3) and Keras as a user "
        "runs it (fit) at batch 500 and 20000 on all cores; 10 epochs, 3 repeats. About 20 minutes on 2 cores "
        "without PyTorch (estimated from the committed reference timings: per run about 2 s of process start, "
        "4-5 s of Keras set-up, the first and 9 steady epochs; 10 epochs is the most that fits 20 minutes)",
        variants=FASTEST_VARIANTS,
        batch_sizes=ANSWER_BATCH_SIZES,
        epochs=10,
        phase_epochs=1,
        once=("original",),
        extras=(Block(FASTEST_VARIANTS, ANSWER_BATCH_SIZES, threads=(1,)),
                Block(("original", "step1", "step2", "step3", "fit"), (500, 20000))),
    ),
    "article": Preset(
        "the article's study: every variant of every framework (NumPy, Keras on TensorFlow, "
        "Keras on JAX), batch 500 and 20000, 35 epochs, 3 repeats ('original', 5-10x slower than the rest, "
        "once), all cores (about 17 minutes on 2 cores)",
        once=("original",),
    ),
    "quick": Preset(
        "a first try with an answer: the fastest variant of each framework, 10,000 training samples, batch "
        "128 and 2000, 4 epochs, 3 repeats (verdicts and a winner map), all cores (1.5 minutes with its report "
        "on a busy 2-core machine; Keras' set-up, 4-5 s per run, dominates these short runs)",
        variants=FASTEST_VARIANTS,
        batch_sizes=(128, 2000),
        epochs=4,
        repeats=3,
        train_limit=10000,
        phase_epochs=1,
    ),
    "sweep": Preset(
        "when does NumPy win: optimized, step3 and every variant of the peers (Keras on TensorFlow and on JAX) "
        "over batch sizes 32 to 60000, "
        "at all cores and at one thread, 5 epochs, 1 repeat",
        variants=("step3", "optimized", "fit", "fit-tuned", "loop"),
        batch_sizes=SWEEP_BATCH_SIZES,
        epochs=5,
        repeats=1,
        threads=(None, 1),
        phase_epochs=0,
        eval_every_epoch=False,
    ),
    "full": Preset(
        "everything: every variant over batch sizes 32 to 60000, 35 epochs, 3 repeats, all cores and one "
        "thread (several hours)",
        batch_sizes=SWEEP_BATCH_SIZES,
        threads=(None, 1),
    ),
}
DEFAULT_PRESET = "answer"


@dataclass(frozen=True)
class RunSpec:
    """One training run, executed by one worker process."""

    framework: str
    variant: str
    batch_size: int
    epochs: int
    repeat: int
    seed: int
    threads: int
    instrumented: bool = False  # numpy per-phase timing run, kept out of the timing statistics
    eval_every_epoch: bool = True
    gemm_floor: bool = False

    @property
    def key(self) -> tuple:
        return (self.framework, self.variant, self.batch_size, self.threads, self.repeat, self.instrumented)

    @property
    def label(self) -> str:
        extra = " phases" if self.instrumented else ""
        return f"{self.framework}/{self.variant} batch {self.batch_size} threads {self.threads} #{self.repeat}{extra}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Extra:
    """A preset's Block resolved for a plan: variants per framework, batch sizes, thread counts."""

    variants: dict[str, tuple[str, ...]]
    batch_sizes: tuple[int, ...]
    threads: tuple[int, ...]

    def cells(self) -> list[tuple[int, int, str, str]]:
        return [(t, b, f, v) for t in self.threads for b in self.batch_sizes for f, vs in self.variants.items()
                for v in vs]

    def to_dict(self) -> dict:
        return {"variants": {k: list(v) for k, v in self.variants.items()}, "batch_sizes": list(self.batch_sizes),
                "threads": list(self.threads)}

    @classmethod
    def from_dict(cls, data: dict) -> "Extra":
        return cls({f: tuple(v) for f, v in data["variants"].items()}, tuple(int(b) for b in data["batch_sizes"]),
                   tuple(int(t) for t in data["threads"]))


@dataclass
class StudyPlan:
    frameworks: tuple[str, ...]
    variants: dict[str, tuple[str, ...]]
    batch_sizes: tuple[int, ...]
    epochs: int
    repeats: int
    threads: tuple[int, ...]
    seed: int
    train_limit: int | None
    phase_epochs: int
    eval_every_epoch: bool
    config: MLPConfig = field(default_factory=MLPConfig)
    preset: str | None = None
    once: tuple[str, ...] = ()  # variants run in the first repeat only
    extras: tuple[Extra, ...] = ()  # cells beside the grid (a cell in both runs once)

    def cells(self) -> list[tuple[int, int, str, str]]:
        """(threads, batch size, framework, variant) of the grid, then of the extras, each once."""
        grid = [(t, b, f, v) for t in self.threads for b in self.batch_sizes for f in self.frameworks
                for v in self.variants[f]]
        return list(dict.fromkeys(grid + [c for extra in self.extras for c in extra.cells()]))

    def runs(self) -> list[RunSpec]:
        """Repeats outermost, so that slow drifts of the machine spread over all variants alike; within
        each round of repeats the runs in an order shuffled with the plan's seed, so that a noisy minute
        does not always hit the same variant (and a resumed study keeps the order)."""
        runs = []
        rng = random.Random(self.seed)
        cells = self.cells()
        for repeat in range(self.repeats):
            round_ = [
                RunSpec(
                    framework, variant, batch_size, self.epochs, repeat, self.seed + repeat, threads,
                    eval_every_epoch=self.eval_every_epoch, gemm_floor=framework == "numpy",
                )
                for threads, batch_size, framework, variant in cells
                if repeat == 0 or variant not in self.once
            ]
            rng.shuffle(round_)
            runs += round_
        if self.phase_epochs:
            runs += [RunSpec("numpy", variant, batch_size, self.phase_epochs, 0, self.seed, threads, instrumented=True,
                             eval_every_epoch=False)
                     for threads, batch_size, framework, variant in cells if framework == "numpy"]
        return runs

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "frameworks": list(self.frameworks),
            "variants": {k: list(v) for k, v in self.variants.items()},
            "batch_sizes": list(self.batch_sizes),
            "epochs": self.epochs,
            "repeats": self.repeats,
            "threads": list(self.threads),
            "seed": self.seed,
            "train_limit": self.train_limit,
            "phase_epochs": self.phase_epochs,
            "eval_every_epoch": self.eval_every_epoch,
            "once": list(self.once),
            "extras": [extra.to_dict() for extra in self.extras],
            "config": self.config.to_dict(),
        }

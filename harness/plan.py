"""What a study runs: frameworks, variants, presets and the list of runs they expand to."""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field

from numpy_mlp import MLPConfig



def all_cores() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


SWEEP_BATCH_SIZES = (32, 128, 500, 2000, 20000, 60000)


@dataclass(frozen=True)
class Preset:
    description: str
    frameworks: tuple[str, ...] = ()  # empty: every framework installed here (schema.available_frameworks)
    variants: tuple[str, ...] = ()  # empty: every variant of each framework
    batch_sizes: tuple[int, ...] = (500, 20000)
    epochs: int = 35
    repeats: int = 3
    threads: tuple[int | None, ...] = (None,)  # None: all cores
    train_limit: int | None = None
    phase_epochs: int = 3  # epochs of the extra per-phase-timed numpy run (0: none)
    eval_every_epoch: bool = True
    once: tuple[str, ...] = ()  # variants run in the first repeat only


PRESETS = {
    "article": Preset(
        "the article's study (the default): every variant of every framework (NumPy, Keras on TensorFlow, "
        "Keras on JAX, PyTorch where installed), batch 500 and 20000, 35 epochs, 3 repeats ('original', "
        "5-10x slower than the rest, once), all cores (about 17 minutes on 2 cores)",
        once=("original",),
    ),
    "quick": Preset(
        "a smoke run of the whole pipeline: every variant, 10,000 training samples, batch 500 and 5000, "
        "3 epochs, 1 repeat (2-3 minutes on 2 cores)",
        batch_sizes=(500, 5000),
        epochs=3,
        repeats=1,
        train_limit=10000,
        phase_epochs=1,
    ),
    "sweep": Preset(
        "when does NumPy win: optimized, step3 and every variant of the peers (Keras on TensorFlow and on JAX, "
        "PyTorch where installed) "
        "over batch sizes 32 to 60000, "
        "at all cores and at one thread, 5 epochs, 1 repeat",
        variants=("step3", "optimized", "fit", "fit-tuned", "loop", "loop-compiled"),
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
DEFAULT_PRESET = "article"


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

    def runs(self) -> list[RunSpec]:
        """Repeats outermost, so that slow drifts of the machine spread over all variants alike; within
        each round of repeats the runs in an order shuffled with the plan's seed, so that a noisy minute
        does not always hit the same variant (and a resumed study keeps the order)."""
        runs = []
        rng = random.Random(self.seed)
        for repeat in range(self.repeats):
            round_ = [
                RunSpec(
                    framework, variant, batch_size, self.epochs, repeat, self.seed + repeat, threads,
                    eval_every_epoch=self.eval_every_epoch, gemm_floor=framework == "numpy",
                )
                for threads in self.threads
                for batch_size in self.batch_sizes
                for framework in self.frameworks
                for variant in self.variants[framework]
                if repeat == 0 or variant not in self.once
            ]
            rng.shuffle(round_)
            runs += round_
        if self.phase_epochs and "numpy" in self.frameworks:
            for threads in self.threads:
                for batch_size in self.batch_sizes:
                    for variant in self.variants["numpy"]:
                        runs.append(
                            RunSpec(
                                "numpy", variant, batch_size, self.phase_epochs, 0, self.seed, threads,
                                instrumented=True, eval_every_epoch=False,
                            )
                        )
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
            "config": self.config.to_dict(),
        }

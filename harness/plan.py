"""What a study runs: frameworks, variants, presets and the list of runs they expand to, and which of
them have no row yet; a plan as stored in a results folder's study.json, read back and compared with
the one asked for."""
from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from numpy_mlp import MLPConfig

from reports.folder.files import StudyError, UsageError
from reports.folder.schema import FRAMEWORKS, LOST, MNIST_TRAIN_SAMPLES, RUN_KEY, variant_descriptions

# The range of every value a plan holds (StudyPlan.validate), whether from options or from study.json.
MAX_SEED = 2**32 - 1  # seeds S..S+repeats-1 must lie in 0..MAX_SEED: the range every framework accepts
MAX_EPOCHS = 10000
MAX_REPEATS = 1000  # a plan lists every run: 10**8 repeats ended in a MemoryError after minutes


SWEEP_BATCH_SIZES = (32, 128, 500, 2000, 20000, 60000)
ANSWER_BATCH_SIZES = (32, 128, 500, 2000, 20000)
# The fastest variant of each framework: NumPy's optimized and each peer's own loop (PyTorch's eager loop:
# its compiled loop is no faster per steady epoch from batch 500 and compiles for tens of seconds per run,
# docs/pytorch.md); a name a framework lacks is skipped.
FASTEST_VARIANTS = ("optimized", "loop")


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
    extras: tuple[Block, ...] = ()  # runs beside the grid; dropped when options change the grid's frameworks,
    # variants, batch sizes or threads (the study asked for is then that grid alone)


PRESETS = {
    "answer": Preset(
        "the answer for this machine (the default): the fastest variant of each framework (NumPy optimized, "
        "each peer's own loop, PyTorch's where installed) at batch 32, 128, 500, 2000 and 20000, at all "
        "cores and at one thread, plus the article's ladder (original once, step1-step3) and Keras as a user "
        "runs it (fit) at batch 500 and 20000 on all cores; 10 epochs, 3 repeats (how long each preset takes: "
        "docs/method.md)",
        variants=FASTEST_VARIANTS, batch_sizes=ANSWER_BATCH_SIZES, epochs=10, phase_epochs=1, once=("original",),
        extras=(Block(FASTEST_VARIANTS, ANSWER_BATCH_SIZES, threads=(1,)),
                Block(("original", "step1", "step2", "step3", "fit"), (500, 20000))),
    ),
    "article": Preset(
        "the article's study: every variant of every framework (NumPy, Keras on TensorFlow, "
        "Keras on JAX, PyTorch where installed), batch 500 and 20000, 35 epochs, 3 repeats ('original', "
        "by far the slowest, once), all cores",
        once=("original",),
    ),
    "quick": Preset(
        "a first try with an answer: the fastest variant of each framework, 10,000 training samples, batch "
        "128 and 2000, 4 epochs, 3 repeats (verdicts and a winner map), all cores",
        variants=FASTEST_VARIANTS, batch_sizes=(128, 2000), epochs=4, train_limit=10000, phase_epochs=1,
    ),
    "sweep": Preset(
        "when does NumPy win: optimized, step3 and every variant of the peers (Keras on TensorFlow and on JAX, "
        "PyTorch where installed) over batch sizes 32 to 60000, at all cores and at one thread, 5 epochs, 1 repeat",
        variants=("step3", "optimized", "fit", "fit-tuned", "loop", "loop-compiled"), batch_sizes=SWEEP_BATCH_SIZES,
        epochs=5, repeats=1, threads=(None, 1), phase_epochs=0, eval_every_epoch=False,
    ),
    "full": Preset(
        "everything: every variant over batch sizes 32 to 60000, 35 epochs, 3 repeats, all cores and one "
        "thread (several hours)",
        batch_sizes=SWEEP_BATCH_SIZES, threads=(None, 1),
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


def run_key(row) -> tuple:
    """A run's key from its row in runs.csv or epochs.csv, equal to its RunSpec.key."""
    framework, variant, batch_size, threads, repeat, instrumented = (row[c] for c in RUN_KEY)
    return (str(framework), str(variant), int(batch_size), int(threads), int(repeat), bool(instrumented))


def runs_to_do(specs: list[RunSpec], runs: pd.DataFrame, machine: str | None = None) -> list[RunSpec]:
    """The specs with no row in ``runs`` yet ('lost' rows do not count: those runs
    are done again); with ``machine``, the specs with no row of that machine."""
    if machine is not None:
        runs = runs[runs["machine"].astype(str) == machine] if "machine" in runs else runs.iloc[:0]
    done = {run_key(row) for _, row in runs.iterrows() if row["status"] != LOST}
    return [spec for spec in specs if spec.key not in done]


@dataclass
class Extra:
    """A preset's Block resolved for a plan: variants per framework, batch sizes, thread counts."""

    variants: dict[str, tuple[str, ...]]
    batch_sizes: tuple[int, ...]
    threads: tuple[int, ...]

    def cells(self) -> list[tuple[int, int, str, str]]:
        return [(t, b, f, v) for t in self.threads for b in self.batch_sizes for f, vs in self.variants.items()
                for v in vs]

    @classmethod
    def from_dict(cls, data: dict) -> "Extra":
        return cls({f: tuple(v) for f, v in data["variants"].items()}, tuple(data["batch_sizes"]),
                   tuple(data["threads"]))  # values as stored: StudyPlan.validate checks them


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

    def __post_init__(self):
        self.validate()

    def validate(self, cores: int | None = None) -> None:
        """Every value in its range (with ``cores``, threads too: at most this machine's cores), no value
        twice (two identical runs would never settle on a resume): else one UsageError naming it."""
        def number(name: str, value, lo: int, hi: int, why: str = "") -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise UsageError(f"{name} {value!r} is out of range: allowed a whole number in {lo}..{hi}"
                                 + (f", {why}" if why else ""))

        def names(name: str, values) -> None:
            if not isinstance(values, tuple) or not all(isinstance(v, str) for v in values):
                raise UsageError(f"{name} {values!r} is not a list of names")
            if len(set(values)) < len(values):
                raise UsageError(f"{name} {' '.join(values)} names one twice")

        names("frameworks", self.frameworks)
        unknown = [f for f in self.frameworks if f not in FRAMEWORKS]
        if not self.frameworks or unknown or not isinstance(self.variants, dict) \
                or set(self.variants) != set(self.frameworks):
            raise UsageError(f"frameworks {' '.join(self.frameworks) or 'none'} with variants of "
                             f"{' '.join(self.variants) or 'none'}: each framework of {', '.join(FRAMEWORKS)} once, "
                             "with its variants")
        for framework, variants in self.variants.items():
            names(f"{framework} variants", variants)
            if not variants:
                raise UsageError(f"{framework} variants: none given")
        names("once", self.once)
        if self.train_limit is not None:
            number("train limit", self.train_limit, 1, MNIST_TRAIN_SAMPLES)
        n_train = self.train_limit or MNIST_TRAIN_SAMPLES
        for extra in self.extras:  # the extras' cells, as the grid's: known frameworks and names, values in range
            if not isinstance(extra, Extra) or not extra.variants or not set(extra.variants) <= set(self.frameworks):
                raise UsageError(f"extra cells {extra!r}: variants of the plan's frameworks "
                                 f"({', '.join(self.frameworks)}), batch sizes and threads")
            for framework, variants in extra.variants.items():
                names(f"{framework} variants of the extra cells", variants)
        for batch_sizes, threads in ((self.batch_sizes, self.threads),
                                     *((extra.batch_sizes, extra.threads) for extra in self.extras)):
            for name, values, hi, why in (
                ("batch size", batch_sizes, n_train, f"no larger than the training set ({n_train} samples)"),
                ("threads", threads, cores or 2**31, f"no more than this machine's {cores} cores (more would "
                 "time the threads waiting for each other, not the framework)" if cores else ""),
            ):
                if not isinstance(values, tuple) or not values or len(set(values)) < len(values):
                    raise UsageError(f"{name} {values!r}: one or more values, each once")
                for value in values:
                    number(name, value, 1, hi, why)
        number("epochs", self.epochs, 1, MAX_EPOCHS)
        number("phase epochs", self.phase_epochs, 0, MAX_EPOCHS)
        number("repeats", self.repeats, 1, MAX_REPEATS)
        number("seed", self.seed, 0, MAX_SEED - self.repeats + 1,
               f"so that the seeds of all {self.repeats} repeats (seed + repeat) lie in 0..{MAX_SEED}")
        if not isinstance(self.eval_every_epoch, bool):
            raise UsageError(f"eval_every_epoch {self.eval_every_epoch!r} is not true or false")

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
        """The plan as study.json holds it (the preset's name first, the network's configuration last)."""
        fields = dataclasses.asdict(self)
        preset, config = fields.pop("preset"), fields.pop("config")
        return {"preset": preset, **fields, "config": config}

    @classmethod
    def from_dict(cls, data: dict) -> StudyPlan:
        """The plan of ``to_dict`` (study.json): KeyError, TypeError, ValueError or AttributeError when
        ``data`` is not one, UsageError when a value is out of its range (validate)."""
        lists = {k: tuple(data[k]) for k in ("frameworks", "batch_sizes", "threads")}
        values = {k: data[k] for k in ("epochs", "repeats", "seed", "train_limit", "phase_epochs", "eval_every_epoch")}
        return cls(**lists, **values, variants={framework: tuple(v) for framework, v in data["variants"].items()},
                   config=MLPConfig.from_dict(dict(data["config"], layer_sizes=tuple(data["config"]["layer_sizes"]))),
                   preset=data.get("preset"), once=tuple(data.get("once", ())),
                   extras=tuple(Extra.from_dict(extra) for extra in data.get("extras", ())))


def read_plan(path: Path) -> StudyPlan:
    """The plan stored in a results folder's study.json (what ``--resume`` continues); a StudyError (one
    line) when there is none, it is not a plan, or it plans variants not known here."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"--resume: {Path(path).parent} holds no study to continue (no study.json)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot read {path}: {exc}") from None
    try:
        plan = StudyPlan.from_dict(data)
    except UsageError as exc:  # a value out of its range (StudyPlan.validate)
        raise StudyError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StudyError(f"{path} is not a study plan ({type(exc).__name__}: {exc})") from None
    known = variant_descriptions()
    unknown = [f"{f}/{v}" for _, _, f, v in plan.cells() if v not in known.get(f, {})]
    if unknown:
        raise StudyError(f"{path} plans {', '.join(unknown)}, not known here (a plugin's? see MLP_STUDY_PLUGINS)")
    return plan


def check_same_plan(stored: StudyPlan, wanted: StudyPlan, out: Path) -> None:
    """A resume continues the plan its folder ``out`` was started with: else a StudyError naming the
    fields that differ, as stored and as asked for (the preset's name is a label, not compared)."""
    stored_fields, wanted_fields = _plan_fields(stored), _plan_fields(wanted)
    differ = [k for k in dict.fromkeys([*stored_fields, *wanted_fields])
              if stored_fields.get(k) != wanted_fields.get(k)]
    if differ:
        was = ", ".join(f"{k} {_describe(stored_fields.get(k))}" for k in differ)
        now = ", ".join(f"{k} {_describe(wanted_fields.get(k))}" for k in differ)
        raise StudyError(f"--resume: {out} was planned with {was}; the options ask for {now}")


def _plan_fields(plan: StudyPlan) -> dict:
    """The plan as flat, comparable fields (the config's as ``config.NAME``), without the preset's name."""
    fields = json.loads(json.dumps(plan.to_dict()))
    fields.pop("preset", None)
    config = fields.pop("config")
    return {**fields, **{f"config.{k}": v for k, v in config.items()}}


def _describe(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}/{name}" for key, names in value.items() for name in names) or "none"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)

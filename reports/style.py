"""One look for every figure: the colour of each framework/variant, the order, the labels."""
from __future__ import annotations

FRAMEWORK_ORDER = ("numpy", "keras", "jax")  # others after them, in the order of their names
VARIANT_ORDER = {
    "numpy": ("original", "step1", "step2", "step3", "optimized"),
    "keras": ("fit", "fit-tuned", "loop"),
    "jax": ("fit", "fit-tuned", "loop"),
}
LADDER = VARIANT_ORDER["numpy"]

# NumPy in cool colours (purple -> navy along the optimization ladder), Keras/TF in warm ones, Keras/JAX in
# magentas; variants of other frameworks get a stable colour from the fallback list.
PALETTE: dict[tuple[str, str], str] = {
    ("numpy", "original"): "#9467bd",
    ("numpy", "step1"): "#17becf",
    ("numpy", "step2"): "#2ca02c",
    ("numpy", "step3"): "#1f77b4",
    ("numpy", "optimized"): "#0b2a5b",
    ("keras", "fit"): "#d62728",
    ("keras", "fit-tuned"): "#ff7f0e",
    ("keras", "loop"): "#8c564b",
    ("jax", "fit"): "#e7298a",
    ("jax", "fit-tuned"): "#c994c7",
    ("jax", "loop"): "#7a0177",
}
_FALLBACK = ("#7f7f7f", "#bcbd22", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
MARKERS = {"numpy": "o", "keras": "s", "jax": "D"}
THREAD_LINESTYLES = ("-", "--", ":", "-.")
THREAD_HATCHES = ("", "//", "..", "xx")

PHASES = ("prepare", "forward", "cost", "backward", "update")
PHASE_COLUMNS = tuple(f"phase_{p}_s" for p in PHASES)
PHASE_COLORS = {
    "prepare": "#a6cee3",
    "forward": "#1f78b4",
    "cost": "#b2df8a",
    "backward": "#e31a1c",
    "update": "#fdbf6f",
    "other": "#d9d9d9",
}
PHASE_LABELS = {
    "prepare": "prepare (slice/transpose batch)",
    "forward": "forward propagation",
    "cost": "cost",
    "backward": "backward propagation",
    "update": "weight update",
    "other": "other (loop, shuffle, not timed)",
}

FRAMEWORK_LABELS = {"numpy": "NumPy", "keras": "Keras/TF", "jax": "Keras/JAX"}

DPI = 170
FIG_WIDTH = 10.0  # inches -> 1700 px at DPI


def color(framework: str, variant: str) -> str:
    key = (framework, variant)
    if key in PALETTE:
        return PALETTE[key]
    # Unknown variants get a stable colour from the fallback list.
    index = sum(map(ord, f"{framework}/{variant}")) % len(_FALLBACK)
    return _FALLBACK[index]


def marker(framework: str) -> str:
    return MARKERS.get(framework, "^")


def framework_label(framework: str) -> str:
    return FRAMEWORK_LABELS.get(framework, framework)


def label(framework: str, variant: str) -> str:
    """A variant with its framework, e.g. 'Keras/JAX loop'."""
    return f"{framework_label(framework)} {variant}"


def label_of(name: str) -> str:
    """The label of a 'framework/variant' name (summary.csv's best_peer)."""
    return label(*name.split("/", 1))


def framework_rank(framework: str) -> tuple[int, str]:
    return (FRAMEWORK_ORDER.index(framework) if framework in FRAMEWORK_ORDER else len(FRAMEWORK_ORDER), framework)


def variant_rank(framework: str, variant: str) -> tuple:
    order = VARIANT_ORDER.get(framework, ())
    pos = order.index(variant) if variant in order else len(order)
    return (framework_rank(framework), pos, variant)


def sort_series(keys):
    """Sort (framework, variant) pairs: NumPy ladder first, then the peers, unknown ones last."""
    return sorted(keys, key=lambda k: variant_rank(k[0], k[1]))


def threads_label(threads) -> str:
    try:
        t = int(threads)
    except (TypeError, ValueError):
        return "threads unknown"
    if t <= 0:
        return "default threads"
    return f"{t} thread" + ("" if t == 1 else "s")


def order_threads(threads_values) -> list[int]:
    """Thread settings from the most to the fewest; 0 or less (the library's default: all cores) first."""
    return sorted({int(t) for t in threads_values}, key=lambda t: -(t if t > 0 else 10**6))


def threads_rank(t) -> float:
    """Sort key: the most threads first, 0 (= default, all cores) before everything."""
    t = int(t)
    return -(t if t > 0 else 10**6)


def sort_key(column):
    """``key=`` for DataFrame.sort_values: threads by ``threads_rank``, other columns as they are."""
    if column.name == "threads":
        return column.map(threads_rank)
    return column


def thread_styles(threads_values) -> dict:
    """Line style per thread setting: the most threads solid, then dashed, dotted..."""
    ordered = order_threads(threads_values)
    return {t: THREAD_LINESTYLES[i % len(THREAD_LINESTYLES)] for i, t in enumerate(ordered)}


def thread_hatches(threads_values) -> dict:
    ordered = order_threads(threads_values)
    return {t: THREAD_HATCHES[i % len(THREAD_HATCHES)] for i, t in enumerate(ordered)}

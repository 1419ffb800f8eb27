"""One look for every figure and table: the colour, order and label of each framework and variant, and
how numbers are written."""
from __future__ import annotations

import math
import numbers

from .folder.schema import (
    BACKEND_VARIANTS, FRAMEWORKS, NUMPY_VARIANTS, REFERENCE, interval_columns, peer_frameworks,
)

# The registries' order: NumPy's optimization ladder, then the peers' variants; unknown ones after them.
VARIANT_ORDER = {"numpy": tuple(NUMPY_VARIANTS), **{name: tuple(BACKEND_VARIANTS[name]) for name in peer_frameworks()}}
FRAMEWORK_LABELS = {"numpy": "NumPy", "tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
# NumPy in cool colours (purple -> navy along the ladder), TensorFlow in warm ones, JAX in magentas,
# PyTorch in greens (light: Keras on PyTorch, dark: PyTorch's own loop);
# variants of other frameworks get a stable colour from the fallback list.
PALETTE = {
    ("numpy", "original"): "#9467bd", ("numpy", "step1"): "#17becf", ("numpy", "step2"): "#2ca02c",
    ("numpy", "step3"): "#1f77b4", ("numpy", "optimized"): "#0b2a5b",
    ("tensorflow", "fit"): "#d62728", ("tensorflow", "fit-tuned"): "#ff7f0e", ("tensorflow", "loop"): "#8c564b",
    ("jax", "fit"): "#e7298a", ("jax", "fit-tuned"): "#c994c7", ("jax", "loop"): "#7a0177",
    ("torch", "fit"): "#a6d854", ("torch", "fit-tuned"): "#66a61e", ("torch", "loop"): "#1b9e77",
    ("torch", "loop-compiled"): "#004d40",
}
FALLBACK_COLORS = ("#7f7f7f", "#bcbd22", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
MARKERS = {"numpy": "o", "tensorflow": "s", "jax": "D", "torch": "^"}
THREAD_LINESTYLES, THREAD_HATCHES = ("-", "--", ":", "-."), ("", "//", "..", "xx")
PHASE_COLORS = {"prepare": "#a6cee3", "forward": "#1f78b4", "cost": "#b2df8a", "backward": "#e31a1c",
                "update": "#fdbf6f", "other": "#d9d9d9"}
PHASE_LABELS = {"prepare": "prepare (slice/transpose batch)", "forward": "forward propagation", "cost": "cost",
                "backward": "backward propagation", "update": "weight update",
                "other": "other (loop, shuffle, not timed)"}
DPI, FIG_WIDTH = 170, 10.0  # inches -> 1700 px


def color(framework: str, variant: str) -> str:
    fallback = FALLBACK_COLORS[sum(map(ord, f"{framework}/{variant}")) % len(FALLBACK_COLORS)]
    return PALETTE.get((framework, variant), fallback)


def framework_label(framework: str) -> str:
    return FRAMEWORK_LABELS.get(framework, framework)


def label(framework: str, variant: str) -> str:
    """A variant with its framework, e.g. 'JAX loop'."""
    return f"{framework_label(framework)} {variant}"


def label_of(name: str) -> str:
    """The label of a 'framework/variant' name (summary.csv's best_peer)."""
    return label(*name.split("/", 1))


def framework_rank(framework: str) -> tuple[int, str]:
    return (list(FRAMEWORKS).index(framework) if framework in FRAMEWORKS else len(FRAMEWORKS), framework)


def variant_rank(framework: str, variant: str) -> tuple:
    order = VARIANT_ORDER.get(framework, ())
    return (framework_rank(framework), order.index(variant) if variant in order else len(order), variant)


def sort_series(keys) -> list:
    """(framework, variant) pairs in report order: the NumPy ladder, then the peers, unknown ones last."""
    return sorted(keys, key=lambda k: variant_rank(*k))


def threads_label(threads: int) -> str:
    return "default threads" if threads <= 0 else f"{threads} thread" + ("" if threads == 1 else "s")


def threads_rank(t) -> int:
    """Sort key: the most threads first, 0 or less (the library's default: all cores) before everything."""
    return -(t if t > 0 else 10**6)


def order_threads(threads_values) -> list[int]:
    return sorted({int(t) for t in threads_values}, key=threads_rank)


def by_threads(threads_values, styles: tuple) -> dict:
    """One of ``styles`` per thread setting, the first for the most threads."""
    return {t: styles[i % len(styles)] for i, t in enumerate(order_threads(threads_values))}


def finite(x) -> bool:
    return isinstance(x, numbers.Real) and math.isfinite(x)


def fmt_s(x) -> str:
    """Seconds with sensible precision: 123, 47.3, 7.31, 0.523; '–' for a missing value."""
    if not finite(x):
        return "–"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def _or_dash(spec: str):
    """A format for finite numbers that writes '–' for a missing value."""
    return lambda x: spec.format(x) if finite(x) else "–"


fmt_acc, fmt_pct = _or_dash("{:.4f}"), _or_dash("{:.0%}")


def fmt_epochs(x) -> str:
    if not finite(x):
        return "never" if x == math.inf else "–"
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def fmt_interval(x, lo, hi, verdict) -> str:
    """A speed-up with its 95 % interval, '1.27× [1.18, 1.36]'; a cell without one says why."""
    if not finite(x):
        return "–"
    if verdict == REFERENCE:
        return f"{x:.2f}× (reference)"
    return f"{x:.2f}× [{lo:.2f}, {hi:.2f}]" if finite(lo) and finite(hi) else f"{x:.2f}× (one run: no interval)"


def fmt_ratio(row, column: str) -> str:
    """The speed-up in ``column`` of a summary row, with its interval."""
    return fmt_interval(*(row.get(c) for c in interval_columns(column)))


def fmt_verdict(row, column: str) -> str:
    verdict = row.get(f"{column}_verdict")
    return verdict if isinstance(verdict, str) and verdict else "–"


def and_join(items) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)

"""The training-step implementations the harness can run by name, in the article's order."""
from .base import PHASES, PhaseClock, Threads, Variant, Weights
from .ladder import Original, Step1, Step2, Step3
from .optimized import Optimized

VARIANTS: dict[str, type[Variant]] = {cls.name: cls for cls in (Original, Step1, Step2, Step3, Optimized)}


def get_variant(name: str) -> type[Variant]:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown numpy_mlp variant {name!r}; choose one of {', '.join(VARIANTS)}") from None


__all__ = ["PHASES", "VARIANTS", "PhaseClock", "Threads", "Variant", "Weights", "get_variant"]

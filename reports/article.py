"""The times the blog series reported (shared/STUDY.md, shared/reference/), which the report compares with:
35 epochs on the 60,000 MNIST images on the author's CPU, Step III the best of three runs. The original
code's times are derived from Step III's "more than a factor of 6.5" over all steps: 6.5 x step3."""
from __future__ import annotations

from typing import NamedTuple

ARTICLE_EPOCHS, ARTICLE_TRAIN_SIZE, ARTICLE_TOTAL_GAIN = 35, 60_000, 6.5


class ArticleTime(NamedTuple):
    variant: str
    batch_size: int
    seconds: float  # for ARTICLE_EPOCHS epochs
    derived: bool  # computed from other reported numbers, not printed in the article


ARTICLE_TIMES = tuple(ArticleTime(*t) for t in (
    ("original", 500, round(ARTICLE_TOTAL_GAIN * 7.3, 1), True),
    ("original", 20000, round(ARTICLE_TOTAL_GAIN * 6.8, 1), True),
    ("step1", 500, 11.0, False), ("step2", 500, 9.6, False), ("step2", 20000, 8.7, False),
    ("step3", 500, 7.3, False), ("step3", 20000, 6.8, False)))


def scale(epochs: int | None, train_size: int | None) -> tuple[float, str]:
    """The factor that turns the article's times into this study's work (``epochs`` of ``train_size``
    images; None: the article's) and a sentence that says so."""
    epochs, train = epochs or ARTICLE_EPOCHS, train_size or ARTICLE_TRAIN_SIZE
    factor = epochs / ARTICLE_EPOCHS * train / ARTICLE_TRAIN_SIZE
    parts = ([f"{epochs} instead of 35 epochs"] if epochs != ARTICLE_EPOCHS else []) + (
        [f"{train:,} instead of 60,000 training images"] if train != ARTICLE_TRAIN_SIZE else [])
    if not parts:
        return factor, "The article's times are for the same 35 epochs on 60,000 images, unscaled."
    return factor, (f"The article's times (35 epochs, 60,000 images) are scaled by {factor:.3g} to this study's "
                    f"work ({' and '.join(parts)}), assuming time grows linearly with the images processed.")

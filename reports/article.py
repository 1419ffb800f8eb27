"""The numbers the blog series reported, which the report compares with.

Source: "MLP, Numpy, TF2 - performance issues" (Steps I-III, 2020), as summarised in shared/STUDY.md and
shared/reference/article-step-iii.txt. Each time: 35 epochs on the 60,000 MNIST training images on the author's CPU
(Step III: best of three runs): step1 "about 11 s" at batch 500 (Step I); step2 9.6 s and 8.7 s at batch 500 and 20,000
(quoted in Step III); step3 7.3 s and 6.8 s (Step III's result). The original code's times are derived: Step III says
all steps together gave "more than a factor of 6.5", so original ~= 6.5 x step3. 'optimized' has no counterpart.
"""
from __future__ import annotations

from typing import NamedTuple

ARTICLE_EPOCHS, ARTICLE_TRAIN_SIZE = 35, 60_000  # of every time the article reports
ARTICLE_TOTAL_GAIN = 6.5  # "more than a factor of 6.5" from the original code to Step III


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


def article_time(variant: str, batch_size: int) -> ArticleTime | None:
    return next((a for a in ARTICLE_TIMES if (a.variant, a.batch_size) == (variant, batch_size)), None)


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

"""The numbers the blog series reported, as constants the report compares against.

Source: the blog series "MLP, Numpy, TF2 - performance issues" (Steps I-III, 2020), as summarised in
shared/STUDY.md (the study's fact sheet) and shared/reference/article-step-iii.txt. All times are the
total training time of **35 epochs** on MNIST (60,000 training images) on the author's CPU, best of
three runs (Step III states this; Steps I and II reported single figures of the same kind).

- step1: "about 11 s" at batch 500 (Step I); no figure at batch 20000.
- step2: 9.6 s at batch 500 and 8.7 s at batch 20000 (quoted at the start of Step III).
- step3: 7.3 s at batch 500 and 6.8 s at batch 20000 (Step III's result).
- original: not printed as a time; Step III says all steps together gave "more than a factor of
  6.5", so original ~= 6.5 x step3 (about 47 s and 44 s). These two are *derived*, not reported.
- optimized: this project's own further step; the article has no number for it.
"""
from __future__ import annotations

from dataclasses import dataclass

ARTICLE_EPOCHS = 35
"""Epochs of every time the article reports."""

ARTICLE_TRAIN_SIZE = 60_000
"""Training images per epoch in the article (full MNIST training set)."""

ARTICLE_TOTAL_GAIN = 6.5
"""'More than a factor of 6.5' from the original code to Step III."""


@dataclass(frozen=True)
class ArticleTime:
    variant: str
    batch_size: int
    seconds: float  # for ARTICLE_EPOCHS epochs
    derived: bool  # True: computed from other reported numbers, not printed in the article
    note: str


ARTICLE_TIMES: tuple[ArticleTime, ...] = (
    ArticleTime("original", 500, round(ARTICLE_TOTAL_GAIN * 7.3, 1), True, "6.5 x step3 (Step III: 'more than a factor of 6.5')"),
    ArticleTime("original", 20000, round(ARTICLE_TOTAL_GAIN * 6.8, 1), True, "6.5 x step3 (Step III: 'more than a factor of 6.5')"),
    ArticleTime("step1", 500, 11.0, False, "Step I: 'about 11 s'"),
    ArticleTime("step2", 500, 9.6, False, "Step II result, quoted in Step III"),
    ArticleTime("step2", 20000, 8.7, False, "Step II result, quoted in Step III"),
    ArticleTime("step3", 500, 7.3, False, "Step III result, best of three"),
    ArticleTime("step3", 20000, 6.8, False, "Step III result, best of three"),
)


def article_time(variant: str, batch_size: int) -> ArticleTime | None:
    """The article's figure for this variant and batch size, or None."""
    for item in ARTICLE_TIMES:
        if item.variant == variant and item.batch_size == batch_size:
            return item
    return None

"""Test-only plugin (loaded through MLP_STUDY_PLUGINS): a run that takes as long as a test needs to
interrupt it, without using the CPU. ``sleepy`` is ``optimized`` sleeping $SLEEPY_SECONDS (default
2) before every batch."""
import os
import time

from numpy_mlp.variants import VARIANTS
from numpy_mlp.variants.optimized import Optimized


class Sleepy(Optimized):
    name = "sleepy"
    description = "test only: optimized sleeping $SLEEPY_SECONDS before every batch"

    def train_batch(self, idx, lr, phases=None):
        time.sleep(float(os.environ.get("SLEEPY_SECONDS", "2")))
        return super().train_batch(idx, lr, phases)


VARIANTS[Sleepy.name] = Sleepy

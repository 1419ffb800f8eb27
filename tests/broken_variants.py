"""Test-only plugin (loaded through MLP_STUDY_PLUGINS): ``optimized`` with one realistic bug each, to
show what the parity gate catches and what only the exactness tests catch.

Each bug sits in a method that ``Optimized.train_batch`` runs for every batch (``_backpropagate`` per
chunk, ``_update`` once per batch).
"""
from numpy_mlp.variants import VARIANTS
from numpy_mlp.variants.optimized import Optimized


class BrokenSign(Optimized):
    name = "broken-sign"
    description = "test only: optimized with the sign of the hidden layer's kernel gradient flipped"

    def _backpropagate(self, batch, activations, ws, grads, plan):
        super()._backpropagate(batch, activations, ws, grads, plan)
        grads[1] *= -1.0  # kernel of the 70 -> 30 layer climbs the loss instead of descending it


class BrokenBiasL2(Optimized):
    name = "broken-bias-l2"
    description = "test only: optimized with the L2 term applied to the biases too"

    def _update(self, grads, lr):
        nk = self.n_kernel_weights  # the flat vector holds the kernels, then the biases
        grads.flat[nk:] += self.config.l2 * self.params[nk:]
        super()._update(grads, lr)


class BrokenMean(Optimized):
    name = "broken-mean"
    description = "test only: optimized with the loss gradient averaged over the batch instead of summed"

    def train_batch(self, idx, lr, phases=None):
        self.batch_rows = len(idx)
        return super().train_batch(idx, lr, phases)

    def _update(self, grads, lr):
        grads.flat /= self.batch_rows  # the data gradient only: the L2 term is added inside _update
        super()._update(grads, lr)


BROKEN_VARIANTS = {cls.name: cls for cls in (BrokenSign, BrokenBiasL2, BrokenMean)}
VARIANTS.update(BROKEN_VARIANTS)

"""Test-only plugin (loaded through MLP_STUDY_PLUGINS): a model with one gradient's sign flipped,
to show that the parity check can fail."""
from numpy_mlp.variants import VARIANTS
from numpy_mlp.variants.optimized import Optimized


class BrokenSign(Optimized):
    name = "broken-sign"
    description = "test only: optimized with the sign of the hidden layer's kernel gradient flipped"

    def backward(self, batch, activations):
        grads = super().backward(batch, activations)
        grads[1] *= -1.0  # kernel of the 70 -> 30 layer climbs the loss instead of descending it
        return grads


VARIANTS[BrokenSign.name] = BrokenSign

"""What KerasMLP runs on the PyTorch backend outside ``fit``: inference.

Only the 'fit' variants run Keras on PyTorch; the torch framework's loops are PyTorch's own
(``keras_baseline.torch_loop``). The model, loss, optimizer and metrics are KerasMLP's, as on the
other backends (``tensorflow_functions``, ``jax_functions``).
"""
from __future__ import annotations


class Functions:
    """The functions of one KerasMLP on PyTorch (eager; its variables are updated in place)."""

    def __init__(self, mlp):
        import torch

        self._torch, self._mlp = torch, mlp

    def forward(self, x):
        """The network's outputs A for x (NumPy in, NumPy out)."""
        mlp = self._mlp
        with self._torch.no_grad():
            return _numpy(mlp.components.activate(mlp.model(x, training=False), mlp.config.output_activation))

    def evaluate(self, x, y):
        """(summed loss + regularization as a float, outputs A as NumPy)."""
        mlp = self._mlp
        with self._torch.no_grad():
            logits = mlp.model(x, training=False)
            loss = mlp.total_loss(y, logits, mlp.model.losses)
            return float(loss), _numpy(mlp.components.activate(logits, mlp.config.output_activation))


def _numpy(tensor):
    return tensor.detach().cpu().numpy()

"""What KerasMLP runs on the JAX backend outside ``fit``: jitted inference and the ``loop``
variant as a JAX user writes it.

The loop is functional: the model is called statelessly (``stateless_call`` on the weights' values),
``jax.value_and_grad`` differentiates the same summed loss plus the kernels' penalties, the same
ArticleSGD updates the weights (``stateless_apply``) and the same metrics accumulate
(``stateless_update_state``), all in one function; one ``jax.jit`` call runs an epoch's equal
batches through ``jax.lax.scan``, a smaller last batch gets a call of its own. The state lives in
JAX arrays during an epoch and is written back to the Keras variables after it.
"""
from __future__ import annotations

import numpy as np

from .peer import calls_of_epoch


class Functions:
    """The jitted functions of one KerasMLP on JAX."""

    def __init__(self, mlp):
        import jax

        self._jax, self._mlp = jax, mlp
        model, activate, act = mlp.model, mlp.components.activate, mlp.config.output_activation

        def forward(trainable, non_trainable, x):
            logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return activate(logits, act)

        def evaluate(trainable, non_trainable, x, y):
            logits, _, penalties = model.stateless_call(trainable, non_trainable, x, training=False,
                                                        return_losses=True)
            return mlp.total_loss(y, logits, penalties), activate(logits, act)

        def step(state, x, y, idx):
            return self._train_batch(state, x[idx], y[idx])

        def steps(state, x, y, idx):
            state, _ = jax.lax.scan(lambda s, batch: (self._train_batch(s, x[batch], y[batch]), None), state, idx)
            return state

        self._forward, self._evaluate = jax.jit(forward), jax.jit(evaluate)
        # the state is donated: XLA may update the weights in place
        self._step, self._steps = jax.jit(step, donate_argnums=0), jax.jit(steps, donate_argnums=0)

    def forward(self, x):
        """The network's outputs A for x (NumPy in, NumPy out)."""
        model = self._mlp.model
        return np.asarray(self._forward(_values(model.trainable_variables), _values(model.non_trainable_variables), x))

    def evaluate(self, x, y):
        """(summed loss + regularization as a float, outputs A as NumPy)."""
        model = self._mlp.model
        loss, outputs = self._evaluate(_values(model.trainable_variables), _values(model.non_trainable_variables), x, y)
        return float(loss), np.asarray(outputs)

    # -- the 'loop' variant -------------------------------------------------------------------------

    def loop_data(self, x, y):
        """The training set as JAX arrays, once per fit()."""
        return self._jax.device_put(x), self._jax.device_put(y)

    def loop_epoch(self, data, order, batch_size: int, per_call: int, jit: bool):
        """One epoch in the batch order ``order``: ``per_call`` equal batches per jitted call (scanned),
        a smaller last batch on its own; always compiled (``jit`` is the TensorFlow loop's choice).
        Returns (epoch loss, running accuracy) as floats."""
        mlp = self._mlp
        model, optimizer = mlp.model, mlp.optimizer
        mlp.loss_mean.reset_state()
        mlp.accuracy.reset_state()
        state = (
            _values(model.trainable_variables), _values(model.non_trainable_variables), _values(optimizer.variables),
            (_values(mlp.loss_mean.variables), _values(mlp.accuracy.variables)),
        )
        x, y = data
        for idx in calls_of_epoch(order, batch_size, per_call):
            state = (self._steps if idx.ndim == 2 else self._step)(state, x, y, idx)
        trainable, _, optimizer_variables, (loss_variables, accuracy_variables) = state
        _assign(model.trainable_variables, trainable)
        _assign(optimizer.variables, optimizer_variables)
        _assign(mlp.loss_mean.variables, loss_variables)
        _assign(mlp.accuracy.variables, accuracy_variables)
        return float(mlp.loss_mean.result()), float(mlp.accuracy.result())

    def _loss_and_gradients(self, trainable, non_trainable, x, y):
        """(loss, logits, gradients with respect to ``trainable``) of the summed loss plus penalties."""
        mlp = self._mlp

        def total_loss(weights):
            logits, _, penalties = mlp.model.stateless_call(weights, non_trainable, x, training=True,
                                                            return_losses=True)
            return mlp.total_loss(y, logits, penalties), logits

        (loss, logits), grads = self._jax.value_and_grad(total_loss, has_aux=True)(trainable)
        return loss, logits, grads

    def _train_batch(self, state, x, y):
        """One mini-batch, statelessly: forward, loss, gradients, the article's update, metrics."""
        mlp = self._mlp
        trainable, non_trainable, optimizer_variables, (loss_variables, accuracy_variables) = state
        loss, logits, grads = self._loss_and_gradients(trainable, non_trainable, x, y)
        trainable, optimizer_variables = mlp.optimizer.stateless_apply(optimizer_variables, grads, trainable)
        loss_variables = mlp.loss_mean.stateless_update_state(loss_variables, loss, sample_weight=x.shape[0])
        accuracy_variables = mlp.accuracy.stateless_update_state(accuracy_variables, y, logits)
        return trainable, non_trainable, optimizer_variables, (loss_variables, accuracy_variables)


def _values(variables) -> list:
    return [v.value for v in variables]


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)

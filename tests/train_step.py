"""One training step of a peer model on exactly this batch, through the model's own loss, regularization
and optimizer (KerasMLP on TensorFlow, JAX or PyTorch; TorchMLP): what the step-by-step comparisons with
numpy_mlp need (test_keras_baseline, test_keras_jax, test_torch). Test code: it reaches into the models'
internals, which the product has no reason to expose."""
from __future__ import annotations

import numbers

import numpy as np


def train_step_details(model, x_batch: np.ndarray, labels: np.ndarray, lr: float) -> dict:
    """{'loss': the summed loss + regularization before the update, 'gradients': [(dkernel, dbias), ...] of
    that loss, 'weights': the updated weights in numpy_mlp's format}. Updates the model and its momentum."""
    x_batch, labels = model._check_data(x_batch, labels, "x_batch")
    if not (isinstance(lr, numbers.Real) and lr > 0):
        raise ValueError(f"lr must be positive, got {lr!r}")
    y = model._one_hot(labels)
    if hasattr(model, "network"):  # TorchMLP: PyTorch's own loop, kernels stored (out, in)
        loss, grads = _torch_loop_step(model, x_batch, y, float(lr))
        grads = [g.T.copy() if g.ndim == 2 else g for g in grads]
    else:
        with model._floatx():
            model.optimizer.learning_rate = float(lr)
            loss, grads = KERAS_STEPS[model.backend](model, x_batch, y)
    return {"loss": loss, "gradients": [(grads[i], grads[i + 1]) for i in range(0, len(grads), 2)],
            "weights": model.get_weights()}


def _tensorflow_step(model, x, y):
    import tensorflow as tf

    loss, _, grads = tf.function(model._functions._loss_and_gradients)(x, y)
    tf.function(lambda g: model.optimizer.apply(g, model.model.trainable_variables))(grads)
    return float(loss), [g.numpy() for g in grads]


def _jax_step(model, x, y):
    import jax

    from keras_baseline.jax_functions import _assign, _values

    def details(trainable, non_trainable, optimizer_variables, x, y):
        loss, _, grads = model._functions._loss_and_gradients(trainable, non_trainable, x, y)
        trainable, optimizer_variables = model.optimizer.stateless_apply(optimizer_variables, grads, trainable)
        return loss, grads, trainable, optimizer_variables

    keras_model, optimizer = model.model, model.optimizer
    loss, grads, trainable, optimizer_variables = jax.jit(details)(
        _values(keras_model.trainable_variables), _values(keras_model.non_trainable_variables),
        _values(optimizer.variables), x, y,
    )
    _assign(keras_model.trainable_variables, trainable)
    _assign(optimizer.variables, optimizer_variables)
    return float(loss), [np.asarray(g) for g in grads]


def _keras_torch_step(model, x, y):
    import torch

    variables = model.model.trainable_variables
    logits = model.model(x, training=True)
    loss = model.total_loss(y, logits, model.model.losses)
    grads = torch.autograd.grad(loss, [v.value for v in variables])
    with torch.no_grad():
        model.optimizer.apply(list(grads), variables)
    return float(loss.detach()), [g.detach().cpu().numpy() for g in grads]


KERAS_STEPS = {"tensorflow": _tensorflow_step, "jax": _jax_step, "torch": _keras_torch_step}


def _torch_loop_step(model, x, y, lr):
    torch = model._torch
    logits = model.network(torch.from_numpy(x))
    loss = model._total_loss(logits, torch.from_numpy(y))
    grads = torch.autograd.grad(loss, model.parameters)
    momentum = model.config.momentum
    with torch.no_grad():
        for parameter, grad, previous in zip(model.parameters, grads, model.previous_steps):
            step = grad * lr
            parameter -= step + momentum * previous
            previous.copy_(step)
    return float(loss), [g.numpy() for g in grads]

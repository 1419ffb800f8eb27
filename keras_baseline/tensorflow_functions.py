"""What KerasMLP runs on the TensorFlow backend outside ``fit``: tf.functions for inference and the
``loop`` variant (GradientTape in a tf.function running many batches).

The model, loss, optimizer and metrics are KerasMLP's (one definition for both backends); only how
they are called differs from ``keras_baseline.jax_functions``.
"""
from __future__ import annotations

from numpy_mlp.model import batch_slices


class Functions:
    """The compiled functions of one KerasMLP on TensorFlow (its variables are updated in place)."""

    def __init__(self, mlp):
        import tensorflow as tf

        self._tf, self._mlp = tf, mlp
        self._loop_functions = {}
        n_in, dtype = mlp.config.layer_sizes[0], mlp.dtype.name
        x_spec = tf.TensorSpec([None, n_in], dtype)
        y_spec = tf.TensorSpec([None, mlp.config.layer_sizes[-1]], dtype)
        model, activate, act = mlp.model, mlp.components.activate, mlp.config.output_activation

        @tf.function(input_signature=[x_spec])
        def forward(x):
            return activate(model(x, training=False), act)

        @tf.function(input_signature=[x_spec, y_spec])
        def evaluate(x, y):
            logits = model(x, training=False)
            return mlp.total_loss(y, logits, model.losses), activate(logits, act)

        self._forward, self._evaluate = forward, evaluate

    def forward(self, x):
        """The network's outputs A for x (NumPy in, NumPy out)."""
        return self._forward(x).numpy()

    def evaluate(self, x, y):
        """(summed loss + regularization as a float, outputs A as NumPy)."""
        loss, outputs = self._evaluate(x, y)
        return float(loss), outputs.numpy()

    # -- the 'loop' variant -------------------------------------------------------------------------

    def loop_data(self, x, y):
        """The training set as tensors, once per fit()."""
        return self._tf.constant(x), self._tf.constant(y)

    def loop_epoch(self, data, order, batch_size: int, per_call: int, jit: bool):
        """One epoch in the batch order ``order``: ``per_call`` equal batches per tf.function call,
        a smaller last batch on its own. Returns (epoch loss, running accuracy) as floats."""
        mlp = self._mlp
        x_t, y_t = data
        mlp.loss_mean.reset_state()
        mlp.accuracy.reset_state()
        step = self._loop_step(jit)
        if per_call == 1:
            for idx in batch_slices(order, batch_size):
                step(x_t, y_t, idx)
        else:
            many = self._loop_steps(jit)
            n_full = len(order) // batch_size
            full = order[: n_full * batch_size].reshape(n_full, batch_size)
            for start in range(0, n_full, per_call):
                many(x_t, y_t, full[start : start + per_call])
            if n_full * batch_size < len(order):
                step(x_t, y_t, order[n_full * batch_size :])
        return float(mlp.loss_mean.result()), float(mlp.accuracy.result())

    def _loss_and_gradients(self, x, y):
        model = self._mlp.model
        with self._tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = self._mlp.total_loss(y, logits, model.losses)
        return loss, logits, tape.gradient(loss, model.trainable_variables)

    def _train_batch(self, x, y):
        mlp = self._mlp
        loss, logits, grads = self._loss_and_gradients(x, y)
        mlp.optimizer.apply(grads, mlp.model.trainable_variables)
        mlp.loss_mean.update_state(loss, sample_weight=self._tf.shape(x)[0])
        mlp.accuracy.update_state(y, logits)

    def _loop_step(self, jit: bool):
        """One mini-batch: gather by indices, forward, loss, gradients, update, metrics."""
        key = ("step", jit)
        if key not in self._loop_functions:
            tf = self._tf

            @tf.function(jit_compile=jit, reduce_retracing=True)
            def step(x, y, idx):
                self._train_batch(tf.gather(x, idx), tf.gather(y, idx))

            self._loop_functions[key] = step
        return self._loop_functions[key]

    def _loop_steps(self, jit: bool):
        """Several equal mini-batches (rows of ``idx``) in one call: a loop inside the graph."""
        key = ("steps", jit)
        if key not in self._loop_functions:
            tf = self._tf

            @tf.function(jit_compile=jit, reduce_retracing=True)
            def steps(x, y, idx):
                for i in tf.range(tf.shape(idx)[0]):
                    self._train_batch(tf.gather(x, idx[i]), tf.gather(y, idx[i]))

            self._loop_functions[key] = steps
        return self._loop_functions[key]

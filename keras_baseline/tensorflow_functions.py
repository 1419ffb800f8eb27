"""What KerasMLP runs on the TensorFlow backend outside ``fit``: tf.functions for inference and the
``loop`` variant (GradientTape in a tf.function running many batches).

The model, loss, optimizer and metrics are KerasMLP's (one definition for both backends); only how
they are called differs from ``keras_baseline.jax_functions``.
"""
from __future__ import annotations

from .peer import calls_of_epoch


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
        for idx in calls_of_epoch(order, batch_size, per_call):
            self._loop_function(jit, many=idx.ndim == 2)(x_t, y_t, idx)
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

    def _loop_function(self, jit: bool, many: bool):
        """The tf.function of one mini-batch (``idx`` (batch,): gather by indices, forward, loss, gradients,
        update, metrics) or, with ``many``, of several equal ones (rows of ``idx``) in a loop inside the graph."""
        if (jit, many) not in self._loop_functions:
            tf = self._tf

            def step(x, y, idx):
                self._train_batch(tf.gather(x, idx), tf.gather(y, idx))

            def steps(x, y, idx):
                for i in tf.range(tf.shape(idx)[0]):
                    step(x, y, idx[i])

            self._loop_functions[jit, many] = tf.function(steps if many else step, jit_compile=jit,
                                                          reduce_retracing=True)
        return self._loop_functions[jit, many]

"""keras_baseline: the same network and training as numpy_mlp, in Keras 3 / TensorFlow 2 on the CPU.

What is checked, and against what:
- one training step (loss, every gradient, every updated weight) against numpy_mlp's optimized
  variant, from the same weights on the same real MNIST batch, in float64 (rtol 1e-9) and float32
  (rtol 1e-4), for the reference configuration and two others;
- three epochs of every variant on 2,000 real MNIST samples in numpy_mlp's batch order: the weights
  after each epoch, the records;
- the learning rates the article prints after 35 epochs, in the optimizer's own variable;
- CPU only and the requested thread count, read back from TensorFlow (in a subprocess);
- bad input gives ValueError.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_mlp import MLP, InputScaler, MLPConfig, TrainingDiverged, init_weights, lr_schedule, shuffle_rng
from numpy_mlp.variants import get_variant
from train_step import train_step_details

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[1]

# The learning rate in effect during epoch 35, as the article prints it (see STUDY.md).
ARTICLE_RATES_AFTER_35_EPOCHS = {500: 0.0009994051838157095, 20000: 9.994051838157101e-05}


def assert_close(name, actual, expected, rtol, atol=0.0):
    """Shape, then dtype, then values (|actual - expected| <= atol + rtol |expected|), naming ``name``."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != expected {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=f"{name} differs")


@pytest.fixture(scope="module")
def keras_baseline():
    pytest.importorskip("tensorflow")
    import keras_baseline

    return keras_baseline


def scaled(mnist_small, dtype):
    """The first 2,000 training and 1,000 test images, standardized as the harness does."""
    x_raw, y, x_test_raw, y_test = mnist_small
    scaler = InputScaler.fit(x_raw, dtype=dtype)
    return scaler.transform(x_raw), y.astype(np.int64), scaler.transform(x_test_raw), y_test.astype(np.int64)


# -- one step ---------------------------------------------------------------------------------------

STEP_CONFIGS = {
    "reference": {},
    # softmax output, categorical cross-entropy, L1 and L2, and a momentum big enough to matter
    "tanh-softmax-l1": dict(hidden_activation="tanh", output_activation="softmax", l1=0.01, momentum=0.5),
    "relu-mse": dict(hidden_activation="relu", loss="mse"),
}
# Tolerances: |keras - numpy| <= rtol |numpy| + floor * max|numpy| per array. Both sides do the same
# operations; only the summation order (Eigen vs BLAS) and the libm/sigmoid differ. Observed: float64,
# differences <= 2.3e-15 of the array's largest value; float32, <= 9e-7 of it. Elements far below the
# array's largest value carry that absolute error (cancellation in the sums over the batch), so the
# floor is needed; it stays 400x (float64) / 3x (float32) above what is observed.
STEP_RTOL = {"float64": 1e-9, "float32": 1e-4}
STEP_FLOOR = {"float64": 1e-12, "float32": 3e-6}


def numpy_step(config, weights, x, labels, lr):
    """numpy_mlp on one batch, through the article's five phases (``step3``, which every other rung and
    ``optimized`` follow exactly, see test_numpy_mlp): (loss, gradients incl. regularization, new weights)
    for two steps, the second one using the momentum of the first."""
    impl = get_variant("step3")(config, weights)
    y = np.zeros((len(labels), config.layer_sizes[-1]), dtype=config.dtype)
    y[np.arange(len(labels)), labels] = 1
    impl.bind(x, y, labels)
    results = []
    for _ in range(2):
        batch = impl.prepare(np.arange(len(labels)))
        cache = impl.forward(batch)
        loss, _ = impl.cost(batch, cache)
        grads = impl.backward(batch, cache)  # (outputs, 1 + inputs): the bias column first, then kernel^T
        full = [(g[:, 1:].T.copy(), g[:, 0].copy()) for g in grads]
        impl.update(grads, lr)
        results.append((loss, full, impl.get_weights()))
    return results


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(STEP_CONFIGS))
def test_one_step_equals_numpy_mlp(keras_baseline, mnist_small, name, dtype):
    config = MLPConfig(dtype=dtype, **STEP_CONFIGS[name])
    x, labels, _, _ = scaled(mnist_small, dtype)
    x, labels = x[:64], labels[:64]
    weights = init_weights(config, seed=7)
    lr = config.lr_for(500)
    expected = numpy_step(config, weights, x, labels, lr)

    model = keras_baseline.KerasMLP(config, "loop", seed=7)
    model.set_weights(weights)
    rtol, floor = STEP_RTOL[dtype], STEP_FLOOR[dtype]
    for step, (loss, grads, new_weights) in enumerate(expected, start=1):
        got = train_step_details(model, x, labels, lr)
        assert_close(f"step {step} loss", got["loss"], loss, rtol)
        for n, ((gk, gb), (ek, eb)) in enumerate(zip(got["gradients"], grads)):
            assert_close(f"step {step} dLoss/dkernel {n}", gk, ek, rtol, floor * np.abs(ek).max())
            assert_close(f"step {step} dLoss/dbias {n}", gb, eb, rtol, floor * np.abs(eb).max())
        for n, ((k, b), (ek, eb)) in enumerate(zip(got["weights"], new_weights)):
            assert_close(f"step {step} kernel {n}", k, ek, rtol, floor * np.abs(ek).max())
            assert_close(f"step {step} bias {n}", b, eb, rtol, floor * np.abs(eb).max())


# -- three epochs -----------------------------------------------------------------------------------

# float32 over 3 epochs x 20 batches: the per-step differences above (~1e-7 relative) compound through
# the updates; observed max |difference| of any weight after 3 epochs ~1.2e-7 (weights ~1e-2). atol
# 1e-5 keeps two orders of magnitude of margin and stays far below one epoch's change of the weights
# (~1e-3), so a wrong update rule, rate or batch order fails; the exact rules are pinned in float64 above.
TRAJECTORY_TOL = dict(rtol=1e-3, atol=1e-5)


# every variant as it runs at batch 100, plus the other execution paths its settings can take
TRAJECTORY_CASES = {
    "fit": ("fit", None),
    "fit-tuned": ("fit-tuned", None),
    "loop": ("loop", None),
    "fit-tuned XLA": ("fit-tuned", dict(steps_per_execution="epoch", jit_compile=True)),
    "loop XLA": ("loop", dict(steps_per_execution="epoch", jit_compile=True)),
    "loop one call per batch": ("loop", dict(steps_per_execution=1, jit_compile=False)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TRAJECTORY_CASES))
def test_three_epochs_follow_numpy_mlp(keras_baseline, mnist_small, case):
    variant, settings = TRAJECTORY_CASES[case]
    settings = keras_baseline.RunSettings(**settings) if settings else None
    config = MLPConfig()
    x, labels, x_test, labels_test = scaled(mnist_small, config.dtype)
    seed, epochs, batch_size = 3, 3, 100
    weights = init_weights(config, seed)

    reference = MLP(config, "optimized", seed=seed)
    reference.set_weights(weights)
    ref_weights = []
    ref_records = reference.fit(x, labels, epochs, batch_size, validation_data=(x_test, labels_test),
                                callback=lambda r: ref_weights.append(reference.get_weights()))

    model = keras_baseline.KerasMLP(config, variant, seed=seed, settings=settings)
    model.set_weights(weights)
    got_weights = []
    records = model.fit(x, labels, epochs, batch_size, validation_data=(x_test, labels_test),
                        batch_order_rng=shuffle_rng(seed), callback=lambda r: got_weights.append(model.get_weights()))

    assert [r.epoch for r in records] == [1, 2, 3]
    for e, (got, ref, rec, ref_rec) in enumerate(zip(got_weights, ref_weights, records, ref_records), start=1):
        for n, ((k, b), (rk, rb)) in enumerate(zip(got, ref)):
            assert_close(f"{case}: epoch {e} kernel {n}", k, rk, **TRAJECTORY_TOL)
            assert_close(f"{case}: epoch {e} bias {n}", b, rb, **TRAJECTORY_TOL)
        assert rec.lr == ref_rec.lr
        assert rec.loss == pytest.approx(ref_rec.loss, rel=1e-4)
        assert rec.train_acc == pytest.approx(ref_rec.train_acc, abs=1.5 / len(x))
        assert rec.test_acc == pytest.approx(ref_rec.test_acc, abs=1.5 / len(x_test))
        assert rec.test_loss == pytest.approx(ref_rec.test_loss, rel=1e-4)
        assert rec.wall_s > 0 and rec.cpu_s >= 0 and rec.eval_s > 0
    loss, acc = model.evaluate(x_test, labels_test)
    assert (loss, acc) == pytest.approx((records[-1].test_loss, records[-1].test_acc))
    outputs = model.predict(x_test)
    assert outputs.shape == (len(x_test), 10) and outputs.dtype == np.float32
    assert_close("predict", outputs, reference.predict(x_test), **TRAJECTORY_TOL)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fit-tuned", "loop"])
def test_a_smaller_last_batch_is_cut_like_numpy_mlp(keras_baseline, mnist_small, variant):
    config = MLPConfig()
    x, labels, _, _ = scaled(mnist_small, config.dtype)
    x, labels = x[:1000], labels[:1000]  # batches of 300, 300, 300, 100
    reference = MLP(config, "optimized", seed=4)
    reference.fit(x, labels, 2, 300)
    model = keras_baseline.KerasMLP(config, variant, seed=4)
    model.fit(x, labels, 2, 300, batch_order_rng=shuffle_rng(4))
    for n, ((k, b), (rk, rb)) in enumerate(zip(model.get_weights(), reference.get_weights())):
        assert_close(f"{variant}: kernel {n}", k, rk, **TRAJECTORY_TOL)
        assert_close(f"{variant}: bias {n}", b, rb, **TRAJECTORY_TOL)


def test_execution_settings(keras_baseline):
    RunSettings, settings_for = keras_baseline.RunSettings, keras_baseline.settings_for
    assert settings_for("fit", 500) == settings_for("fit", 20000) == RunSettings()  # Keras' defaults
    for variant in ("fit-tuned", "loop"):
        assert settings_for(variant, 500).jit_compile is False
        assert settings_for(variant, 20000).jit_compile is True
        assert settings_for(variant, 500).steps_for(120) == 120
    assert settings_for("loop", 128).max_threads == 1 and settings_for("loop", 500).max_threads is None
    assert settings_for("fit-tuned", 32).max_threads is None and settings_for("fit", 32).max_threads is None
    for bad in (dict(steps_per_execution=0), dict(steps_per_execution="all"), dict(jit_compile="yes"),
                dict(max_threads=0)):
        with pytest.raises(ValueError):
            RunSettings(**bad)
    with pytest.raises(ValueError, match="variant"):
        settings_for("fastest", 500)


# -- learning rates ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["fit", "loop"])
def test_optimizer_holds_the_article_rates(keras_baseline, variant, dtype):
    # a tiny network on a few samples: only the schedule matters here, 35 epochs of one batch each
    config = MLPConfig(layer_sizes=(4, 3, 10), dtype=dtype)
    rng = np.random.default_rng(0)
    for batch_size, printed in ARTICLE_RATES_AFTER_35_EPOCHS.items():
        x = rng.standard_normal((batch_size, 4)).astype(dtype)
        labels = rng.integers(0, 10, batch_size)
        model = keras_baseline.KerasMLP(config, variant, seed=0)
        in_variable = []
        records = model.fit(x, labels, 35, batch_size,
                            callback=lambda r: in_variable.append(model.optimizer.learning_rate.numpy()))
        expected = lr_schedule(config.lr_for(batch_size), config.lr_decay, 35)
        assert records[-1].lr == printed == expected[-1]
        assert [r.lr for r in records] == expected
        assert in_variable[-1].dtype == np.dtype(dtype)
        assert in_variable == [np.dtype(dtype).type(r) for r in expected]


def test_a_second_fit_continues_the_schedule(keras_baseline):
    config = MLPConfig(layer_sizes=(4, 3, 10))
    x = np.random.default_rng(1).standard_normal((40, 4)).astype(np.float32)
    labels = np.arange(40) % 10
    model = keras_baseline.KerasMLP(config, "loop", seed=0)
    first = model.fit(x, labels, 2, 20)
    second = model.fit(x, labels, 2, 20)
    assert [r.epoch for r in first + second] == [1, 2, 3, 4]
    assert [r.lr for r in first + second] == lr_schedule(config.lr_for(20), config.lr_decay, 4)


# -- TensorFlow runtime -----------------------------------------------------------------------------

RUNTIME_SCRIPT = r"""
import json, sys
import keras_baseline
assert "tensorflow" not in sys.modules, "import keras_baseline started TensorFlow"
errors = []
for bad in (0, -1, 1.5, True, "2"):
    try:
        keras_baseline.configure_tensorflow(bad)
        errors.append(f"threads={bad!r} accepted")
    except ValueError:
        pass
try:
    keras_baseline.KerasMLP(variant="no-such-variant")
    errors.append("unknown variant accepted")
except ValueError:
    pass
assert "tensorflow" not in sys.modules, "bad arguments started TensorFlow"
info = keras_baseline.configure_tensorflow(1)
import tensorflow as tf
tf.reduce_sum(tf.ones((3, 3)))  # the runtime is up now
after = keras_baseline.tensorflow_runtime_info()
try:
    keras_baseline.configure_tensorflow(2)
    errors.append("thread count changed after TensorFlow started")
except RuntimeError:
    pass
print(json.dumps({"info": info, "after": after, "errors": errors}))
"""


@pytest.mark.slow
def test_cpu_only_and_thread_count_in_a_fresh_process():
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("CUDA_VISIBLE_DEVICES",)}
    done = subprocess.run([sys.executable, "-c", RUNTIME_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    for state in (result["info"], result["after"]):
        assert state["intra_op_threads"] == 1
        assert state["inter_op_threads"] == 1
        assert state["visible_gpus"] == []
        assert all("GPU" not in d for d in state["visible_devices"])
        assert state["cuda_visible_devices"] == "-1"
        assert state["tensorflow_version"] and state["keras_version"]


# -- bad input --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(keras_baseline):
    config = MLPConfig(layer_sizes=(4, 3, 10))
    model = keras_baseline.KerasMLP(config, "loop", seed=0)
    x = np.random.default_rng(2).standard_normal((30, 4)).astype(np.float32)
    return model, x, np.arange(30) % 10


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x[:, :3], y), "shape"),
        (lambda x, y: (x[0], y), "shape"),
        (lambda x, y: (x, y[:-1]), "labels"),
        (lambda x, y: (x, y + 1), "labels must be in"),
        (lambda x, y: (x, y - 1), "labels must be in"),
        (lambda x, y: (x, y.astype(float)), "integers"),
        (lambda x, y: (np.where(np.arange(4) == 2, np.nan, x), y), "NaN"),
        (lambda x, y: (np.where(np.arange(4) == 2, np.inf, x), y), "NaN"),
        (lambda x, y: ((x * 0).astype(np.uint8), y), "float"),
    ],
)
def test_bad_data_is_refused(tiny, change, message):
    model, x, y = tiny
    bad_x, bad_y = change(x, y)
    with pytest.raises(ValueError, match=message):
        model.fit(bad_x, bad_y, 1, 10)
    with pytest.raises(ValueError, match=message):
        model.evaluate(bad_x, bad_y)
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, 1, 10, validation_data=(bad_x, bad_y))


@pytest.mark.parametrize("epochs, batch_size", [(0, 10), (-1, 10), (1.0, 10), (1, 0), (1, -5), (1, 31), (1, 2.5)])
def test_bad_epochs_or_batch_size_are_refused(tiny, epochs, batch_size):
    model, x, y = tiny
    with pytest.raises(ValueError, match="epochs|batch_size"):
        model.fit(x, y, epochs, batch_size)


def test_other_bad_arguments_are_refused(keras_baseline, tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="variant"):
        keras_baseline.KerasMLP(MLPConfig(), "fast")
    with pytest.raises(ValueError, match="MLPConfig"):
        keras_baseline.KerasMLP({"layer_sizes": (4, 3, 10)})
    with pytest.raises(ValueError, match="threads"):
        keras_baseline.configure_tensorflow(0)
    with pytest.raises(ValueError, match="pairs"):
        model.set_weights(model.get_weights()[:1])
    with pytest.raises(ValueError, match="layer 0"):
        model.set_weights([(np.zeros((3, 3)), np.zeros(3)), (np.zeros((3, 10)), np.zeros(10))])
    with pytest.raises(ValueError, match="Generator"):
        model.fit(x, y, 1, 10, batch_order_rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="lr"):
        train_step_details(model, x, y, 0.0)
    with pytest.raises(ValueError, match="shape"):
        model.predict(x[:, :2])


def test_divergence_raises(keras_baseline):
    # W -= lr * l2 * W multiplies the kernels by -999 per step: infinite within a few epochs
    config = MLPConfig(layer_sizes=(4, 8, 10), learning_rate=1.0, l2=1e3)
    x = np.random.default_rng(3).standard_normal((50, 4)).astype(np.float32)
    for variant in ("fit", "loop"):
        model = keras_baseline.KerasMLP(config, variant, seed=0)
        with pytest.raises(TrainingDiverged, match="epoch"):
            model.fit(x, np.arange(50) % 10, 30, 10)


def test_weights_round_trip_and_defaults(keras_baseline):
    config = MLPConfig()
    model = keras_baseline.KerasMLP(config, "fit", seed=5)
    for (k, b), (ek, eb) in zip(model.get_weights(), init_weights(config, 5)):  # numpy_mlp's initial weights
        assert_close("initial kernel", k, ek, 0)
        assert_close("initial bias", b, eb, 0)
    assert set(keras_baseline.VARIANTS) == {"fit", "fit-tuned", "loop"}
    assert all(isinstance(v, str) and v for v in keras_baseline.VARIANTS.values())

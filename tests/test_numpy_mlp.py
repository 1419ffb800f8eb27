"""numpy_mlp: gradients, the ladder's shared trajectory, dtypes, the article's schedule, bad input."""
import itertools

import numpy as np
import pytest

from numpy_mlp import MLP, VARIANTS, InputScaler, MLPConfig, TrainingDiverged, lr_schedule
from numpy_mlp.losses import logloss, logloss_onehot

TINY = (6, 5, 4, 3)
COMBINATIONS = [
    dict(hidden_activation=h, output_activation=o, loss=loss, l2=l2, l1=l1)
    for h, o, loss, (l2, l1) in itertools.product(
        ("sigmoid", "tanh", "relu"), ("sigmoid", "softmax"), ("logloss", "mse"), ((0.0, 0.0), (0.2, 0.0), (0.0, 0.05))
    )
]


def _name(combo):
    return "-".join(f"{v}" for v in combo.values())


def tiny_data(n=40, n_in=6, n_out=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.integers(0, n_out, size=n)


def assert_weights_close(actual, expected, rtol, atol=0.0, what=""):
    """Compare two weight lists (shape, dtype, values) and name the parameter that differs."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} layers against {len(expected)}"
    for n, ((k, b), (k_ref, b_ref)) in enumerate(zip(actual, expected)):
        for pname, a, e in ((f"kernel {n}", k, k_ref), (f"bias {n}", b, b_ref)):
            assert a.shape == e.shape, f"{what} {pname}: shape {a.shape} != {e.shape}"
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what} {pname}")


def total_gradient(model, x, labels):
    """The gradient one batch gives (summed loss + regularization), read off a plain SGD step of lr=1."""
    before = model.get_weights()
    model.fit(x, labels, epochs=1, batch_size=len(x))
    after = model.get_weights()
    return [(k0 - k1, b0 - b1) for (k0, b0), (k1, b1) in zip(before, after)]


@pytest.mark.parametrize("combo", COMBINATIONS, ids=_name)
@pytest.mark.parametrize("variant", ["optimized", "step3", "original"])
def test_gradient_matches_central_differences(combo, variant):
    config = MLPConfig(layer_sizes=TINY, dtype="float64", learning_rate=1.0, momentum=0.0, lr_decay=0.0, **combo)
    x, labels = tiny_data()
    model = MLP(config, variant, seed=2)
    weights = model.get_weights()
    analytic = total_gradient(model, x, labels)

    probe = MLP(config, "optimized", seed=2)
    eps = 1e-6
    for n, (kernel, bias) in enumerate(weights):
        for pname, param, grad in ((f"kernel {n}", kernel, analytic[n][0]), (f"bias {n}", bias, analytic[n][1])):
            numeric = np.zeros_like(param)
            for i in np.ndindex(param.shape):
                saved = param[i]
                param[i] = saved + eps
                probe.set_weights(weights)
                plus = probe.evaluate(x, labels)[0]
                param[i] = saved - eps
                probe.set_weights(weights)
                minus = probe.evaluate(x, labels)[0]
                param[i] = saved
                numeric[i] = (plus - minus) / (2 * eps)
            error = np.linalg.norm(grad - numeric) / max(np.linalg.norm(grad) + np.linalg.norm(numeric), 1e-12)
            assert error < 1e-6, f"{variant} {_name(combo)} {pname}: relative error {error:.2e}"


@pytest.mark.parametrize("combo", COMBINATIONS[::5], ids=_name)
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-4)])
def test_ladder_follows_the_optimized_trajectory(combo, dtype, rtol):
    config = MLPConfig(layer_sizes=TINY, dtype=dtype, learning_rate=0.01, momentum=0.3, **combo)
    x, labels = tiny_data(n=100)
    reference = MLP(config, "optimized", seed=5)
    reference.fit(x, labels, epochs=3, batch_size=16)  # 7 batches an epoch, the last one smaller
    for variant in VARIANTS:
        model = MLP(config, variant, seed=5)
        model.fit(x, labels, epochs=3, batch_size=16)
        atol = 1e-6 if dtype == "float32" else 1e-13
        assert_weights_close(model.get_weights(), reference.get_weights(), rtol, atol, what=variant)


@pytest.mark.parametrize("batch_size", [8, 17, 32])  # optimized folds the scaling into layer 0 from 3 x 5 rows
def test_raw_inputs_with_a_scaler_give_the_same_trajectory(batch_size):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(120, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, size=120)
    config = MLPConfig(layer_sizes=TINY)
    scaler = InputScaler.fit(raw)
    pre_scaled = MLP(config, "optimized", seed=1)
    pre_scaled.fit(scaler.transform(raw), labels, epochs=2, batch_size=batch_size)
    for variant in ("optimized", "step3"):
        model = MLP(config, variant, seed=1, scaler=scaler)
        model.fit(raw, labels, epochs=2, batch_size=batch_size)
        assert_weights_close(model.get_weights(), pre_scaled.get_weights(), 1e-6, what=variant)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "original"])
def test_float32_stays_float32(variant):
    config = MLPConfig(layer_sizes=TINY)
    x, labels = tiny_data()
    model = MLP(config, variant, seed=0)
    model.fit(x.astype(np.float32), labels, epochs=1, batch_size=8)
    for k, b in model.get_weights():
        assert k.dtype == np.float32 and b.dtype == np.float32
    assert model.predict(x.astype(np.float32)).dtype == np.float32


def test_original_computes_in_float64_as_the_article_did():
    model = MLP(MLPConfig(layer_sizes=TINY), "original")
    assert all(k.dtype == np.float64 for k, _ in model.get_weights())


@pytest.mark.parametrize("batch_size, last_lr", [(500, 0.0009994051838157095), (20000, 9.994051838157101e-05)])
def test_learning_rate_decay_reproduces_the_printed_values(batch_size, last_lr):
    assert lr_schedule(MLPConfig().lr_for(batch_size), 1e-6, 35)[-1] == last_lr
    config = MLPConfig(layer_sizes=(2, 2, 2))
    x, labels = tiny_data(n=batch_size, n_in=2, n_out=2)
    records = MLP(config, "optimized").fit(x, labels, epochs=35, batch_size=batch_size)
    assert records[-1].lr == last_lr


def test_phase_timing_changes_nothing_but_the_record():
    config = MLPConfig(layer_sizes=TINY)
    x, labels = tiny_data(n=64)
    plain, timed = MLP(config, seed=3), MLP(config, seed=3)
    r_plain = plain.fit(x, labels, epochs=2, batch_size=10)
    r_timed = timed.fit(x, labels, epochs=2, batch_size=10, phase_timing=True)
    assert_weights_close(timed.get_weights(), plain.get_weights(), 0.0)
    assert r_plain[-1].phases is None
    phases = r_timed[-1].phases
    assert set(phases) == {"prepare", "forward", "cost", "backward", "update"}
    assert all(t > 0 for t in phases.values()) and sum(phases.values()) <= r_timed[-1].wall_s


def test_records_hold_epoch_loss_accuracy_and_separate_evaluation():
    config = MLPConfig(layer_sizes=TINY, learning_rate=0.05)
    x, labels = tiny_data(n=200)
    records = MLP(config).fit(x, labels, epochs=4, batch_size=20, validation_data=(x, labels))
    assert [r.epoch for r in records] == [1, 2, 3, 4]
    assert records[-1].loss < records[0].loss
    assert all(0 <= r.train_acc <= 1 and 0 <= r.test_acc <= 1 and r.eval_s > 0 for r in records)


def test_weights_round_trip_in_keras_layout():
    model = MLP(MLPConfig(layer_sizes=TINY), "step2", seed=4)
    weights = model.get_weights()
    assert [(k.shape, b.shape) for k, b in weights] == [((6, 5), (5,)), ((5, 4), (4,)), ((4, 3), (3,))]
    other = MLP(MLPConfig(layer_sizes=TINY), "optimized", seed=9)
    other.set_weights(weights)
    assert_weights_close(other.get_weights(), weights, 0.0)


BAD_FIT_INPUTS = {
    "x of the wrong width": (lambda x, y: (x[:, :5], y, 8), "shape"),
    "one-dimensional x": (lambda x, y: (x[:, 0], y, 8), "shape"),
    "labels of the wrong length": (lambda x, y: (x, y[:-1], 8), "labels"),
    "label out of range": (lambda x, y: (x, np.where(y == 0, 3, y), 8), "0..2"),
    "negative label": (lambda x, y: (x, np.where(y == 0, -1, y), 8), "0..2"),
    "float labels": (lambda x, y: (x, y.astype(float), 8), "integers"),
    "NaN in the data": (lambda x, y: (np.where(x > 1.5, np.nan, x), y, 8), "NaN"),
    "batch size 0": (lambda x, y: (x, y, 0), "batch_size"),
    "batch size larger than the data": (lambda x, y: (x, y, 41), "batch_size"),
}


@pytest.mark.parametrize("case", BAD_FIT_INPUTS, ids=list(BAD_FIT_INPUTS))
def test_bad_input_is_refused_before_training(case):
    make, message = BAD_FIT_INPUTS[case]
    x, labels = tiny_data()
    model = MLP(MLPConfig(layer_sizes=TINY))
    before = model.get_weights()
    bad_x, bad_labels, batch_size = make(x, labels)
    with pytest.raises(ValueError, match=message):
        model.fit(bad_x, bad_labels, epochs=1, batch_size=batch_size)
    assert_weights_close(model.get_weights(), before, 0.0, what=case)
    assert model.epochs_done == 0


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(hidden_activation="swish"), "hidden_activation"),
        (dict(output_activation="relu"), "output_activation"),
        (dict(loss="hinge"), "loss"),
        (dict(dtype="float16"), "dtype"),
        (dict(layer_sizes=(784,)), "layer_sizes"),
        (dict(learning_rate=-1.0), "learning_rate"),
    ],
)
def test_bad_configuration_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        MLPConfig(**changes)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown numpy_mlp variant 'step4'"):
        MLP(MLPConfig(), "step4")


def test_exploding_training_stops_with_a_clear_error():
    config = MLPConfig(layer_sizes=TINY, hidden_activation="relu", learning_rate=1e3)
    x, labels = tiny_data()
    with pytest.raises(TrainingDiverged, match="loss became"):
        MLP(config).fit(x * 100, labels, epochs=5, batch_size=40)


@pytest.mark.slow
def test_reference_configuration_learns_mnist(mnist):
    x_train, y_train, x_test, y_test = mnist
    config = MLPConfig()
    model = MLP(config, "optimized", seed=0, scaler=InputScaler.fit(x_train, config.input_scaling))
    model.fit(x_train, y_train, epochs=35, batch_size=500)
    _, test_acc = model.evaluate(x_test, y_test)
    _, train_acc = model.evaluate(x_train, y_train)
    assert test_acc >= 0.96 and train_acc >= 0.98, (test_acc, train_acc)


def _row_threads_or_skip():
    from threadpoolctl import threadpool_limits

    from numpy_mlp.model import blas_threads

    if blas_threads() < 2:
        pytest.skip("needs a BLAS with at least two threads")
    return threadpool_limits(2, user_api="blas")


def test_optimized_chooses_its_threads_per_batch_size():
    """optimized's thread choice is in effect during fit, and the caller's limit is back after it:
    one thread for small batches, BLAS on both cores for medium ones, row threads for large ones."""
    from numpy_mlp.model import blas_threads

    x, labels = tiny_data(n=1200)
    seen = []
    with _row_threads_or_skip():
        for variant, batch_size in (("optimized", 32), ("optimized", 300), ("optimized", 1200), ("step3", 32)):
            model = MLP(MLPConfig(layer_sizes=TINY), variant)
            record = lambda r: seen.append((blas_threads(), getattr(model.impl, "row_threads", 1)))  # noqa: E731
            model.fit(x, labels, epochs=1, batch_size=batch_size, callback=record)
            assert blas_threads() == 2
    assert seen == [(1, 1), (2, 1), (1, 2), (2, 1)]


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("scaled", [False, True], ids=["prescaled", "raw+scaler"])
def test_row_shares_and_chunks_follow_the_whole_batch_trajectory(small_chunks, dtype, rtol, scaled):
    """Batches of 50 rows cut into 2 shares of 4 chunks each (summed in another order) train like step3."""
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, size=(200, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, size=200)
    config = MLPConfig(layer_sizes=TINY, dtype=dtype, learning_rate=0.01, momentum=0.3)
    scaler = InputScaler.fit(raw, dtype=dtype)
    x, model_scaler = (raw, scaler) if scaled else (scaler.transform(raw), None)
    with _row_threads_or_skip():
        model = MLP(config, "optimized", seed=3, scaler=model_scaler)
        assert model.threads_for(50).rows == 2
        records = model.fit(x, labels, epochs=3, batch_size=50)
    reference = MLP(config, "step3", seed=3)
    expected = reference.fit(scaler.transform(raw), labels, epochs=3, batch_size=50)
    assert_weights_close(model.get_weights(), reference.get_weights(), rtol, 1e-6 if dtype == "float32" else 1e-13)
    assert [r.train_acc for r in records] == [r.train_acc for r in expected]
    np.testing.assert_allclose([r.loss for r in records], [r.loss for r in expected], rtol=rtol)


def test_row_threads_do_not_change_the_arithmetic(small_chunks):
    """The shares are summed in a fixed order: threaded, timed (one thread) and repeated runs agree bit for bit."""
    x, labels = tiny_data(n=200)
    config = MLPConfig(layer_sizes=TINY, learning_rate=0.01, momentum=0.3)
    results = []
    with _row_threads_or_skip():
        for phase_timing in (False, True, False):
            model = MLP(config, "optimized", seed=3)
            model.fit(x, labels, epochs=2, batch_size=60, phase_timing=phase_timing)
            results.append(model.get_weights())
    assert_weights_close(results[1], results[0], 0.0, what="phase-timed")
    assert_weights_close(results[2], results[0], 0.0, what="second threaded run")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onehot_logloss_is_the_logloss_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    a = rng.random((500, 10)).astype(dtype)
    a[:5] = [0.0, 1.0, 1e-9, 1 - 1e-9, 0.5, 0.3, 0.7, 1e-30, 1.0, 0.0]  # saturated outputs are clipped alike
    y = np.zeros_like(a)
    y[np.arange(500), rng.integers(0, 10, 500)] = 1
    assert logloss_onehot(a, y) == logloss(a, y)

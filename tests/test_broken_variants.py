"""The test-only broken variants (tests/broken_variants.py) break what training runs: after one batch
their weights leave the reference trajectory (step3's) exactly where their bug is, while `optimized`,
trained the same way, stays on it. These are the exactness checks that catch the bugs the parity
gate's accuracy cannot see (tests/test_parity.py)."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from numpy_mlp import MLP, VARIANTS, InputScaler, MLPConfig

TINY = (6, 5, 4, 3)
KERNELS = {"kernel 0", "kernel 1", "kernel 2"}
BIASES = {"bias 0", "bias 1", "bias 2"}


@pytest.fixture(scope="module")
def registered():
    """The broken variants in numpy_mlp.VARIANTS for this module only: tests that iterate VARIANTS
    (the ladder's shared trajectory) must never meet them."""
    from tests.broken_variants import BROKEN_VARIANTS

    VARIANTS.update(BROKEN_VARIANTS)
    yield
    for name in BROKEN_VARIANTS:
        VARIANTS.pop(name)


def differing_parameters(variant: str) -> set[str]:
    """Names of the parameters that differ from step3's after one batch of 50 raw rows (float64,
    L2 on, the input scaling folded into layer 0 since 50 >= 3 x 5 rows, 2 shares of 4 chunks)."""
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, size=(50, TINY[0]), dtype=np.uint8)
    labels = rng.integers(0, TINY[-1], size=50)
    config = MLPConfig(layer_sizes=TINY, dtype="float64", learning_rate=0.01, momentum=0.3, l2=0.2)
    scaler = InputScaler.fit(raw, dtype="float64")
    with threadpool_limits(2, user_api="blas"):
        model = MLP(config, variant, seed=3, scaler=scaler)
        model.fit(raw, labels, epochs=1, batch_size=50)
    reference = MLP(config, "step3", seed=3)
    reference.fit(scaler.transform(raw), labels, epochs=1, batch_size=50)
    differ = set()
    for n, ((k, b), (k_ref, b_ref)) in enumerate(zip(model.get_weights(), reference.get_weights())):
        for name, actual, expected in ((f"kernel {n}", k, k_ref), (f"bias {n}", b, b_ref)):
            if not np.allclose(actual, expected, rtol=1e-10, atol=1e-13):
                differ.add(name)
    return differ


@pytest.mark.parametrize("variant, wrong", [
    ("optimized", set()),  # the control: on the reference trajectory
    ("broken-sign", {"kernel 1"}),  # only the flipped gradient's kernel
    ("broken-bias-l2", BIASES),  # only the biases, which must not be regularized
    ("broken-mean", KERNELS | BIASES),  # every data gradient is 50 times too small
])
def test_one_batch_leaves_the_reference_trajectory_where_the_bug_is(registered, small_chunks, variant, wrong):
    assert differing_parameters(variant) == wrong

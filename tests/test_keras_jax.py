"""keras_baseline on Keras' JAX backend: the same model as on TensorFlow, checked against numpy_mlp.

Keras takes its backend once per process, and this pytest process runs TensorFlow, so every JAX
check runs in a child process: this file run as a script (``python tests/test_keras_jax.py JOB.json``)
trains the JAX side on arrays the test hands it and writes what it got to an .npz; the test computes
numpy_mlp's side and compares here, with test_keras_baseline's helper (shape, dtype, then values).

What is checked, and against what:
- float64: one training step (loss, every gradient, every updated weight; two steps, so that the
  momentum counts) through the loop's functions against numpy_mlp's optimized variant, rtol 1e-9,
  for the reference configuration and two others; one step of 'fit' and 'fit-tuned' (an epoch of one
  batch, twice): each update of every weight, rtol 1e-9; 'loop' over two epochs on 3,000 real MNIST
  samples in numpy_mlp's batch order (a smaller last batch included) against optimized's weights,
  rtol 1e-9, for one jitted call per epoch and per batch, and 'fit' and 'fit-tuned' over three epochs
  fed that order;
- float32: the same, at rtol 1e-4 for a step and TensorFlow's tolerance for the epochs;
- the article's learning rates in the optimizer's own variable after 35 epochs;
- CPU only, one XLA thread when asked for one, no compilation cache, read back in a fresh process;
- through the harness at --threads 1: every framework held to one core (CPU time <= wall time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_mlp import MLP, MLPConfig, init_weights, lr_schedule, shuffle_rng
from train_step import train_step_details

ROOT = Path(__file__).resolve().parents[1]

ARTICLE_RATES_AFTER_35_EPOCHS = {500: 0.0009994051838157095, 20000: 9.994051838157101e-05}
STEP_CONFIGS = {  # as in test_keras_baseline
    "reference": {},
    "tanh-softmax-l1": dict(hidden_activation="tanh", output_activation="softmax", l1=0.01, momentum=0.5),
    "relu-mse": dict(hidden_activation="relu", loss="mse"),
}
STEP_SEED, STEP_SAMPLES = 7, 64
TRAJECTORY_SEED = 3
TRAJECTORY_CASES = {  # name: (variant, settings, samples, batch size, epochs)
    "loop": ("loop", None, 3000, 128, 2),  # 23 batches of 128 in one scanned call, then one of 56
    "loop one call per batch": ("loop", dict(steps_per_execution=1), 3000, 128, 2),
    "fit": ("fit", None, 2000, 100, 3),
    "fit-tuned": ("fit-tuned", None, 2000, 100, 3),
}


# -- the child: the JAX side ------------------------------------------------------------------------

def child(job_path: str) -> None:
    """Run one job in this process on Keras' JAX backend; write its arrays to job['out']."""
    job = json.loads(Path(job_path).read_text())
    import keras_baseline
    from keras_baseline.runtime import cpu_affinity

    info = keras_baseline.configure_jax(job["threads"] or cpu_affinity() or 1, job["dtype"])
    data = np.load(job["data"])
    out = {"info": np.array(json.dumps(info))}
    for task in job["tasks"]:
        out.update(globals()[f"_child_{task['kind']}"](keras_baseline, data, job["dtype"], **task["args"]))
    np.savez(job["out"], **out)


def _child_step(kb, data, dtype, name):
    config = MLPConfig(dtype=dtype, **STEP_CONFIGS[name])
    x, labels = data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES]
    model = kb.KerasMLP(config, "loop", seed=STEP_SEED)
    model.set_weights(init_weights(config, STEP_SEED))
    out = {}
    for step in (1, 2):
        got = train_step_details(model, x, labels, config.lr_for(500))
        out[f"step:{name}:{step}:loss"] = np.array(got["loss"])
        for n, ((gk, gb), (k, b)) in enumerate(zip(got["gradients"], got["weights"])):
            out.update({f"step:{name}:{step}:dkernel{n}": gk, f"step:{name}:{step}:dbias{n}": gb,
                        f"step:{name}:{step}:kernel{n}": k, f"step:{name}:{step}:bias{n}": b})
    return out


def _child_fit_step(kb, data, dtype, variant):
    config = MLPConfig(dtype=dtype)
    x, labels = data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES]
    model = kb.KerasMLP(config, variant, seed=STEP_SEED)
    model.set_weights(init_weights(config, STEP_SEED))
    out = {}

    def keep(record):
        for n, (k, b) in enumerate(model.get_weights()):
            out.update({f"fit_step:{variant}:{record.epoch}:kernel{n}": k,
                        f"fit_step:{variant}:{record.epoch}:bias{n}": b})
        out[f"fit_step:{variant}:{record.epoch}:loss"] = np.array(record.loss)

    model.fit(x, labels, 2, STEP_SAMPLES, callback=keep)  # one batch per epoch: one step each
    return out


def _child_trajectory(kb, data, dtype, case):
    variant, settings, n, batch_size, epochs = TRAJECTORY_CASES[case]
    config = MLPConfig(dtype=dtype)
    x, labels = data["x"][:n], data["labels"][:n]
    model = kb.KerasMLP(config, variant, seed=TRAJECTORY_SEED,
                        settings=kb.RunSettings(**settings) if settings else None)
    model.set_weights(init_weights(config, TRAJECTORY_SEED))
    out = {}

    def keep(record):
        for n_layer, (k, b) in enumerate(model.get_weights()):
            out.update({f"trajectory:{case}:{record.epoch}:kernel{n_layer}": k,
                        f"trajectory:{case}:{record.epoch}:bias{n_layer}": b})
        out[f"trajectory:{case}:{record.epoch}:record"] = np.array(
            [record.loss, record.train_acc, record.test_acc, record.test_loss, record.lr, record.wall_s, record.eval_s])

    model.fit(x, labels, epochs, batch_size, validation_data=(data["x_test"], data["labels_test"]),
              batch_order_rng=shuffle_rng(TRAJECTORY_SEED), callback=keep)
    loss, acc = model.evaluate(data["x_test"], data["labels_test"])
    out[f"trajectory:{case}:evaluate"] = np.array([loss, acc])
    out[f"trajectory:{case}:predict"] = model.predict(data["x_test"])
    return out


def _child_rates(kb, data, dtype, variant):
    # a tiny network on a few samples: only the schedule matters here, 35 epochs of one batch each
    config = MLPConfig(layer_sizes=(4, 3, 10), dtype=dtype)
    rng = np.random.default_rng(0)
    out = {}
    for batch_size in ARTICLE_RATES_AFTER_35_EPOCHS:
        x = rng.standard_normal((batch_size, 4)).astype(dtype)
        model = kb.KerasMLP(config, variant, seed=0)
        in_variable = []
        records = model.fit(x, rng.integers(0, 10, batch_size), 35, batch_size,
                            callback=lambda r: in_variable.append(np.asarray(model.optimizer.learning_rate.value)))
        out[f"rates:{variant}:{batch_size}:variable"] = np.array(in_variable)
        out[f"rates:{variant}:{batch_size}:records"] = np.array([r.lr for r in records])
    return out


# -- the parent: run a child, compare with numpy_mlp ------------------------------------------------

def run_child(tmp_path: Path, dtype: str, tasks: list[dict], threads=None, data: dict | None = None) -> dict:
    """Arrays the JAX side computed for ``tasks`` (see the _child_* functions)."""
    data_path, job_path, out = tmp_path / "data.npz", tmp_path / "job.json", tmp_path / "out.npz"
    np.savez(data_path, **(data or {}))
    job_path.write_text(json.dumps({"dtype": dtype, "threads": threads, "tasks": tasks, "data": str(data_path),
                                    "out": str(out)}))
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "JAX_PLATFORMS", "XLA_FLAGS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, str(job_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as arrays:
        return {k: arrays[k] for k in arrays.files}


def mnist_arrays(mnist, dtype, n=3000):
    """The first n training and 1,000 test images of the real MNIST, standardized as the harness does."""
    from numpy_mlp import InputScaler

    x_raw, y, x_test_raw, y_test = mnist
    scaler = InputScaler.fit(x_raw[:n], dtype=dtype)
    return {"x": scaler.transform(x_raw[:n]), "labels": y[:n].astype(np.int64),
            "x_test": scaler.transform(x_test_raw[:1000]), "labels_test": y_test[:1000].astype(np.int64)}


def max_relative(got, expected, floor):
    """max |got - expected| / (|expected| + floor * max|expected|): what the tolerances bound."""
    return float(np.max(np.abs(got - expected) / (np.abs(expected) + floor * np.abs(expected).max())))


@pytest.fixture(scope="module")
def helpers():
    from test_keras_baseline import STEP_FLOOR, STEP_RTOL, TRAJECTORY_TOL, assert_close, numpy_step

    return dict(assert_close=assert_close, numpy_step=numpy_step, rtol=STEP_RTOL, floor=STEP_FLOOR,
                trajectory_tol=TRAJECTORY_TOL)


@pytest.fixture(scope="module", params=["float64", pytest.param("float32", marks=pytest.mark.slow)])
def jax_steps(request, mnist, tmp_path_factory):
    """One child per dtype: the loop's steps for every STEP_CONFIG, one step of each fit variant
    (float64, the exact standard, in the fast suite; each child takes 5-15 s, mostly JAX's start)."""
    dtype = request.param
    data = mnist_arrays(mnist, dtype)
    tasks = [{"kind": "step", "args": {"name": name}} for name in STEP_CONFIGS]
    tasks += [{"kind": "fit_step", "args": {"variant": v}} for v in ("fit", "fit-tuned")]
    return dtype, data, run_child(tmp_path_factory.mktemp(f"jax-steps-{dtype}"), dtype, tasks, data=data)


@pytest.mark.parametrize("name", list(STEP_CONFIGS))
def test_one_step_equals_numpy_mlp(jax_steps, helpers, name):
    dtype, data, got = jax_steps
    config = MLPConfig(dtype=dtype, **STEP_CONFIGS[name])
    x, labels = data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES]
    expected = helpers["numpy_step"](config, init_weights(config, STEP_SEED), x, labels, config.lr_for(500))
    assert_close, rtol, floor = helpers["assert_close"], helpers["rtol"][dtype], helpers["floor"][dtype]
    worst = 0.0
    for step, (loss, grads, weights) in enumerate(expected, start=1):
        key = f"step:{name}:{step}"
        assert_close(f"{key} loss", got[f"{key}:loss"], np.array(loss), rtol)
        for n, ((ek, eb), (wk, wb)) in enumerate(zip(grads, weights)):
            for what, e in ((f"dkernel{n}", ek), (f"dbias{n}", eb), (f"kernel{n}", wk), (f"bias{n}", wb)):
                assert_close(f"{key} {what}", got[f"{key}:{what}"], e, rtol, floor * np.abs(e).max())
                worst = max(worst, max_relative(got[f"{key}:{what}"], e, floor))
    print(f"{dtype} {name}: max relative difference {worst:.2e}")


@pytest.mark.parametrize("variant", ["fit", "fit-tuned"])
def test_one_fit_step_equals_numpy_mlp(jax_steps, helpers, variant):
    # an epoch of one batch is one step of Keras' own train_step; numpy_mlp takes the same step
    dtype, data, got = jax_steps
    config = MLPConfig(dtype=dtype)
    x, labels = data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES]
    initial = init_weights(config, STEP_SEED)
    reference = MLP(config, "optimized", seed=STEP_SEED)
    reference.set_weights(initial)
    expected = [initial]
    records = reference.fit(x, labels, 2, STEP_SAMPLES, callback=lambda r: expected.append(reference.get_weights()))
    n_layers = len(initial)
    weights = [initial] + [[(got[f"fit_step:{variant}:{e}:kernel{n}"], got[f"fit_step:{variant}:{e}:bias{n}"])
                            for n in range(n_layers)] for e in (1, 2)]
    assert_close, rtol, floor = helpers["assert_close"], helpers["rtol"][dtype], helpers["floor"][dtype]
    worst = 0.0
    for epoch, record in enumerate(records, start=1):
        key = f"fit_step:{variant}:{epoch}"
        assert_close(f"{key} loss", got[f"{key}:loss"], np.array(record.loss), rtol)
        for n in range(n_layers):
            for i, what in enumerate(("kernel", "bias")):
                # float64: the update itself (lr g + momentum x the previous one), not only the weights it
                # changed; in float32 the difference of two weights has only a few significant bits left
                got_value, expected_value = weights[epoch][n][i], expected[epoch][n][i]
                if dtype == "float64":
                    what = f"update of {what}"
                    got_value = weights[epoch - 1][n][i] - got_value
                    expected_value = expected[epoch - 1][n][i] - expected_value
                assert_close(f"{key} {what} {n}", got_value, expected_value, rtol, floor * np.abs(expected_value).max())
                worst = max(worst, max_relative(got_value, expected_value, floor))
    print(f"{dtype} {variant}: max relative difference {worst:.2e}")


@pytest.fixture(scope="module", params=["float64", "float32"])
def jax_trajectories(request, mnist, tmp_path_factory):
    dtype = request.param
    data = mnist_arrays(mnist, dtype)
    tasks = [{"kind": "trajectory", "args": {"case": case}} for case in TRAJECTORY_CASES]
    tasks += [{"kind": "rates", "args": {"variant": v}} for v in ("fit", "loop")]
    return dtype, data, run_child(tmp_path_factory.mktemp(f"jax-trajectories-{dtype}"), dtype, tasks, data=data)


# float64: the per-step differences (~1e-15 relative) through two epochs of updates stay ~1e-12 of
# the weights (observed); 1e-9 is the standard of the single step. float32: as for TensorFlow.
TRAJECTORY_RTOL64 = 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TRAJECTORY_CASES))
def test_epochs_follow_numpy_mlp(jax_trajectories, helpers, case):
    dtype, data, got = jax_trajectories
    variant, _, n, batch_size, epochs = TRAJECTORY_CASES[case]
    config = MLPConfig(dtype=dtype)
    x, labels = data["x"][:n], data["labels"][:n]
    reference = MLP(config, "optimized", seed=TRAJECTORY_SEED)
    reference.set_weights(init_weights(config, TRAJECTORY_SEED))
    ref_weights = []
    ref_records = reference.fit(x, labels, epochs, batch_size, validation_data=(data["x_test"], data["labels_test"]),
                                callback=lambda r: ref_weights.append(reference.get_weights()))
    assert_close = helpers["assert_close"]
    if dtype == "float64":
        tol = lambda e: dict(rtol=TRAJECTORY_RTOL64, atol=helpers["floor"][dtype] * np.abs(e).max())  # noqa: E731
    else:
        tol = lambda e: helpers["trajectory_tol"]  # noqa: E731
    worst = 0.0
    for epoch, (ref, ref_record) in enumerate(zip(ref_weights, ref_records), start=1):
        key = f"trajectory:{case}:{epoch}"
        for n_layer, (rk, rb) in enumerate(ref):
            for what, e in ((f"kernel{n_layer}", rk), (f"bias{n_layer}", rb)):
                assert_close(f"{case}: epoch {epoch} {what}", got[f"{key}:{what}"], e, **tol(e))
                worst = max(worst, max_relative(got[f"{key}:{what}"], e, helpers["floor"][dtype]))
        loss, train_acc, test_acc, test_loss, lr, wall_s, eval_s = got[f"{key}:record"]
        assert lr == ref_record.lr
        if n % batch_size == 0:  # else Keras weights the last batch's loss by its size, numpy_mlp does not
            assert loss == pytest.approx(ref_record.loss, rel=1e-4)
        assert train_acc == pytest.approx(ref_record.train_acc, abs=1.5 / n)
        assert test_acc == pytest.approx(ref_record.test_acc, abs=1.5 / len(data["x_test"]))
        assert test_loss == pytest.approx(ref_record.test_loss, rel=1e-4)
        assert wall_s > 0 and eval_s > 0
    assert tuple(got[f"trajectory:{case}:evaluate"]) == pytest.approx((test_loss, test_acc))
    outputs = got[f"trajectory:{case}:predict"]
    assert outputs.dtype == np.dtype(dtype)
    assert_close(f"{case}: predict", outputs, reference.predict(data["x_test"]), **tol(outputs))
    print(f"{dtype} {case}: max relative difference of the weights {worst:.2e}")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fit", "loop"])
def test_optimizer_holds_the_article_rates(jax_trajectories, variant):
    dtype, _, got = jax_trajectories
    config = MLPConfig(layer_sizes=(4, 3, 10), dtype=dtype)
    for batch_size, printed in ARTICLE_RATES_AFTER_35_EPOCHS.items():
        expected = lr_schedule(config.lr_for(batch_size), config.lr_decay, 35)
        records = got[f"rates:{variant}:{batch_size}:records"].tolist()
        assert records == expected and records[-1] == printed
        in_variable = got[f"rates:{variant}:{batch_size}:variable"]
        assert in_variable.dtype == np.dtype(dtype)
        assert in_variable.tolist() == [np.dtype(dtype).type(r) for r in expected]


# -- the study --------------------------------------------------------------------------------------

def test_jax_is_a_peer_in_the_presets_and_the_listing():
    from harness.__main__ import build_parser, plan_from_args
    from keras_baseline import BACKEND_VARIANTS
    from reports.folder.schema import FRAMEWORKS

    assert set(FRAMEWORKS) - {"numpy"} == set(BACKEND_VARIANTS)  # each peer runs on the Keras backend of its name
    every = {"fit", "fit-tuned", "loop"}
    for preset, wanted in (("article", every), ("sweep", every), ("quick", {"loop"})):
        runs = plan_from_args(build_parser().parse_args(["run", "--preset", preset])).runs()
        assert wanted <= {r.variant for r in runs if r.framework == "jax"}, preset
    listing = subprocess.run([sys.executable, "-m", "harness", "list"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    assert listing.returncode == 0
    for name in ("jax/fit ", "jax/fit-tuned", "jax/loop", "jax "):
        assert name in listing.stdout


def test_execution_settings_on_jax():
    import keras_baseline

    for batch_size in (32, 500, 20000):
        assert keras_baseline.settings_for("fit", batch_size, "jax") == keras_baseline.RunSettings()  # Keras' defaults
        loop = keras_baseline.settings_for("loop", batch_size, "jax")
        assert loop.steps_per_execution == "epoch" and loop.jit_compile is True and loop.max_threads is None
    with pytest.raises(ValueError, match="backend"):
        keras_baseline.settings_for("loop", 500, "mxnet")


# -- runtime ----------------------------------------------------------------------------------------

RUNTIME_SCRIPT = r"""
import json, os, sys
import keras_baseline
from harness.worker import pin_cores
errors = []
if {"keras", "jax", "tensorflow"} & set(sys.modules):
    errors.append("import keras_baseline started Keras, JAX or TensorFlow")
for bad in (0, -1, 1.5, True, "2"):
    try:
        keras_baseline.configure_jax(bad)
        errors.append(f"threads={bad!r} accepted")
    except ValueError:
        pass
try:
    keras_baseline.configure_jax(1, "float16")
    errors.append("dtype float16 accepted")
except ValueError:
    pass
if len(os.sched_getaffinity(0)) > 1:
    try:
        keras_baseline.configure_jax(1)
        errors.append("one thread accepted on more cores")
    except RuntimeError:
        pass
pin_cores(1)
info = keras_baseline.configure_jax(1)
from numpy_mlp import MLPConfig
model = keras_baseline.KerasMLP(MLPConfig(layer_sizes=(4, 3, 10)), "loop", seed=0)
import numpy as np
model.fit(np.ones((20, 4), np.float32), np.arange(20) % 10, 1, 10)  # XLA's pools are up now
after = keras_baseline.jax_runtime_info()
try:
    keras_baseline.KerasMLP(MLPConfig(layer_sizes=(4, 3, 10), dtype="float64"), "loop")
    errors.append("float64 model accepted without JAX's 64-bit mode")
except ValueError:
    pass
try:
    keras_baseline.configure_jax(2)
    errors.append("thread count changed after JAX started")
except RuntimeError:
    pass
try:
    keras_baseline.configure_tensorflow(1)
    errors.append("backend switched from jax to tensorflow")
except RuntimeError:
    pass
print(json.dumps({"info": info, "after": after, "errors": errors, "tensorflow": "tensorflow" in sys.modules,
                  "backend": model.backend}))
"""


@pytest.mark.slow
def test_cpu_only_one_thread_and_no_cache_in_a_fresh_process():
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "KERAS_BACKEND", "JAX_PLATFORMS",
                                                              "XLA_FLAGS")}
    done = subprocess.run([sys.executable, "-c", RUNTIME_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["backend"] == "jax" and not result["tensorflow"], "the JAX run started TensorFlow"
    for state in (result["info"], result["after"]):
        assert state["backend"] == "jax" and state["platforms"] == ["cpu"]
        assert state["cpu_affinity"] == 1
        assert "--xla_cpu_multi_thread_eigen=false" in state["xla_flags"].split()
        assert state["x64"] is False
        assert state["compilation_cache"] is False and state["compilation_cache_dir"] is None
        assert state["jax_version"] and state["keras_version"]
    assert result["after"]["xla_threads"] == 1


@pytest.mark.slow
def test_threads_hold_every_framework_to_its_cores(tmp_path, mnist):
    from conftest import mnist_dir

    import pandas as pd

    out = tmp_path / "study"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--variants", "optimized", "loop", "--batch-sizes", "500",
         "--train-limit", "5000", "--epochs", "3", "--repeats", "1", "--phase-epochs", "0", "--threads", "1",
         "--out", str(out), "--no-report"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, MNIST_DIR=str(mnist_dir())),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from reports.folder.schema import available_frameworks

    runs = pd.read_csv(out / "runs.csv").set_index("framework")
    assert sorted(runs.index) == sorted(available_frameworks()), "every framework installed has a 'loop' or 'optimized'"
    assert (runs["status"] == "ok").all(), runs["error"]
    assert runs["cpu_affinity"].eq(1).all()
    # one core: at most one second of CPU per second of wall time (plus the clocks' granularity)
    assert (runs["cpu_s"] <= runs["wall_s"] * 1.02 + 0.01).all(), runs[["cpu_s", "wall_s"]]
    assert runs["cpu_per_wall"].le(1.02 + 0.01 / runs["wall_s"]).all()
    assert runs.loc["jax", "xla_threads"] == 1 and runs.loc["jax", "backend"] == "jax"
    assert runs.loc["tensorflow", "tf_intra_threads"] == 1 and runs.loc["tensorflow", "backend"] == "tensorflow"
    assert pd.isna(runs.loc["numpy", "backend"]) and runs.loc["numpy", "blas_threads"] == 1
    if "torch" in runs.index:
        assert runs.loc["torch", "torch_intra_threads"] == 1 and runs.loc["torch", "torch_inter_threads"] == 1
    assert runs["test_acc"].between(0.25, 1).all()


if __name__ == "__main__":
    child(sys.argv[1])

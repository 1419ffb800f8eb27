"""The torch framework (PyTorch: Keras 3 on its PyTorch backend, and PyTorch's own loop), checked
against numpy_mlp, and PyTorch as an optional install.

Keras takes its backend once per process and this pytest process runs TensorFlow, so the PyTorch side
runs in a child process: this file run as a script (``python tests/test_torch.py JOB.json``) trains
on arrays the test hands it and writes what it got to an .npz; the test computes numpy_mlp's side and
compares here, with test_keras_baseline's helper and tolerances (shape, dtype, then values).

What is checked, and against what:
- float64: one training step (loss, every gradient, every updated weight; two steps, so that the
  momentum counts) of PyTorch's loop against numpy_mlp, rtol 1e-9, for the reference configuration and
  two others, and of Keras on PyTorch for the reference; one step of 'fit' and 'fit-tuned' (an epoch of
  one batch, twice); 'loop' and 'loop-compiled' over two epochs on 3,000 real MNIST samples in their
  own batch order (numpy_mlp's: a smaller last batch included) and 'fit', 'fit-tuned' fed that order,
  against optimized's weights after every epoch, rtol 1e-9;
- float32: the loop's steps at rtol 1e-4;
- through the harness at --threads 1: PyTorch's threads read back as 1 and one core busy;
- without PyTorch: the default study leaves it out, asking for it stops with one line (exit 2), and
  ``harness list`` says how to add it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_mlp import MLP, MLPConfig, init_weights
from train_step import train_step_details

ROOT = Path(__file__).resolve().parents[1]
STEP_CONFIGS = {  # as in test_keras_baseline
    "reference": {},
    "tanh-softmax-l1": dict(hidden_activation="tanh", output_activation="softmax", l1=0.01, momentum=0.5),
    "relu-mse": dict(hidden_activation="relu", loss="mse"),
}
STEP_SEED, STEP_SAMPLES = 7, 64
TRAJECTORY_SEED, TRAJECTORY_SAMPLES, TRAJECTORY_BATCH, TRAJECTORY_EPOCHS = 3, 3000, 128, 2  # 23 batches + one of 56
TRAJECTORY_VARIANTS = ("loop", "loop-compiled", "fit", "fit-tuned")
TRAJECTORY_RTOL64 = 1e-9  # as for JAX: the single step's standard, held over two epochs


def _torch_available() -> bool:
    from keras_baseline import torch_available

    return torch_available()


needs_torch = pytest.mark.skipif(not _torch_available(),
                                 reason="PyTorch is optional and not installed: pip install -r requirements-torch.txt")


# -- the child: the PyTorch side --------------------------------------------------------------------

def child(job_path: str) -> None:
    """Run one job in this process on PyTorch; write its arrays to job['out']."""
    job = json.loads(Path(job_path).read_text())
    import keras_baseline

    keras_baseline.configure_backend("torch", 1, job["dtype"])
    data = np.load(job["data"])
    out = {}
    for task in job["tasks"]:
        out.update(globals()[f"_child_{task['kind']}"](keras_baseline, data, job["dtype"], **task["args"]))
    np.savez(job["out"], **out)


def _child_step(kb, data, dtype, name, variant):
    config = MLPConfig(dtype=dtype, **STEP_CONFIGS[name])
    model = kb.make_model("torch", config, variant, STEP_SEED)
    out = {}
    for step in (1, 2):
        x, labels = data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES]
        got = train_step_details(model, x, labels, config.lr_for(500))
        key = f"step:{variant}:{name}:{step}"
        out[f"{key}:loss"] = np.array(got["loss"])
        for n, ((gk, gb), (k, b)) in enumerate(zip(got["gradients"], got["weights"])):
            out.update({f"{key}:dkernel{n}": gk, f"{key}:dbias{n}": gb, f"{key}:kernel{n}": k, f"{key}:bias{n}": b})
    return out


def _keep_weights(model, prefix: str, out: dict):
    """A fit callback storing the model's weights after each epoch as out["<prefix>:<epoch>:kernel<n>"] (and bias)."""
    def keep(record):
        for n, (k, b) in enumerate(model.get_weights()):
            out.update({f"{prefix}:{record.epoch}:kernel{n}": k, f"{prefix}:{record.epoch}:bias{n}": b})
    return keep


def _child_fit_step(kb, data, dtype, variant):
    config = MLPConfig(dtype=dtype)
    model = kb.make_model("torch", config, variant, STEP_SEED)
    out = {}
    keep = _keep_weights(model, f"fit_step:{variant}", out)
    model.fit(data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES], 2, STEP_SAMPLES, callback=keep)
    return out


def _child_trajectory(kb, data, dtype, variant):
    from numpy_mlp import shuffle_rng

    config = MLPConfig(dtype=dtype)
    model = kb.make_model("torch", config, variant, TRAJECTORY_SEED)
    out = {}
    keep_weights = _keep_weights(model, f"trajectory:{variant}", out)

    def keep(record):
        keep_weights(record)
        out[f"trajectory:{variant}:{record.epoch}:record"] = np.array(
            [record.loss, record.train_acc, record.test_acc, record.test_loss, record.lr])

    # the loops take their own batch order, which must be numpy_mlp's; Keras' fit is fed it
    order = {} if variant.startswith("loop") else {"batch_order_rng": shuffle_rng(TRAJECTORY_SEED)}
    x, labels = data["x"][:TRAJECTORY_SAMPLES], data["labels"][:TRAJECTORY_SAMPLES]
    model.fit(x, labels, TRAJECTORY_EPOCHS, TRAJECTORY_BATCH, validation_data=(data["x_test"], data["labels_test"]),
              callback=keep, **order)
    return out


def _child_refusals(kb, data, dtype):
    """What Keras on PyTorch refuses: its loop (the framework's loops are PyTorch's own)."""
    refused = []
    try:
        kb.KerasMLP(MLPConfig(dtype=dtype), "loop")
    except ValueError as exc:
        refused.append(str(exc))
    return {"refusals": np.array(refused)}


def run_child(tmp_path: Path, dtype: str, tasks: list[dict], data: dict) -> dict:
    """Arrays the PyTorch side computed for ``tasks`` (see the _child_* functions)."""
    data_path, job_path, out = tmp_path / "data.npz", tmp_path / "job.json", tmp_path / "out.npz"
    np.savez(data_path, **data)
    job_path.write_text(json.dumps({"dtype": dtype, "tasks": tasks, "data": str(data_path), "out": str(out)}))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, str(job_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as arrays:
        return {k: arrays[k] for k in arrays.files}


# -- the parent: compare with numpy_mlp -------------------------------------------------------------

@pytest.fixture(scope="module")
def helpers():
    from test_keras_baseline import STEP_FLOOR, STEP_RTOL, assert_close, numpy_step
    from test_keras_jax import mnist_arrays

    return dict(assert_close=assert_close, numpy_step=numpy_step, rtol=STEP_RTOL, floor=STEP_FLOOR,
                mnist_arrays=mnist_arrays)


STEP_CASES = [(name, "loop") for name in STEP_CONFIGS] + [("reference", "fit")]


def torch_side(dtype, mnist, helpers, tmp_path_factory):
    """One child: the steps of STEP_CASES; in float64 also one step of each fit variant, the
    trajectories and the refusals."""
    data = helpers["mnist_arrays"](mnist, dtype, n=TRAJECTORY_SAMPLES)
    tasks = [{"kind": "step", "args": {"name": name, "variant": variant}} for name, variant in STEP_CASES]
    if dtype == "float64":
        tasks += [{"kind": "fit_step", "args": {"variant": v}} for v in ("fit", "fit-tuned")]
        tasks += [{"kind": "trajectory", "args": {"variant": v}} for v in TRAJECTORY_VARIANTS]
        tasks += [{"kind": "refusals", "args": {}}]
    return dtype, data, run_child(tmp_path_factory.mktemp(f"torch-{dtype}"), dtype, tasks, data)


@pytest.fixture(scope="module")
def torch64(mnist, helpers, tmp_path_factory):
    return torch_side("float64", mnist, helpers, tmp_path_factory)


@pytest.fixture(scope="module")
def torch32(mnist, helpers, tmp_path_factory):
    return torch_side("float32", mnist, helpers, tmp_path_factory)


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,variant", STEP_CASES)
def test_one_step_equals_numpy_mlp(request, helpers, name, variant, dtype):
    _, data, got = request.getfixturevalue(f"torch{dtype[-2:]}")
    config = MLPConfig(dtype=dtype, **STEP_CONFIGS[name])
    x, labels = data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES]
    expected = helpers["numpy_step"](config, init_weights(config, STEP_SEED), x, labels, config.lr_for(500))
    assert_close, rtol, floor = helpers["assert_close"], helpers["rtol"][dtype], helpers["floor"][dtype]
    for step, (loss, grads, weights) in enumerate(expected, start=1):
        key = f"step:{variant}:{name}:{step}"
        assert_close(f"{key} loss", got[f"{key}:loss"], np.array(loss), rtol)
        for n, ((ek, eb), (wk, wb)) in enumerate(zip(grads, weights)):
            for what, e in ((f"dkernel{n}", ek), (f"dbias{n}", eb), (f"kernel{n}", wk), (f"bias{n}", wb)):
                assert_close(f"{key} {what}", got[f"{key}:{what}"], e, rtol, floor * np.abs(e).max())


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fit", "fit-tuned"])
def test_one_fit_step_equals_numpy_mlp(torch64, helpers, variant):
    # an epoch of one batch is one step of Keras' own train_step (torch.compile'd in fit-tuned at this
    # batch size); numpy_mlp takes the same step
    dtype, data, got = torch64
    config = MLPConfig(dtype=dtype)
    reference = MLP(config, "optimized", seed=STEP_SEED)
    expected = [reference.get_weights()]
    reference.fit(data["x"][:STEP_SAMPLES], data["labels"][:STEP_SAMPLES], 2, STEP_SAMPLES,
                  callback=lambda r: expected.append(reference.get_weights()))
    floor = helpers["floor"][dtype]
    for epoch in (1, 2):
        for n, (ek, eb) in enumerate(expected[epoch]):
            for what, e in ((f"kernel{n}", ek), (f"bias{n}", eb)):
                # the update itself (lr g + momentum x the previous one), not only the weights it changed
                before = expected[epoch - 1][n][0 if what.startswith("kernel") else 1]
                previous = got[f"fit_step:{variant}:{epoch - 1}:{what}"] if epoch > 1 else before
                update, expected_update = previous - got[f"fit_step:{variant}:{epoch}:{what}"], before - e
                helpers["assert_close"](f"{variant} step {epoch} update of {what}", update, expected_update,
                                        helpers["rtol"][dtype], floor * np.abs(expected_update).max())


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("variant", TRAJECTORY_VARIANTS)
def test_epochs_follow_numpy_mlp(torch64, helpers, variant):
    dtype, data, got = torch64
    config = MLPConfig(dtype=dtype)
    x, labels = data["x"][:TRAJECTORY_SAMPLES], data["labels"][:TRAJECTORY_SAMPLES]
    reference = MLP(config, "optimized", seed=TRAJECTORY_SEED)
    ref_weights = []
    ref_records = reference.fit(x, labels, TRAJECTORY_EPOCHS, TRAJECTORY_BATCH,
                                validation_data=(data["x_test"], data["labels_test"]),
                                callback=lambda r: ref_weights.append(reference.get_weights()))
    floor = helpers["floor"][dtype]
    for epoch, (ref, ref_record) in enumerate(zip(ref_weights, ref_records), start=1):
        key = f"trajectory:{variant}:{epoch}"
        for n, (rk, rb) in enumerate(ref):
            for what, e in ((f"kernel{n}", rk), (f"bias{n}", rb)):
                helpers["assert_close"](f"{variant}: epoch {epoch} {what}", got[f"{key}:{what}"], e,
                                        TRAJECTORY_RTOL64, floor * np.abs(e).max())
        loss, train_acc, test_acc, test_loss, lr = got[f"{key}:record"]
        assert lr == ref_record.lr
        assert train_acc == pytest.approx(ref_record.train_acc, abs=1.5 / len(x))
        assert test_acc == pytest.approx(ref_record.test_acc, abs=1.5 / len(data["x_test"]))
        assert test_loss == pytest.approx(ref_record.test_loss, rel=1e-9)


@needs_torch
@pytest.mark.slow
def test_keras_on_pytorch_leaves_the_loops_to_pytorch(torch64):
    _, _, got = torch64
    assert len(got["refusals"]) == 1 and "TorchMLP" in str(got["refusals"][0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(variant="fit"), "unknown TorchMLP variant 'fit'; choose one of loop, loop-compiled"),
    (dict(seed=-1), "seed must be a non-negative integer, got -1"),
    (dict(config={"dtype": "float64"}), "config must be a numpy_mlp.MLPConfig, got dict"),
])
def test_pytorch_loop_refuses_bad_arguments_before_starting_pytorch(kwargs, message):
    from keras_baseline import TorchMLP

    with pytest.raises(ValueError) as caught:
        TorchMLP(**kwargs)
    assert str(caught.value) == message


def test_execution_settings_on_torch():
    import keras_baseline

    for batch_size in (32, 500, 20000):
        for variant in keras_baseline.TORCH_VARIANTS:
            # Keras on PyTorch takes one batch per call; 'fit-tuned' compiles where that measured faster
            settings = keras_baseline.settings_for(variant, batch_size, "torch")
            jit = (batch_size == 32) if variant == "fit-tuned" else "auto"  # 'auto': Keras' default, eager on PyTorch
            assert settings == keras_baseline.RunSettings(jit_compile=jit), (variant, batch_size)
    with pytest.raises(ValueError, match="loop-compiled"):
        keras_baseline.settings_for("loop-compiled", 500, "tensorflow")


# -- in the study -----------------------------------------------------------------------------------

@needs_torch
@pytest.mark.slow
def test_one_thread_holds_pytorch_to_one_core(tmp_path, mnist):
    from conftest import mnist_dir

    import pandas as pd

    out = tmp_path / "study"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--frameworks", "torch", "--variants", "loop", "fit",
         "--batch-sizes", "500", "--train-limit", "5000", "--epochs", "3", "--repeats", "1", "--phase-epochs", "0",
         "--threads", "1", "--out", str(out), "--no-report"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, MNIST_DIR=str(mnist_dir())),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = pd.read_csv(out / "runs.csv").set_index("variant")
    assert sorted(runs.index) == ["fit", "loop"] and (runs["status"] == "ok").all(), runs["error"]
    assert runs["torch_intra_threads"].eq(1).all() and runs["torch_inter_threads"].eq(1).all()
    assert runs["backend"].eq("torch").all() and runs["cpu_affinity"].eq(1).all()
    # one core: at most one second of CPU per second of wall time (plus the clocks' granularity)
    assert (runs["cpu_s"] <= runs["wall_s"] * 1.02 + 0.01).all(), runs[["cpu_s", "wall_s"]]
    assert runs["test_acc"].between(0.25, 1).all()


@pytest.fixture
def without_torch(monkeypatch):
    """This process as if PyTorch were not installed."""
    from reports.folder import schema

    monkeypatch.setitem(schema.OPTIONAL_FRAMEWORKS, "torch", (lambda: False, schema.OPTIONAL_FRAMEWORKS["torch"][1]))


def test_the_default_study_takes_pytorch_only_where_installed(without_torch, monkeypatch):
    from harness.__main__ import build_parser, plan_from_args
    from reports.folder.schema import available_frameworks

    assert "torch" not in available_frameworks()
    for preset in ("answer", "article", "quick", "sweep"):
        plan = plan_from_args(build_parser().parse_args(["run", "--preset", preset]))
        assert "torch" not in plan.frameworks and {"numpy", "tensorflow", "jax"} <= set(plan.frameworks), preset
        assert not any("torch" in extra.variants for extra in plan.extras), preset
    monkeypatch.undo()
    if _torch_available():  # installed: in the default study, its loop in the grid and Keras' fit beside it
        plan = plan_from_args(build_parser().parse_args(["run"]))
        assert plan.variants["torch"] == ("loop",)
        assert any(extra.variants.get("torch") == ("fit",) for extra in plan.extras)


@pytest.mark.parametrize("command", [["run", "--frameworks", "torch"], ["parity", "--frameworks", "torch"],
                                     ["run", "--frameworks", "numpy", "torch", "--variants", "optimized", "loop"]])
def test_asking_for_pytorch_without_it_stops_with_one_line(without_torch, capsys, tmp_path, command):
    from harness.__main__ import main

    assert main([*command, "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: framework 'torch' is not installed here; add it with: pip install -r requirements-torch.txt"]
    assert not (tmp_path / "never").exists()


def test_the_listing_says_whether_pytorch_is_installed_and_how_to_add_it(without_torch, capsys, monkeypatch):
    from harness.__main__ import main

    assert main(["list"]) == 0
    torch_line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["torch"])
    assert "not installed here; add it with: pip install -r requirements-torch.txt" in torch_line
    monkeypatch.undo()
    if _torch_available():
        assert main(["list"]) == 0
        out = capsys.readouterr().out
        assert "[optional: installed here]" in out and "torch/loop-compiled" in out


if __name__ == "__main__":
    child(sys.argv[1])

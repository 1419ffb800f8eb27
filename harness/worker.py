"""One run in a fresh process: ``python -m harness.worker SPEC.json RESULT.json``.

Thread settings must be in the environment before NumPy (and its BLAS) or TensorFlow is imported,
which is why this module imports nothing heavy at the top. Progress goes to stdout as one JSON line
per epoch; the result (the run's row and its epoch rows) is written atomically at the end.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()

import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
PARENT_VARIABLE = "MLP_STUDY_PARENT_PID"  # set by the process that starts the run (harness.study.execute)


def set_thread_environment(threads: int) -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def die_with_parent() -> None:
    """On Linux, end this run when the process that started it dies (a cluster worker killed in the middle
    of a run, a killed study), so that an orphaned run never competes for the cores with the runs after it."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if str(os.getppid()) != os.environ.get(PARENT_VARIABLE, str(os.getppid())):  # it died before the line above
        sys.exit(1)


def peak_rss_mb() -> float:
    """Peak resident set of this process (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(spec: dict, data_path: str) -> dict:
    set_thread_environment(spec["threads"])
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from numpy_mlp import InputScaler, MLPConfig, TrainingDiverged, init_weights

    from .plan import load_plugins

    load_plugins()
    threadpool_limits(spec["threads"])
    config = MLPConfig.from_dict({**spec["config"], "layer_sizes": tuple(spec["config"]["layer_sizes"])})
    data = np.load(data_path)
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    scaler = InputScaler(data["scaler_shift"], data["scaler_scale"]).astype(config.dtype)
    weights = init_weights(config, spec["seed"])
    in_effect = {"blas_threads": max((p["num_threads"] for p in threadpool_info()), default=None)}

    if spec["framework"] == "numpy":
        from numpy_mlp import MLP

        model = MLP(config, spec["variant"], seed=spec["seed"], scaler=scaler)
        threads = model.threads_for(spec["batch_size"])  # the variant's own choice
        in_effect.update(blas_threads=threads.blas, row_threads=threads.rows)
        x_fit, x_eval = x_train, x_test  # raw: the model scales (see numpy_mlp.scaling)
    else:
        from keras_baseline import KerasMLP, configure_tensorflow, settings_for

        max_threads = settings_for(spec["variant"], spec["batch_size"]).max_threads  # the variant's own choice
        tf_info = configure_tensorflow(min(spec["threads"], max_threads or spec["threads"]))
        in_effect.update(tf_intra_threads=tf_info["intra_op_threads"], tf_inter_threads=tf_info["inter_op_threads"])
        model = KerasMLP(config, spec["variant"], seed=spec["seed"])
        model.set_weights(weights)
        x_fit, x_eval = scaler.transform(x_train), scaler.transform(x_test)
    setup_s = time.perf_counter() - STARTED

    def progress(record) -> None:
        print(json.dumps({"epoch": record.epoch, "wall_s": record.wall_s, "loss": record.loss}), flush=True)

    status, error, records = "ok", "", []
    try:
        model.fit(
            x_fit,
            y_train,
            spec["epochs"],
            spec["batch_size"],
            validation_data=(x_eval, y_test) if spec["eval_every_epoch"] else None,
            callback=lambda r: (records.append(r), progress(r)),
            **({"phase_timing": True} if spec["instrumented"] else {}),
        )
    except TrainingDiverged as exc:
        status, error = "diverged", str(exc)

    row = {"status": status, "error": error, "setup_s": setup_s, **in_effect}
    if records:
        walls = [r.wall_s for r in records]
        row.update(
            wall_s=sum(walls),
            cpu_s=sum(r.cpu_s for r in records),
            first_epoch_wall_s=walls[0],
            steady_epoch_wall_s=float(np.median(walls[1:])) if len(walls) > 1 else None,
            final_loss=records[-1].loss,
        )
    if status == "ok":
        row["train_acc"] = model.evaluate(x_fit, y_train)[1]
        row["test_acc"] = model.evaluate(x_eval, y_test)[1]
        if spec["gemm_floor"]:
            from .gemm_floor import gemm_floor_seconds

            # in the dtype the variant computes in: float64 for the article's 'original'
            floor_config = dataclasses.replace(config, dtype=str(model.impl.dtype))
            row["gemm_floor_s"] = gemm_floor_seconds(
                floor_config, spec["batch_size"], len(x_train), spec["epochs"], threads=spec["threads"]
            )
    row["peak_rss_mb"] = peak_rss_mb()
    epochs = []
    for r in records:
        epoch = {k: v for k, v in r.to_dict().items() if k != "phases"}
        for phase, seconds in (r.phases or {}).items():
            epoch[f"phase_{phase}_s"] = seconds
        epochs.append(epoch)
    return {"run": row, "epochs": epochs}


def main(argv: list[str]) -> int:
    die_with_parent()
    spec_path, result_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        result = run(spec, spec["data_path"])
    except Exception as exc:  # reported as a failed run; the parent goes on with the study
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        result = {"run": {"status": "failed", "error": message, "peak_rss_mb": peak_rss_mb()}, "epochs": []}
    # temp file then rename: the parent never reads half a result (and this avoids importing pandas)
    with open(f"{result_path}.tmp", "w") as f:
        json.dump(result, f)
    os.replace(f"{result_path}.tmp", result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

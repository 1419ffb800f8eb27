"""One run in a fresh process: ``python -m harness.worker SPEC.json RESULT.json``.

Thread settings must be in effect before NumPy (and its BLAS), TensorFlow, JAX or PyTorch start, and Keras'
backend must be chosen before Keras is imported, which is why this module imports nothing heavy at
the top. With fewer threads than cores the process is held to that many cores (CPU affinity), for
every framework alike: XLA has no thread-count option, and it makes CPU time <= threads x wall time
hold for every run. Progress goes to stdout as one JSON line per epoch; the result (the run's row
and its epoch rows) is written atomically at the end.
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


def pin_cores(threads: int) -> None:
    """Hold this process to the first ``threads`` of the cores it may run on, when it may run on
    more; threads started afterwards inherit it (Linux; elsewhere nothing happens). It reads the cores
    itself: it runs before NumPy may be imported, which every package of the study imports."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return
    if threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])


def peak_rss_mb() -> float:
    """Peak resident set of this process (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(spec: dict, data_path: str) -> dict:
    pin_cores(spec["threads"])  # before any library starts a thread
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(spec["threads"])))
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from numpy_mlp import MLP, InputScaler, MLPConfig, TrainingDiverged, init_weights

    from keras_baseline.runtime import cpu_affinity, xla_threads

    from reports.folder.schema import load_plugins

    load_plugins()
    threadpool_limits(spec["threads"])
    config = MLPConfig.from_dict({**spec["config"], "layer_sizes": tuple(spec["config"]["layer_sizes"])})
    data = np.load(data_path)
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    scaler = InputScaler(data["scaler_shift"], data["scaler_scale"]).astype(config.dtype)
    weights = init_weights(config, spec["seed"])
    in_effect = {"blas_threads": max((p["num_threads"] for p in threadpool_info()), default=None)}

    if spec["framework"] == "numpy":
        model = MLP(config, spec["variant"], seed=spec["seed"], scaler=scaler)
        threads = model.threads_for(spec["batch_size"])  # the variant's own choice
        in_effect.update(blas_threads=threads.blas, row_threads=threads.rows)
        x_fit, x_eval = x_train, x_test  # raw: the model scales (see numpy_mlp.scaling)
    else:  # a peer: the same Keras model on the backend the framework is named after, or PyTorch's own loop
        from keras_baseline import configure_backend, make_model, settings_for

        backend = spec["framework"]
        max_threads = settings_for(spec["variant"], spec["batch_size"], backend).max_threads  # the variant's own choice
        threads = min(spec["threads"], max_threads or spec["threads"])
        if backend == "jax":
            pin_cores(threads)  # XLA's pools, started below, take one thread per core allowed
        info = configure_backend(backend, threads, config.dtype)
        in_effect["backend"] = info["backend"]
        if backend == "tensorflow":
            in_effect.update(tf_intra_threads=info["intra_op_threads"], tf_inter_threads=info["inter_op_threads"])
        elif backend == "torch":
            in_effect.update(torch_intra_threads=info["intra_op_threads"], torch_inter_threads=info["inter_op_threads"])
        model = make_model(backend, config, spec["variant"], spec["seed"])
        model.set_weights(weights)
        x_fit, x_eval = scaler.transform(x_train), scaler.transform(x_test)
    setup_s = time.perf_counter() - STARTED

    def progress(record) -> None:
        print(json.dumps({"epoch": record.epoch, "wall_s": record.wall_s, "loss": record.loss}), flush=True)

    status, error, records = "ok", "", []
    try:
        model.fit(x_fit, y_train, spec["epochs"], spec["batch_size"],
                  validation_data=(x_eval, y_test) if spec["eval_every_epoch"] else None,
                  callback=lambda r: (records.append(r), progress(r)),
                  **({"phase_timing": True} if spec["instrumented"] else {}))
    except TrainingDiverged as exc:
        status, error = "diverged", str(exc)

    row = {"status": status, "error": error, "setup_s": setup_s, **in_effect, "cpu_affinity": cpu_affinity()}
    if in_effect.get("backend") == "jax":
        row["xla_threads"] = xla_threads()  # the pool XLA started, read back after training
    if records:
        walls = [r.wall_s for r in records]
        row.update(
            wall_s=sum(walls),
            cpu_s=sum(r.cpu_s for r in records),
            first_epoch_wall_s=walls[0],
            steady_epoch_wall_s=float(np.median(walls[1:])) if len(walls) > 1 else None,
            final_loss=records[-1].loss,
        )
        row["cpu_per_wall"] = row["cpu_s"] / row["wall_s"]  # <= threads when the threads were held
    if status == "ok":
        row["train_acc"] = model.evaluate(x_fit, y_train)[1]
        row["test_acc"] = model.evaluate(x_eval, y_test)[1]
        if spec["gemm_floor"]:
            from .gemm_floor import gemm_floor_seconds

            # in the dtype the variant computes in: float64 for the article's 'original'
            floor_config = dataclasses.replace(config, dtype=str(model.impl.dtype))
            row["gemm_floor_s"] = gemm_floor_seconds(floor_config, spec["batch_size"], len(x_train), spec["epochs"],
                                                     threads=spec["threads"])
    row["peak_rss_mb"] = peak_rss_mb()
    epochs = [{**{k: v for k, v in r.to_dict().items() if k != "phases"},
               **{f"phase_{phase}_s": seconds for phase, seconds in (r.phases or {}).items()}} for r in records]
    return {"run": row, "epochs": epochs}


def die_with_parent(parent_pid: int) -> None:
    """End this worker when the study that started it ends, however it ends (kill -9 included): an
    orphaned worker would go on computing beside the next study. On Linux the kernel sends SIGKILL
    when the parent dies (PR_SET_PDEATHSIG); elsewhere a thread checks the parent every second."""
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0:
            if os.getppid() != parent_pid:  # the study died before the request took effect
                os._exit(1)
            return
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    die_with_parent(spec["parent_pid"])
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

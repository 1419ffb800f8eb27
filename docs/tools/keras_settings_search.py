"""The search behind the 'fit-tuned' and 'loop' settings: time Keras' execution options on this machine.
A development tool beside the package (docs/tuning.md); run it from anywhere as a script:

    python docs/tools/keras_settings_search.py --mnist ../shared/data/mnist --threads 2 --batch-sizes 500 20000
    python docs/tools/keras_settings_search.py --backend jax --threads 2 --batch-sizes 500 20000
    python docs/tools/keras_settings_search.py --backend torch --variants fit-tuned --threads 1 --batch-sizes 32 500

Every candidate trains the reference configuration from the same initial weights on the full MNIST
training set; reported are the first epoch (tracing/compilation included), the median of the other
epochs and the 35-epoch estimate first + 34 * median. The process is held to --threads cores, as
the harness holds its workers. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: numpy_mlp, keras_baseline, harness


def candidates(variant: str, batch_size: int, n: int, full: bool = True, backend: str = "tensorflow"):
    """The settings tried: steps_per_execution x XLA (steps 100 only when ``full``). JAX's loop is always
    jitted: only its batches per call vary. On PyTorch Keras takes one batch per call: only torch.compile
    (jit_compile) varies. Feeding fit from a tf.data pipeline of our own lost (docs/tuning.md) and is gone."""
    from keras_baseline.model import RunSettings

    if backend == "torch":
        yield from (RunSettings(jit_compile=False), RunSettings(jit_compile=True))
        return
    n_batches = -(-n // batch_size)
    if variant == "loop":
        for per_call in (1, "epoch"):
            for jit in (False, True) if backend == "tensorflow" else (True,):
                yield RunSettings(steps_per_execution=per_call, jit_compile=jit)
        return
    spes = sorted({min(s, n_batches) for s in ((1, 10, 50, 100) if full else (1, 10, 50))} - {n_batches}) + ["epoch"]
    for spe in spes:
        for jit in (False, True):
            yield RunSettings(steps_per_execution=spe, jit_compile=jit)


def time_one(variant, settings, x, labels, epochs, batch_size, seed=0):
    """(per-epoch wall times, per-epoch CPU times, final training accuracy) of one training run."""
    from keras_baseline.model import KerasMLP
    from numpy_mlp import MLPConfig

    model = KerasMLP(MLPConfig(), "fit-tuned" if variant != "loop" else "loop", seed=seed, settings=settings)
    records = model.fit(x, labels, epochs, batch_size)
    return [r.wall_s for r in records], [r.cpu_s for r in records], records[-1].train_acc


def medians(runs):
    """Median over the repeats of: first epoch, median of the later epochs (wall and CPU)."""
    med = statistics.median
    first = med(w[0] for w, _, _ in runs)
    steady = med(med(w[1:]) for w, _, _ in runs)
    steady_cpu = med(med(c[1:]) for _, c, _ in runs)
    return first, steady, steady_cpu, first + 34 * steady, runs[-1][2]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="keras_settings_search.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=None, help="MNIST folder (default: harness.mnist.load_mnist's search)")
    parser.add_argument("--threads", type=int, default=2, help="cores the process is held to (default: 2)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per training run (default: 6)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all candidates (interleaved)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 20000], help="default: 500 20000")
    parser.add_argument("--short", action="store_true", help="skip steps_per_execution=100")
    parser.add_argument("--variants", nargs="+", default=["fit-tuned", "loop"], choices=["fit-tuned", "loop"])
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax", "torch"],
                        help="Keras' backend")
    args = parser.parse_args(argv)
    if args.backend == "torch" and "loop" in args.variants:
        parser.error("the torch framework's loops are PyTorch's own, with no Keras settings; use --variants fit-tuned")

    from keras_baseline.runtime import configure_backend
    from numpy_mlp import InputScaler

    from harness.mnist import MnistError, load_mnist
    from harness.worker import pin_cores

    pin_cores(args.threads)
    try:
        x_raw, labels, _, _ = load_mnist(args.mnist)
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    info = configure_backend(args.backend, args.threads)
    x = InputScaler.fit(x_raw).transform(x_raw)
    labels = labels.astype("int64")
    if args.backend == "jax":
        engine = f"JAX {info['jax_version']}, Keras {info['keras_version']}, {info['cpu_affinity']} core(s)"
    elif args.backend == "torch":
        engine = f"PyTorch {info['torch_version']}, threads {info['intra_op_threads']}/{info['inter_op_threads']}"
    else:
        engine = (f"TF {info['tensorflow_version']}, Keras {info['keras_version']}, "
                  f"threads {info['intra_op_threads']}, oneDNN {info['onednn_enabled']}")
    print(f"# {engine}, {args.epochs} epochs x {args.repeats} interleaved repeats, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; times in s, medians over repeats")
    print(f"{'variant':10} {'batch':>6} {'steps/exec':>10} {'jit':>5} "
          f"{'first':>7} {'epoch':>7} {'cpu/ep':>7} {'35-ep':>7} {'acc':>6}")
    for batch_size in args.batch_sizes:
        grid = [(v, s) for v in args.variants
                for s in candidates(v, batch_size, len(x), full=not args.short, backend=args.backend)]
        runs = {i: [] for i in range(len(grid))}
        for _ in range(args.repeats):
            for i, (variant, settings) in enumerate(grid):
                runs[i].append(time_one(variant, settings, x, labels, args.epochs, batch_size))
        for i, (variant, settings) in enumerate(grid):
            first, steady, steady_cpu, total, acc = medians(runs[i])
            print(f"{variant:10} {batch_size:6d} {settings.steps_per_execution!s:>10} {settings.jit_compile!s:>5} "
                  f"{first:7.3f} {steady:7.3f} {steady_cpu:7.3f} {total:7.2f} {acc:6.4f}",
                  flush=True)


if __name__ == "__main__":
    main()

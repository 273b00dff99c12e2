"""Encoder speed and training speed of the model presets on this machine.

Measures, per preset, in one run: encoder windows/second (z_mean of a batch of random
windows, after a warm-up) and training steps/second (fit on random windows with
silence targets, batch size from the preset unless --batch-size is given).

    python scripts/bench_model.py                     # default and seed-v4
    python scripts/bench_model.py --presets tiny default --steps 20
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from discovery.nn import build_vae, get_preset  # noqa: E402


def bench(name: str, *, windows: int, steps: int, batch_size: int, repeats: int) -> dict:
    config = get_preset(name)
    model = build_vae(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    shape = (config.input_frames, config.input_features)
    rng = np.random.default_rng(0)
    x = rng.random((windows,) + shape, dtype=np.float32)
    model.embed(x[:batch_size], batch_size=batch_size)  # build and trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.embed(x, batch_size=256)
        times.append(time.perf_counter() - start)
    encode = windows / float(np.median(times))

    batch = batch_size or config.training.batch_size
    train_x = rng.random((batch * steps,) + shape + (1,), dtype=np.float32)
    train_y = (rng.random((batch * steps, 1)) < 0.5).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((train_x, train_y)).batch(batch).cache()
    model.fit(data.take(2), epochs=1, verbose=0)  # trace the train step
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    train = steps / float(np.median(times))
    return {"preset": name, "params": model.count_params(),
            "encoder_params": model.encoder.count_params(), "input": shape,
            "encode_windows_per_s": encode, "train_steps_per_s": train,
            "train_windows_per_s": train * batch, "batch": batch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["default", "seed-v4"])
    parser.add_argument("--windows", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    devices = [d.device_type for d in tf.config.list_logical_devices()]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: {devices}, "
          f"CPU cores: {os.cpu_count()}")
    print(f"{'preset':10s} {'input':>10s} {'params':>10s} {'encoder':>9s} "
          f"{'encode win/s':>13s} {'train step/s':>13s} {'train win/s':>12s}")
    for name in args.presets:
        r = bench(name, windows=args.windows, steps=args.steps,
                  batch_size=args.batch_size, repeats=args.repeats)
        print(f"{r['preset']:10s} {str(r['input']):>10s} {r['params']:10,d} "
              f"{r['encoder_params']:9,d} {r['encode_windows_per_s']:13.0f} "
              f"{r['train_steps_per_s']:13.2f} {r['train_windows_per_s']:12.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

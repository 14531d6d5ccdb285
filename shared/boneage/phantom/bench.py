"""Time ``render_sample`` per image: ``python -m boneage.phantom.bench [--sizes 256 512] [--n 200]``.

Prints one JSON object per size with wall and CPU (process) milliseconds per image (median and
90th percentile) and the host's load average, since shared CPUs inflate wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from boneage.phantom.render import render_sample


def bench(size: int, n: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    render_sample(rng, size=size)  # fonts, noise bank
    wall, cpu = [], []
    for _ in range(n):
        w, c = time.perf_counter(), time.process_time()
        render_sample(rng, size=size)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000.0, 2)  # noqa: E731
    return {"size": size, "n": n, "wall_ms_median": ms(wall, 50), "wall_ms_p90": ms(wall, 90),
            "cpu_ms_median": ms(cpu, 50), "cpu_ms_p90": ms(cpu, 90), "load_avg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args(argv)
    for size in args.sizes:
        print(json.dumps(bench(size, args.n)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

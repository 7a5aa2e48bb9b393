"""Speed, memory and accuracy of the simulated registry.

Run: ``python benchmarks/bench_simulate.py [--sizes 10000 100000 1000000] [--seed 0]``

Each size runs in a fresh Python process, so the peak resident memory (``ru_maxrss``) is that of one
call; the figure printed beside it is the process's peak after importing cartrisk and its
dependencies, before simulating. Then, on n = 5,000, the Harrell C-index of the true log hazard
(the oracle) and of the D0-30 and three-level (D0-30 / D31-90 / >D90) rules. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = """
import json, resource, sys, time
from cartrisk.data.simulate import simulate
simulate(10, 0)  # warm the caches of the literature file
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
frame, truth = simulate(int(sys.argv[1]), int(sys.argv[2]))
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": wall, "peak_mib": peak / 1024, "import_mib": base / 1024,
                  "frame_mib": frame.memory_usage(deep=True).sum() / 2**20,
                  "truth_mib": truth.memory_usage(deep=True).sum() / 2**20}))
"""


def _run(n: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(seed)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _accuracy(seed: int) -> None:
    import numpy as np
    from sksurv.metrics import concordance_index_censored

    from cartrisk.data.literature import rule_constants
    from cartrisk.data.simulate import simulate

    frame, truth = simulate(5_000, seed)
    rules = rule_constants()
    event, time = frame["os2_event"].to_numpy().astype(bool), frame["os2_days"].to_numpy(dtype=float)
    days = frame["days_to_failure"].to_numpy()
    scores = {"oracle (true log hazard)": truth["true_log_hazard"].to_numpy(),
              "D0-30 rule": (days <= rules["d0_30_boundary_days"]).astype(float),
              "three-level D30/D90 rule": -np.searchsorted(
                  [rules["d0_30_boundary_days"], rules["d31_90_boundary_days"]], days, side="left").astype(float)}
    print(f"\nHarrell C on n = 5,000 (seed {seed}), events {event.mean():.1%}")
    for name, score in scores.items():
        print(f"  {name:<28} {concordance_index_censored(event, time, score)[0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'n':>10} {'wall s':>8} {'peak MiB':>9} {'after import MiB':>17} {'frame MiB':>10} {'truth MiB':>10}")
    for n in args.sizes:
        r = _run(n, args.seed)
        print(f"{n:>10,} {r['wall_s']:>8.2f} {r['peak_mib']:>9.0f} {r['import_mib']:>17.0f} {r['frame_mib']:>10.0f} "
              f"{r['truth_mib']:>10.0f}")
    _accuracy(args.seed)


if __name__ == "__main__":
    main()

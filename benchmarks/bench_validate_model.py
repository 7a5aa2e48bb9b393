"""How long ``cartrisk validate-model`` takes on 5,000 patients with 1,000 bootstrap resamples (target: under 60 s
on 2 cores).

Exports a Cox bundle trained on 3,000 simulated patients, simulates a validation cohort of 5,000, and times the
whole command as a user runs it (subprocess: imports, bundle verification, validation of the file, scoring, the
bootstrap of every metric, subgroups, figures and writing), then the bootstrap alone in-process.

    .venv/bin/python benchmarks/bench_validate_model.py [--n 5000] [--n-boot 1000]

The machine is shared by several engineers: figures vary with its load; the script prints the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()

    from cartrisk.bundle import export_bundle, load_bundle
    from cartrisk.data.schema import to_xy, validate
    from cartrisk.data.simulate import simulate
    from cartrisk.evaluation.external import external_validation
    from cartrisk.modelling import make_pipeline
    from cartrisk.units import months_to_days

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        typed = validate(simulate(3000, 1)[0]).raise_if_invalid()
        X, y = to_xy(typed)
        bundle = export_bundle(make_pipeline("infusion+relapse", "coxph").fit(X, y), root / "models", name="bench",
                               training_frame=typed)
        simulate(args.n, 2)[0].to_csv(root / "site.csv", index=False)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)")
        command = [sys.executable, "-m", "cartrisk", "validate-model", str(bundle), "--data", str(root / "site.csv"),
                   "--horizon", "6", "--thresholds", "0.2,0.4,0.6", "--n-boot", str(args.n_boot), "--out",
                   str(root / "out")]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        print(f"cartrisk validate-model, {args.n:,} patients, {args.n_boot:,} resamples (+200 per subgroup): "
              f"{wall:.1f} s wall")
        b = load_bundle(bundle)
        frame = validate(simulate(args.n, 2)[0]).raise_if_invalid()
        Xv, yv = to_xy(frame)
        Xt = b.pipeline.transform_features(Xv)
        final = b.pipeline.steps[-1][1]
        h = months_to_days(6)
        risk, pred = final.predict(Xt), 1 - final.predict_survival_at(Xt, [h])[:, 0]
        started = time.perf_counter()
        external_validation(yv, risk, pred, h, thresholds=(0.2, 0.4, 0.6), n_boot=args.n_boot)
        alone = time.perf_counter() - started
        print(f"bootstrap of the 14 metrics alone: {alone:.1f} s ({1000 * alone / max(args.n_boot, 1):.1f} ms per "
              f"resample)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"target: under 60 s -> {'met' if wall < 60 else 'MISSED'} ({wall:.1f} s)")


if __name__ == "__main__":
    main()

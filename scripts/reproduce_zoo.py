#!/usr/bin/env python3
"""Retrains one model of the zoo from scratch by its recipe and compares it with the shipped one.

    python3 scripts/reproduce_zoo.py pixelcnn [--genmodels target/release/genmodels]
                                               [--out runs/reproduce] [--zoo zoo]

It runs `genmodels compare --budget converged --retrain --only MODEL --out OUT` (the same
training as the zoo's: the registry's `converged` recipe, seed 0, the bundled digits, the last
1,000 training digits held out for validation), then prints, side by side, what the zoo's
`training.json` and `metrics.json` record and what the retraining measured: epochs, the best
epoch and its validation score, the test likelihoods, and the training time. A run killed
part-way continues where it stopped when started again with the same --out.

This is a script, not a test: it takes as long as the training (minutes for the VAE, about
half an hour for PixelCNN on 2 cores). Float results depend on the CPU's vector extensions,
so the same recipe on another machine may end a few epochs apart; the figures say by how much.
"""

import argparse
import json
import os
import subprocess
import sys


def read(path):
    with open(path) as f:
        return json.load(f)


def best_point(record):
    validation = record.get("validation") or {}
    best = record.get("best_epoch")
    for point in validation.get("points", []):
        if point["epoch"] == best:
            return validation.get("metric", "validation score"), point
    return None, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a zoo model (pixelcnn, vae, dcgan, ...)")
    parser.add_argument("--genmodels", default="target/release/genmodels")
    parser.add_argument("--out", default="runs/reproduce")
    parser.add_argument("--zoo", default="zoo")
    args = parser.parse_args()

    shipped_dir = os.path.join(args.zoo, args.model)
    shipped = read(os.path.join(shipped_dir, "training.json"))
    packed = read(os.path.join(shipped_dir, "metrics.json"))
    out = os.path.join(args.out, args.model)
    # --retrain starts afresh unless a recipe's checkpoint from an earlier sitting is there.
    retrain = [] if os.path.exists(os.path.join(out, "models", args.model, "checkpoint.json")) else ["--retrain"]
    command = [args.genmodels, "compare", "--budget", "converged", *retrain,
               "--only", args.model, "--out", out]
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    reproduced = read(os.path.join(out, "models", args.model, "training.json"))

    metric, shipped_best = best_point(shipped)
    _, reproduced_best = best_point(reproduced)
    rows = [
        ("epochs trained", shipped["epochs"], reproduced["epochs"]),
        ("best epoch", shipped.get("best_epoch"), reproduced.get("best_epoch")),
    ]
    if shipped_best and reproduced_best:
        rows.append((f"best {metric}", shipped_best["score"], reproduced_best["score"]))
    for a, b in zip(shipped["likelihoods"], reproduced["likelihoods"]):
        rows.append((f"test NLL ({a['kind']}), nats", a["nats"], b["nats"]))
    rows.append(("training seconds", shipped["train_seconds"], reproduced["train_seconds"]))
    print(f"\n{args.model}: the zoo's run against this retraining "
          f"(zoo weights ship at {packed['precision']})\n")
    print("| figure | zoo | retrained | difference |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        if isinstance(a, float) and isinstance(b, float):
            print(f"| {name} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
        else:
            print(f"| {name} | {a} | {b} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

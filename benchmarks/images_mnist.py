"""Images benchmark: HDM-SPDE vs white-noise DDPM (and IHDM) on MNIST, same network, steps and batch.

Two phases, so that training can run on a GPU machine and evaluation anywhere:

    # train each variant, sample 2000 images per variant, time training and sampling (prints JSON)
    python benchmarks/images_mnist.py train --out runs/mnist --steps 10000 --device cuda --parallel
    # Frechet distance / KID in the project's classifier features, spectrum error, sliced W, memorisation
    python benchmarks/images_mnist.py evaluate --out runs/mnist
    # speed only, any device: training images/s over a few steps, and 64 images x 100 ddim steps
    python benchmarks/images_mnist.py speed --device cpu --steps 10

Data: the MNIST t10k file in the shared data: the first 8,000 images train, the last 2,000 are held out
for evaluation only (``engine.data.images``). Every variant uses the same UNet, steps, batch, learning rate
and seed; only the forward equation (and hence the prior) differs. Sampling: ddim with 100 steps from each
variant's own prior (hdm for HDM-SPDE and DDPM, ihdm for IHDM). Timing figures: training images/s and the
time to sample 64 images with 100 steps, each measured on the device given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.device import configure_openmp  # noqa: E402

configure_openmp()  # before torch loads OpenMP: time what `hdm` and the studio run with
import torch  # noqa: E402

from engine import api  # noqa: E402
from engine.config import RunConfig  # noqa: E402

VARIANTS = {
    "hdm": {"name": "hdm_spde"},  # the reference's image setting: sigma = 1, gamma = 0
    "hdm_g05": {"name": "hdm_spde", "gamma": 0.5},
    "ddpm": {"name": "vp"},
    "ihdm": {"name": "ihdm"},
}


def config_for(variant: str, args: argparse.Namespace) -> RunConfig:
    v = dict(VARIANTS[variant])
    noise = {"gamma": v.pop("gamma")} if "gamma" in v else {}
    return RunConfig().replace(
        data={"spec": "mnist", "seed": 0}, equation=v, noise=noise,
        model={"name": "unet", "width": args.width},
        train={"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": 0,
               "checkpoint_every": min(1000, args.steps)})


def train_one(variant: str, args: argparse.Namespace) -> dict:
    out = Path(args.out) / variant
    started = time.perf_counter()
    trainer = api.train(config_for(variant, args), out, device=args.device)
    train_wall = time.perf_counter() - started
    model = api.load_model(out, device=args.device)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    model.sample(8, steps=5, batch_size=8)  # warm-up
    sync()
    t0 = time.perf_counter()
    model.sample(64, steps=100, sampler="ddim", batch_size=64)
    sync()
    t64 = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = model.sample(args.num_samples, steps=args.sample_steps, sampler=args.sampler, batch_size=500,
                          seed=10_000)
    sync()
    t_all = time.perf_counter() - t0
    api.write_sample_file(out / "samples.h5", result, model)
    return {"variant": variant, "equation": model.config.equation.name, "gamma": model.config.noise.gamma,
            "device": str(model.device), "gpu": torch.cuda.get_device_name() if model.device.type == "cuda" else "",
            "steps": trainer.step_count, "batch_size": args.batch_size, "train_seconds": round(trainer.elapsed, 1),
            "train_wall_seconds": round(train_wall, 1),
            "train_images_per_s": round(trainer.step_count * args.batch_size / trainer.elapsed, 1),
            "final_loss": round(float(np.mean(trainer.losses[-200:])), 5),
            "parameters": sum(p.numel() for p in model.network.parameters()),
            "sample64_100steps_s": round(t64, 3), f"sample{args.num_samples}_s": round(t_all, 2),
            "sampler": args.sampler, "sample_steps": args.sample_steps, "prior": result.settings.get("prior"),
            "torch": torch.__version__}


def cmd_train(args: argparse.Namespace) -> int:
    variants = args.variants.split(",")
    if args.parallel and len(variants) > 1:  # one process per variant: small UNets leave a GPU mostly idle
        procs = []
        for v in variants:
            cmd = [sys.executable, __file__, "train", "--variants", v, "--out", args.out, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--width", str(args.width),
                   "--device", args.device, "--num-samples", str(args.num_samples),
                   "--sample-steps", str(args.sample_steps), "--sampler", args.sampler]
            procs.append(subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}))
        return max(p.wait() for p in procs)
    for v in variants:
        report = train_one(v, args)
        print(json.dumps(report), flush=True)
        (Path(args.out) / v / "bench.json").write_text(json.dumps(report, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = []
    for v in args.variants.split(","):
        path = out / v / "samples.h5"
        if not path.is_file():
            print(f"{v}: no samples at {path}; skipped")
            continue
        report = api.evaluate(path, "mnist")
        bench = json.loads((out / v / "bench.json").read_text()) if (out / v / "bench.json").is_file() else {}
        rows.append({"variant": v, **{k: report[k] for k in report if not isinstance(report[k], dict | list)},
                     "bench": bench})
        print(json.dumps(rows[-1]), flush=True)
    (out / "evaluation.json").write_text(json.dumps(rows, indent=2))
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from engine.training import Trainer

    for v in args.variants.split(","):
        trainer = Trainer(config_for(v, args), device=args.device)
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        trainer.step()  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.step()
        sync()
        step = (time.perf_counter() - t0) / args.steps
        model = trainer.model()
        model.sample(4, steps=2)
        sync()
        t0 = time.perf_counter()
        model.sample(64, steps=100, sampler="ddim", batch_size=64)
        sync()
        print(json.dumps({"variant": v, "device": str(trainer.device), "threads": torch.get_num_threads(),
                          "batch_size": args.batch_size, "train_step_s": round(step, 3),
                          "train_images_per_s": round(args.batch_size / step, 1),
                          "sample64_100steps_s": round(time.perf_counter() - t0, 2)}), flush=True)
    return 0


def main() -> int:
    from engine.device import tune_cpu_allocator

    tune_cpu_allocator()  # time what `hdm` and the studio run with
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["train", "evaluate", "speed"])
    ap.add_argument("--out", default="runs/mnist")
    ap.add_argument("--variants", default="hdm,ddpm,ihdm")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-samples", type=int, default=2000)
    ap.add_argument("--sample-steps", type=int, default=100)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--parallel", action="store_true", help="train the variants in parallel processes")
    args = ap.parse_args()
    return {"train": cmd_train, "evaluate": cmd_evaluate, "speed": cmd_speed}[args.phase](args)


if __name__ == "__main__":
    sys.exit(main())

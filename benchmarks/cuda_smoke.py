"""CUDA smoke checks the GPU stages of benchmarks/gpu_check.sh do not make (a minute on an H100; no compiler).

    python benchmarks/cuda_smoke.py --device cuda    # on the GPU machine (gpu_check.sh's `smoke` stage)
    python benchmarks/cuda_smoke.py --device cpu     # anywhere: the same code paths, the device against the CPU

Each check prints one line, OK or FAIL; the exit status is the number of failures.

1. training steps on the device (pinned non-blocking copies, sub-grids) for FNO-1D, UNet and FNO-2D in fp32, tf32
   and bf16, under ``torch.cuda.set_sync_debug_mode("warn")``: a host synchronisation inside ``step_async`` fails;
2. the first steps' losses on the device against the same steps on the CPU (same seed, same draws);
3. every sampler on functions and images (hdm_spde, vp, the ihdm prior) on the device against the CPU (per-sample
   CPU generators, so the samples agree to float32 rounding);
4. restoration (replace and dps) of every task, functions and images, on the device;
5. TF32 switched off again after a tf32 step.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings

import numpy as np
import torch

FAILS: list[str] = []


def check(name, fn):
    t0 = time.perf_counter()
    try:
        note = fn()
        print(f"OK   {name} ({time.perf_counter() - t0:.1f} s){'' if note is None else ': ' + str(note)}", flush=True)
    except Exception as exc:  # noqa: BLE001
        FAILS.append(name)
        print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", flush=True)
        traceback.print_exc(limit=-3)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    dev = args.device
    cuda = dev.startswith("cuda")
    from engine.config import RunConfig
    from engine.restoration import run as restoration
    from engine.restoration.operators import tasks_for
    from engine.samplers import SAMPLERS
    from engine.training import Trainer

    fno = RunConfig().replace(data={"spec": "quadratic", "n_points": 64, "num": 200},
                              model={"width": 16, "modes": 8, "layers": 2, "emb_dim": 16},
                              train={"steps": 8, "batch_size": 32, "warmup": 2, "subgrid_prob": 0.5})
    unet = RunConfig().replace(data={"spec": "glyphs", "num": 64, "image_size": 16},
                               model={"name": "unet", "width": 8, "channel_mult": [1, 1], "num_res_blocks": 1,
                                      "attention_levels": [1], "emb_dim": 16},
                               train={"steps": 8, "batch_size": 8, "warmup": 2})
    fno2d = unet.replace(model={"name": "fno2d", "width": 8, "modes": 4, "layers": 1, "emb_dim": 16})
    nets = {"fno1d": fno, "unet": unet, "fno2d": fno2d}

    def train(cfg, precision):
        def run():
            cfg2 = cfg.replace(train={"precision": precision})
            t = Trainer(cfg2, device=dev)
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(cfg.train.steps):
                    t.step_async()
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
            syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
            if syncs:
                raise AssertionError(f"{len(syncs)} host synchronisations inside step_async: {syncs[:2]}")
            t.flush()
            if not np.isfinite(t.losses).all():
                raise AssertionError(f"non-finite loss {t.losses}")
            if precision == "tf32" and torch.get_float32_matmul_precision() != "highest":
                raise AssertionError("TF32 left on after the step")
            ref = Trainer(cfg2.replace(train={"precision": "fp32"}), device="cpu")
            ref.run()
            rel = float(np.max(np.abs(np.asarray(t.losses[:3]) - ref.losses[:3]) / np.abs(ref.losses[:3])))
            bound = {"fp32": 1e-4, "tf32": 1e-2, "bf16": 3e-2}[precision]
            if rel > bound:
                raise AssertionError(f"first losses differ from the CPU's by {rel:.2e} (> {bound})")
            return f"losses {np.round(t.losses[:3], 4).tolist()}, rel. diff to CPU {rel:.1e}"
        return run

    for name, cfg in nets.items():
        for precision in ("fp32", "tf32", "bf16") if cuda else ("fp32", "bf16"):
            check(f"train {name} {precision}", train(cfg, precision))

    models = {}

    def make_models(name, cfg):
        def run():
            t = Trainer(cfg.replace(train={"steps": 30}), device="cpu")
            t.run()
            models[name] = t.model()
        return run

    def make_all():
        for name, cfg in (("functions", fno), ("images", fno2d), ("images-vp", fno2d.replace(equation={"name": "vp"})),
                          ("images-ihdm", fno2d.replace(equation={"name": "ihdm"}))):
            make_models(name, cfg)()
        return ", ".join(models)

    check("train CPU models for sampling", make_all)
    import copy

    def sample(name, sampler, steps=30):
        def run():
            m_cpu = models[name]
            m_dev = copy.deepcopy(m_cpu).to(dev)
            kw = {"prior": "ihdm"} if name == "images-ihdm" else {}
            a = m_cpu.sample(4, steps=steps, sampler=sampler, seed=7, **kw).samples
            b = m_dev.sample(4, steps=steps, sampler=sampler, seed=7, **kw).samples
            diff = float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
            if not np.isfinite(b).all() or diff > 1e-3:
                raise AssertionError(f"device samples differ from the CPU's by {diff:.2e} (relative to max |x|)")
            return f"max rel. diff {diff:.1e}"
        return run

    for name in ("functions", "images", "images-vp", "images-ihdm"):
        for sampler in SAMPLERS:
            if name != "functions" and sampler in ("euler_maruyama", "ode_heun"):
                continue  # explicit steps: refused or needing thousands of steps on the heat equations
            check(f"sample {name} {sampler}", sample(name, sampler))

    def restore(name):
        def run():
            m = copy.deepcopy(models[name]).to(dev)
            items = m.sample(2, steps=10, sampler="ddim", seed=1).samples
            if m.modality == "images":  # pixels in [0, 1], as restoration takes them (a tiny model strays far)
                items = np.clip(items, 0.0, 1.0)
            out = []
            for task in tasks_for(m.modality):
                for method in ("replace", "dps"):
                    r = restoration.restore_items(m, items, task, method=method, num_restorations=2, steps=5)
                    if not np.isfinite(r.restored).all():
                        raise AssertionError(f"{task} {method}: non-finite restoration")
                    out.append(f"{task}/{method}")
            return ", ".join(out)
        return run

    check("restore functions", restore("functions"))
    check("restore images", restore("images"))
    print(f"{len(FAILS)} failed: {FAILS}")
    return len(FAILS)


if __name__ == "__main__":
    sys.exit(main())

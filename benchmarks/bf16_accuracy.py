"""How far bf16 autocast moves the DSM loss and gradient from float32 (figures, not assertions).

For each network (the reference FNO-1D on Quadratic, an FNO-2D and a UNet on glyphs), trains
``--warm-steps`` float32 steps (so that no layer is still at its zero initialisation), then
compares, on ``--batches`` fixed batches, the bf16 loss and gradient with the float32 ones
(:func:`engine.bench.bf16_agreement`): with the shipped float32 spectral layers and, for the
FNO-1D, with bf16 spectral layers; next to the float32 batch-to-batch gradient difference.

    python benchmarks/bf16_accuracy.py --device cuda --warm-steps 300 --json bf16_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.bench import bf16_agreement, environment  # noqa: E402
from engine.config import RunConfig  # noqa: E402
from engine.training import Trainer  # noqa: E402

CASES = {
    "fno1d_quadratic_w256": {"data": {"spec": "quadratic", "n_points": 100},
                             "model": {"width": 256, "modes": 16, "layers": 4}, "batch_size": 100},
    "fno2d_glyphs": {"data": {"spec": "glyphs", "num": 2000}, "model": {"name": "fno2d", "width": 32, "modes": 12},
                     "batch_size": 32},
    "unet_glyphs": {"data": {"spec": "glyphs", "num": 2000},
                    "model": {"name": "unet", "width": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 2,
                              "attention_levels": [2]}, "batch_size": 32},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--warm-steps", type=int, default=100, help="float32 training steps before measuring")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"warm_steps": args.warm_steps, "cases": {}}
    for name in filter(None, args.cases.split(",")):
        case = CASES[name]
        cfg = RunConfig().replace(data=case["data"], model=case["model"],
                                  train={"steps": 10 ** 6, "batch_size": case["batch_size"], "warmup": 10})
        trainer = Trainer(cfg, device=args.device)
        started = time.perf_counter()
        for _ in range(args.warm_steps):
            trainer.step_async()
        trainer.flush()
        row = {"final_loss": round(trainer.losses[-1], 5) if trainer.losses else None,
               "warm_seconds": round(time.perf_counter() - started, 1)}
        row.update(bf16_agreement(trainer, batches=args.batches))
        report["cases"][name] = row
        print(name, json.dumps(row), file=sys.stderr)
    report["environment"] = environment(trainer.device)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

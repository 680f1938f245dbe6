"""Startup latency: how long a user waits for ``hdm --help`` and for the studio's window (figures, not assertions).

Each figure is the median of ``--repeats`` fresh processes, measured from the moment the process is
spawned (wall clock), beside the baseline measured in the same run: a bare ``python -c "import torch"``.

- ``hdm_help_s``: ``hdm --help`` to its exit;
- ``studio_painted_s``: the studio (offscreen, the embedded default) to its window's first paint;
- ``studio_warm_s``: to the end of the engine warm-up that follows the first paint (what a training run
  started at once waits for).

    python benchmarks/startup.py
    python benchmarks/startup.py --repeats 5 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: the studio as `hdm-studio --offscreen` builds it, then the wall-clock
# times of the window's first paint and of the end of the engine warm-up, as JSON. A window without
# `engine_warm` (versions before 2026-12-07) warmed up before it was shown.
STUDIO_PROBE = r"""
import json, sys, time
try:
    from engine.device import configure_openmp  # as hdm-studio's main() does first
    configure_openmp()
except ImportError:  # before 2026-12-07
    pass
from PySide6.QtCore import QEvent, QObject
from studio.app import build_parser, create_window

class FirstPaint(QObject):
    at = None
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and FirstPaint.at is None:
            FirstPaint.at = time.time()
        return False

app, window = create_window(build_parser().parse_args(["--offscreen"]))
probe = FirstPaint()
window.installEventFilter(probe)
window.show()
deadline = time.time() + 120
while (FirstPaint.at is None or not getattr(window, "engine_warm", True)) and time.time() < deadline:
    app.processEvents()
    time.sleep(0.002)
warm = time.time()
print(json.dumps({"painted": FirstPaint.at, "warm": warm if getattr(window, "engine_warm", True) else None}))
window.close()
"""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.time()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return started, done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per figure (the median is reported)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    py = sys.executable
    hdm = [py, "-c", "import sys; from engine.cli import main; sys.exit(main(['--help']))"]
    runs: dict[str, list[float]] = {"import_torch_s": [], "hdm_help_s": [], "studio_painted_s": [],
                                    "studio_warm_s": []}
    for _ in range(args.repeats):
        started, _out = _timed([py, "-c", "import torch"], env)
        runs["import_torch_s"].append(time.time() - started)
        started, _out = _timed(hdm, env)
        runs["hdm_help_s"].append(time.time() - started)
        started, out = _timed([py, "-c", STUDIO_PROBE], env)
        stamps = json.loads(out.strip().splitlines()[-1])
        if stamps["painted"] is None or stamps["warm"] is None:
            raise SystemExit(f"the studio did not paint or warm up within 120 s: {stamps}")
        runs["studio_painted_s"].append(stamps["painted"] - started)
        runs["studio_warm_s"].append(stamps["warm"] - started)
    baseline = statistics.median(runs["import_torch_s"])
    report = {name: {"median_s": round(statistics.median(values), 3), "runs_s": [round(v, 3) for v in values],
                     "ratio_to_import_torch": round(statistics.median(values) / baseline, 2)}
              for name, values in runs.items()}
    report["cpu_count"] = os.cpu_count()
    report["python"] = sys.version.split()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

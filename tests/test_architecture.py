"""The engine never imports Qt (it must run headless, on GPU machines without PySide6); ``hdm --help`` needs no
torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qasync", "studio")


def test_engine_sources_import_no_gui_module():
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_every_engine_module_loads_no_qt():
    code = (
        "import importlib, pkgutil, sys, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hdm_help_lists_every_command_without_importing_torch():
    # `hdm --help` and usage errors answer at once; restore's and bench's options (torch registries) are
    # built only when those commands are named, and then completely.
    code = (
        "import contextlib, io, sys\n"
        "from engine.cli import build_parser, main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
        "print(all(name in out.getvalue() for name in ('train', 'sample', 'restore', 'bench', 'regenerate')))\n"
        "args = build_parser('restore').parse_args(['restore', '--task', 'impute', '--data', 'quadratic',\n"
        "                                            '--checkpoint', 'quadratic', '--out', 'r.h5'])\n"
        "print(args.task, args.func.__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["False", "True", "impute run_restore_command"]


def test_the_entry_points_shorten_openmp_spinning_before_torch_loads():
    # two trainings at once each ran 30x slower with OpenMP's default spin (benchmarks/cpu_contention.py)
    code = (
        "import os, sys\n"
        "from engine.cli import main\n"
        "from engine.device import configure_openmp\n"
        "main(['list'])\n"
        "print('spin', os.environ.get('GOMP_SPINCOUNT'), configure_openmp())\n"
    )
    keys = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "HDM_OPENMP_TUNING")

    def spin(**env: str) -> str:
        environ = {k: v for k, v in os.environ.items() if k not in keys}
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**environ, **env})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    assert spin() == "spin 1000 True"
    assert spin(GOMP_SPINCOUNT="50000") == "spin 50000 False"  # the user's settings stand
    assert spin(OMP_WAIT_POLICY="passive") == "spin None False"
    assert spin(HDM_OPENMP_TUNING="0") == "spin None False"
    # too late once torch is loaded: nothing is set that would not be in force
    late = ("import os, torch\nfrom engine.device import configure_openmp\n"
            "print(configure_openmp(), os.environ.get('GOMP_SPINCOUNT'))\n")
    environ = {k: v for k, v in os.environ.items() if k not in keys}
    proc = subprocess.run([sys.executable, "-c", late], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=environ)
    assert proc.stdout.split() == ["False", "None"], proc.stderr

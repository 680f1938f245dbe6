"""The engine never imports Qt (it must run headless, on GPU machines without PySide6); ``hdm --help`` needs no
torch."""

from __future__ import annotations

import ast
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

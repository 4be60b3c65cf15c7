"""The analytics core is a pure library: stdlib, numpy, scipy and numba (statsmodels' tables are
copied, so importing the core does not pull statsmodels and pandas)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pairflow.analytics

PACKAGE = Path(pairflow.analytics.__file__).resolve().parent
ALLOWED_ROOTS = {"numpy", "scipy", "pairflow", "numba"}
FORBIDDEN = ("bytewax", "confluent_kafka", "panel", "holoviews", "bokeh", "pandas", "statsmodels")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_only_allowed_imports():
    stdlib = sys.stdlib_module_names
    for path in PACKAGE.glob("*.py"):
        for mod in _imports(path):
            root = mod.split(".")[0]
            assert root in stdlib or root in ALLOWED_ROOTS, f"{path.name} imports {mod}"
            if root == "pairflow":
                assert mod in ("pairflow.errors",) or mod.startswith("pairflow.analytics"), mod


def test_import_pulls_no_wire_or_ui_library():
    code = (
        "import sys, pairflow.analytics as a; "
        "a.run_history(a.EstimatorSettings(window=10), [1.0 + i % 3 for i in range(20)], "
        "[2.0 + i % 5 for i in range(20)]); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


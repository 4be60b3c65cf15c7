"""The analytics core is a pure library: stdlib, numpy and scipy (statsmodels' tables are copied,
so importing the core does not pull statsmodels and pandas), numba optional."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pairflow.analytics

PACKAGE = Path(pairflow.analytics.__file__).resolve().parent
ALLOWED_ROOTS = {"numpy", "scipy", "pairflow", "numba"}  # numba optional: see below
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


def test_works_without_numba():
    """Without numba the numpy path is chosen and gives the same statistics."""
    code = (
        "import sys; sys.modules['numba'] = None; "
        "import pairflow.analytics as a, pairflow.analytics.pair as p; "
        "r = a.run_history(a.EstimatorSettings(window=12, price='raw'), "
        "[1.0 + (i * 7) % 5 + i for i in range(30)], [2.0 + (i * 3) % 4 + i for i in range(30)]); "
        "print(p.BACKEND, r[-1].adf_lags is not None, round(r[-1].beta, 9))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    backend, has_adf, beta = out.stdout.split()
    assert backend == "numpy" and has_adf == "True"
    from pairflow.analytics import EstimatorSettings, run_history

    ys = [1.0 + (i * 7) % 5 + i for i in range(30)]
    xs = [2.0 + (i * 3) % 4 + i for i in range(30)]
    assert float(beta) == round(
        run_history(EstimatorSettings(window=12, price="raw"), ys, xs)[-1].beta, 9
    )

"""The import contracts in ``pyproject.toml`` ([tool.importlinter]) hold.

Layers point down only: ``app`` → ``flows`` | ``dashboard`` → ``connectors`` → ``pairflow``,
``flows`` and ``dashboard`` independent of each other, and the core imports no wire, engine or
UI library. A new import that breaks them fails here with import-linter's report of the chain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept():
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", "pyproject.toml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout

"""The stage order holds: import-linter's contracts in pyproject.toml (each stage imports
only earlier ones, only outputs.plots imports matplotlib, Keras stays in the model's
modules), checked by the kept tool itself rather than a text search."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([str(lint_imports)], cwd=ROOT, env=environment,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout

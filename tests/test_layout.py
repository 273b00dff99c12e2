"""The pipeline's modules import only earlier stages; only cli.py imports everything."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "discovery"

# Each module, in the order data flows; a module may import only those before it.
ORDER = ["errors", "config", "annotations", "audio", "features", "windowing", "silence",
         "recording", "files", "dataset", "nn", "bundle", "callbacks", "training", "embed", "dtw", "evaluate",
         "clustering", "plots", "results", "report", "pipeline", "cli"]


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_modules_import_only_earlier_stages():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        own = relative.parts[0]
        if own == "__init__" or own not in ORDER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "discovery"):
                names = [node.module] if node.module != "discovery" else [
                    f"discovery.{alias.name}" for alias in node.names]
                for name in names:
                    stage = _stage(name)
                    if stage in ORDER and stage != own and own != "cli":
                        assert ORDER.index(stage) < ORDER.index(own), (
                            f"{relative} imports {name}, a later stage")


def test_matplotlib_only_in_plots():
    for path in PACKAGE.rglob("*.py"):
        if path.name != "plots.py":
            assert "import matplotlib" not in path.read_text(), path

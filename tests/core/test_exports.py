"""`import core` stays lazy, and type checkers see exactly what it exports (its TYPE_CHECKING imports)."""

import ast
import subprocess
import sys
from pathlib import Path

import core


def test_type_checkers_see_every_export_and_nothing_else():
    tree = ast.parse(Path(core.__file__).read_text("utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {alias.asname or alias.name for n in block.body if isinstance(n, ast.ImportFrom) for alias in n.names}
    seen |= {target.id for n in block.body if isinstance(n, ast.Assign) for target in n.targets}
    assert seen == set(core.__all__)
    assert all(getattr(core, name) is not None for name in core.__all__)  # each one resolves at run time


def test_importing_core_loads_no_model_code():
    probe = "import core, sys; print(sorted(m for m in ('tensorflow', 'keras', 'core.generate') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

"""pop3/ could be published unchanged: its imports are relative or the standard library's."""

from __future__ import annotations

import ast
from pathlib import Path
import sys
import tomllib

PACKAGE = Path(__file__).parents[2] / "custom_components" / "pop3_mail" / "pop3"


def test_only_relative_and_standard_library_imports() -> None:
    outside: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            outside += [
                f"{path.name}: {name}"
                for name in names
                if name.partition(".")[0] not in sys.stdlib_module_names | {"__future__"}
            ]
    assert outside == []


def test_its_own_project_file_lists_every_module() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    shipped = set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["only-include"])
    assert shipped == {path.name for path in PACKAGE.glob("*.py")} | {"py.typed"}
    assert project["project"]["dependencies"] == []
    assert (PACKAGE / "README.md").is_file()

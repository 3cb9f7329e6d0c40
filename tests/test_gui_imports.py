"""Import contract: Qt is imported only under mesolive/gui (napari's import-linter rule).

An AST walk rather than import-linter itself: no extra tool, and it also sees
imports inside functions. ``mesolive.gui.app`` must not import Qt at module
level either: it checks for a display before loading PySide6.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "mesolive"
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6", "PySide2")


def _qt_imports(tree: ast.AST, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    nodes = tree.body if top_level_only else ast.walk(tree)  # type: ignore[attr-defined]
    found = []
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in QT_MODULES:
                found.append((node.lineno, name))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_qt_is_imported_only_under_gui():
    offenders = []
    for path in _modules():
        rel = path.relative_to(PKG.parent)
        if rel.parts[:2] == ("mesolive", "gui"):
            continue
        for line, name in _qt_imports(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{rel}:{line} imports {name}")
    assert not offenders, "Qt imported outside mesolive/gui:\n" + "\n".join(offenders)


@pytest.mark.parametrize("module", ["__init__.py", "app.py"])
def test_gui_entry_modules_load_qt_lazily(module):
    path = PKG / "gui" / module
    assert not _qt_imports(ast.parse(path.read_text()), top_level_only=True)


def test_the_walk_finds_imports():
    tree = ast.parse("import os\nfrom PySide6.QtCore import Qt\ndef f():\n    import pyqtgraph\n")
    assert [n for _, n in _qt_imports(tree)] == ["PySide6.QtCore", "pyqtgraph"]
    assert [n for _, n in _qt_imports(tree, top_level_only=True)] == ["PySide6.QtCore"]

"""The package's shape: the library below the command line never speaks in flags, and its
modules import each other in one direction only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "seqgen"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def library_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "cli" not in p.relative_to(PACKAGE).parts[0]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_below_the_cli_names_a_flag():
    found = []
    for path in library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and FLAG.search(node.value):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {FLAG.search(node.value)[0]}")
    assert not found, "library code names command-line flags (name the parameter in backquotes):\n" + "\n".join(found)


def imports_of(path: Path) -> set[str]:
    """The seqgen modules `path` imports, at the top or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("seqgen"):
                continue
            if node.module is None:  # `from . import state` imports the module, not its package
                found.update(f"{target}.{alias.name}" for alias in node.names)
            else:
                found.add(target)
    return found


def test_modules_import_each_other_without_cycles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {t for t in imports_of(p) if t in modules and t != m} for m, p in modules.items()}
    visiting, done, cycles = set(), set(), []

    def visit(node: str, path: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append(" -> ".join(path[path.index(node) :] + [node]))
            return
        visiting.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        visiting.discard(node)
        done.add(node)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def modules_in_the_design() -> set[str]:
    """The files docs/design.md's layout names, as paths under seqgen/ (its tree is indented two
    spaces a level; a folder's name ends with a slash)."""
    text = (PACKAGE.parent / "docs" / "design.md").read_text()
    tree = text.split("## The layout", 1)[1].split("```", 2)[1]
    folders: list[str] = []
    named = set()
    for line in tree.splitlines()[2:]:  # after the opening fence's line and `seqgen/`
        if not line.strip() or not line.startswith("  "):
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2 - 1
        name = line.split()[0]
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        elif "." in name:
            named.add("/".join([*folders, name]))
    return named


def test_the_design_document_names_every_module():
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    missing = sorted(modules - modules_in_the_design())
    assert not missing, "docs/design.md's layout does not list: " + ", ".join(missing)

"""The exception tree drawn in harness/errors.py is the tree of the classes: every subclass of
DrillbookError in the library (found by reading the source, then imported and walked through
``__subclasses__``) stands in the drawing under its real parent, and nothing else does."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import harness.errors
from harness.errors import DrillbookError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "scenarios", "reports", "lab")
_BRANCH = re.compile(r"^(?P<indent>(?:│   |    )*)(?:├── |└── )(?P<name>\S+)")


def drawn() -> dict[str, str | None]:
    """qualified class name -> qualified parent name, from the module docstring."""
    doc = harness.errors.__doc__ or ""
    lines = [ln[4:] for ln in doc.splitlines() if ln.startswith("    ")]
    assert lines and lines[0].split()[0] == "DrillbookError", "the drawing starts at the root"
    tree: dict[str, str | None] = {"harness.errors.DrillbookError": None}
    stack = ["harness.errors.DrillbookError"]
    for line in lines[1:]:
        m = _BRANCH.match(line)
        if m is None:
            continue
        depth = len(m["indent"]) // 4 + 1
        name = m["name"] if "." in m["name"] else f"harness.errors.{m['name']}"
        assert name not in tree, f"{name} is drawn twice"
        del stack[depth:]
        assert len(stack) == depth, f"{name}: a branch deeper than its parent"
        tree[name] = stack[-1]
        stack.append(name)
    return tree


def modules_defining_errors() -> set[str]:
    """Modules with a class whose base could be in the tree (read, not imported, so a module
    that must not be imported here is never touched unless it defines one)."""
    found: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = {b.id if isinstance(b, ast.Name) else
                             b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases}
                    found.setdefault(module, set()).update(bases)
    names = {"DrillbookError"}
    modules: set[str] = set()
    grew = True
    while grew:  # a class deriving from one derived from DrillbookError, and so on
        grew = False
        for module, bases in found.items():
            if module not in modules and bases & names:
                modules.add(module)
                grew = True
        for module in modules:
            tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names and any(
                        isinstance(b, ast.Name) and b.id in names for b in node.bases):
                    names.add(node.name)
                    grew = True
    return modules


def walked() -> dict[str, str | None]:
    for module in sorted(modules_defining_errors()):
        importlib.import_module(module)
    tree: dict[str, str | None] = {"harness.errors.DrillbookError": None}
    todo = [DrillbookError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] not in PACKAGES:
                continue  # a test's own subclass
            tree[f"{sub.__module__}.{sub.__qualname__}"] = f"{cls.__module__}.{cls.__qualname__}"
            todo.append(sub)
    return tree


def test_the_drawn_tree_is_the_class_tree() -> None:
    want, have = drawn(), walked()
    assert len(have) > 10  # the walk found the adapters' errors, not only errors.py
    missing = sorted(set(have) - set(want))
    extra = sorted(set(want) - set(have))
    assert not missing, f"classes not drawn in harness/errors.py: {missing}"
    assert not extra, f"drawn but no such class: {extra}"
    moved = {k: (want[k], have[k]) for k in have if want[k] != have[k]}
    assert not moved, f"drawn under another parent (drawn, real): {moved}"


def test_the_drawing_is_read_as_a_tree() -> None:
    tree = drawn()
    assert tree["harness.errors.TargetUnreachable"] == "harness.errors.Inconclusive"
    assert tree["harness.targets.s3.StoreError"] == "harness.errors.TargetUnreachable"
    assert tree["harness.errors.StepFailed"] == "harness.errors.DrillbookError"

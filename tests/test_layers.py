"""The package's imports point only down its layers (docs/architecture.md), and no two modules import each other.

Each module's imports are read from its source (those inside functions and ``TYPE_CHECKING`` blocks too), so an
upward import fails here before it can tangle the next change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "label_studio_yolo"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "logsafe", "cpus", "heap", "projects", "label_studio_url", "allowed_hosts", "logging_setup", "geometry"),
    ("settings",),
    ("credentials", "versions", "label_config", "media"),
    ("inference",),
    ("vlm",),
    ("tags",),
    ("prediction",),
    ("training",),
    ("serving", "bulk", "healthcheck"),
    ("cli", "__main__"),
)
"""Bottom first: a module may import from its own layer and the layers below. A name is a module or a package."""


def module_name(path: Path) -> str:
    """``label_studio_yolo/tags/base.py`` -> ``tags.base``; a package's ``__init__`` is the package."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The package's modules that ``path`` imports (``label_studio_yolo.`` left off)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(name.removeprefix("label_studio_yolo.") for name in names if name.startswith("label_studio_yolo."))
    return found


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the module's top-level name."""
    top = module.split(".")[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"label_studio_yolo.{module} is in no layer: add {top!r} to LAYERS in {__file__}")


IMPORTS = {module_name(path): imported_modules(path) for path in sorted(PACKAGE.rglob("*.py"))}
IMPORTS.pop("", None)  # the package's own __init__ imports nothing of it


@pytest.mark.parametrize("module", sorted(IMPORTS))
def test_imports_point_down(module: str) -> None:
    upward = sorted(target for target in IMPORTS[module] if layer_of(target) > layer_of(module))
    assert not upward, f"label_studio_yolo.{module} (layer {layer_of(module)}) imports from above: {upward}"


def test_no_import_cycles() -> None:
    """Depth-first search over the import graph; a back edge is a cycle, reported as its path."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(IMPORTS.get(module, ())):
            if state.get(target) == "open":
                cycle = [*path[path.index(target) :], target] if target in path else [module, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(IMPORTS):
        if module not in state:
            visit(module, [module])


def test_upward_import_is_caught(tmp_path: Path) -> None:
    """The check reads what a module really imports: settings reaching up into serving is named."""
    source = tmp_path / "settings.py"
    source.write_text("def later():\n    from label_studio_yolo.serving.app import create_app\n")
    targets = imported_modules(source)
    assert targets == {"serving.app"}
    assert layer_of("serving.app") > layer_of("settings")

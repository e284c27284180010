"""The shape of the code, in numbers: what a newcomer has to read.

Prints the package's module count, its docstring share, the longest functions, the README's length, and for one
``/predict`` through the real Flask app (a cold project: ``/setup`` then ``/predict`` of one task with the tiny test
model) the calls that cross from one project module into another, the modules they touch, and how many times the
labelling config was parsed.

A crossing is a Python call whose caller and callee live in different modules of the project (``label_studio_yolo``,
``model.py``); calls into libraries and within one module do not count.

Usage:
    .venv/bin/python -m benchmarks.code_shape
"""

from __future__ import annotations

import ast
import io
import sys
import tempfile
from collections import Counter
from itertools import pairwise
from pathlib import Path
from types import FrameType
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "label_studio_yolo"
PROJECT_FILES = (str(PACKAGE), str(ROOT / "model.py"))

CONFIG_PARSERS = {
    ("label_studio_tools.core.label_config", "parse_config"),
    ("label_studio_sdk.label_interface.interface", "__init__"),
}
"""(module, function) of the calls that parse a labelling config's XML."""


def modules() -> list[Path]:
    """The package's Python files."""
    return sorted(PACKAGE.rglob("*.py"))


def docstring_share(paths: list[Path]) -> tuple[int, int]:
    """Lines inside docstrings, and all lines, of ``paths``."""
    doc_lines = total = 0
    for path in paths:
        text = path.read_text()
        total += len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc_lines += _string_lines(node.body[0]) if node.body else 0
            if isinstance(node, (ast.Module, ast.ClassDef)):
                doc_lines += _attribute_docstrings(node.body)
    return doc_lines, total


def _attribute_docstrings(body: list[ast.stmt]) -> int:
    """Lines of the string literals that follow an assignment (attribute docstrings)."""
    return sum(
        _string_lines(after) for before, after in pairwise(body) if isinstance(before, ast.Assign | ast.AnnAssign)
    )


def _string_lines(statement: ast.stmt) -> int:
    """Lines of ``statement`` if it is a bare string literal (a docstring), else 0."""
    literal = statement.value if isinstance(statement, ast.Expr) else None
    if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
        return (statement.end_lineno or statement.lineno) - statement.lineno + 1
    return 0


def longest_functions(paths: list[Path], count: int = 5) -> list[tuple[int, str]]:
    """The ``count`` longest functions (lines, ``module:function``)."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((length, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(found, reverse=True)[:count]


def modules_with_tests(paths: list[Path]) -> tuple[int, int]:
    """How many of the package's modules (``__init__`` left out) have a test file named after them, and of how many.

    ``label_studio_yolo/tags/brush.py`` counts with ``tests/tags/test_brush.py`` or ``tests/test_brush.py``.
    """
    tests = ROOT / "tests"
    named = [path for path in paths if path.stem not in ("__init__", "__main__")]
    found = 0
    for path in named:
        folder = path.parent.relative_to(PACKAGE)
        found += (tests / folder / f"test_{path.stem}.py").exists() or (tests / f"test_{path.stem}.py").exists()
    return found, len(named)


def _project_module(frame: FrameType) -> str | None:
    filename = frame.f_code.co_filename
    return frame.f_globals.get("__name__") if filename.startswith(PROJECT_FILES) else None


class CallCounter:
    """A profile hook counting project-to-project module crossings and config parses."""

    def __init__(self) -> None:
        self.crossings = 0
        self.touched: Counter[str] = Counter()
        self.parses = 0

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        key = (frame.f_globals.get("__name__"), frame.f_code.co_name)
        if key in CONFIG_PARSERS:
            self.parses += 1
        callee = _project_module(frame)
        caller = _project_module(frame.f_back) if frame.f_back is not None else None
        if callee is not None and caller is not None and callee != caller:
            self.crossings += 1
            self.touched[callee] += 1


def cold_predict_calls() -> CallCounter:
    """Crossings and parses of ``/setup`` then ``/predict`` of one task, for a project the process has not seen."""
    import base64
    import os

    from conftest import BOXES_CONFIG, MODEL_CACHE
    from tests.support.synthetic import train_tiny_model

    work = Path(tempfile.mkdtemp())
    weights = train_tiny_model(MODEL_CACHE)
    os.environ.update(MODEL_DIR=str(work), MODEL_ROOT=str(weights.parent), MODEL_PATH=weights.name)
    os.environ.update(INFERENCE_RUNTIME="pytorch", TORCH_THREADS="2")
    from label_studio_yolo.serving.app import create_app
    from model import YOLOBackend

    png = io.BytesIO()
    Image.new("RGB", (64, 48), "white").save(png, format="PNG")
    client = create_app(YOLOBackend).test_client()
    task = {"id": 1, "data": {"image": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()}}
    project = {"project": "1.1"}
    counter = CallCounter()
    sys.setprofile(counter)
    try:
        client.post("/setup", json={"schema": BOXES_CONFIG, **project})
        answer = client.post("/predict", json={"tasks": [task], "label_config": BOXES_CONFIG, **project})
    finally:
        sys.setprofile(None)
    if answer.status_code != 200:
        raise SystemExit(f"/predict answered {answer.status_code}: {answer.get_data(as_text=True)[:300]}")
    return counter


def main() -> None:
    """Print every figure."""
    paths = modules()
    doc_lines, total = docstring_share(paths)
    out = io.StringIO()
    print(f"modules in label_studio_yolo/: {len(paths)} ({total} lines)", file=out)
    print(f"docstring share: {doc_lines / total:.1%} ({doc_lines} lines)", file=out)
    print("longest functions: " + ", ".join(f"{name} {length}" for length, name in longest_functions(paths)), file=out)
    tested, named = modules_with_tests(paths)
    print(f"modules with a test file named after them: {tested} of {named}", file=out)
    print(f"README lines: {len((ROOT / 'README.md').read_text().splitlines())}", file=out)
    counter = cold_predict_calls()
    print(
        f"cold /setup + /predict of one task: {counter.crossings} module crossings through "
        f"{len(counter.touched)} modules; labelling config parsed {counter.parses} times",
        file=out,
    )
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()

"""The docs' examples print what the docs say: a line of a ``python`` block in docs/ that
ends with a comment of numbers only (``expr   # 3.2508, 5.0997``) is run, after the lines
before it, and its values must round to those numbers at the digits written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
STATED = re.compile(rf"^(?P<expr>.*?)\s+#\s*(?P<values>{NUMBER}(?:,\s*{NUMBER})*)\s*$")


def _examples() -> list[tuple[str, str, str, str]]:
    """(doc, code before the line, the line's expression, its stated numbers)."""
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S):
            lines = textwrap.dedent(block).splitlines()  # a block in a list is indented
            for i, line in enumerate(lines):
                match = STATED.match(line.strip())
                if match and _is_expression(match["expr"]):  # not an assignment
                    found.append((doc.name, "\n".join(lines[:i]), match["expr"], match["values"]))
    return found


def _is_expression(text: str) -> bool:
    try:
        compile(text, "<doc>", "eval")
    except SyntaxError:
        return False
    return True


def _as_floats(value: object) -> list[float]:
    if isinstance(value, tuple | list):
        return [x for item in value for x in _as_floats(item)]
    if isinstance(value, torch.Tensor):
        return [float(x) for x in value.detach().reshape(-1)]
    return [float(value)]  # type: ignore[arg-type]


def test_the_docs_have_examples_with_stated_numbers() -> None:
    assert any(doc == "baselines.md" for doc, *_ in _examples())


@pytest.mark.parametrize(("doc", "setup", "expr", "stated"), _examples())
def test_a_doc_example_prints_the_numbers_it_states(doc, setup, expr, stated) -> None:
    namespace: dict[str, object] = {}
    exec(compile(setup, doc, "exec"), namespace)
    got = _as_floats(eval(compile(expr, doc, "eval"), namespace))
    numbers = [text.strip() for text in stated.split(",")]
    assert len(got) == len(numbers), (expr, got)
    for value, text in zip(got, numbers, strict=True):
        digits = len(text.split(".")[1]) if "." in text and "e" not in text else None
        if digits is None:
            assert value == pytest.approx(float(text), rel=1e-3), (doc, expr, value, text)
        else:
            assert f"{value:.{digits}f}" == text, (doc, expr, value, text)

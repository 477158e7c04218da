"""The run folder's file names live in calfseg.run_files only, and a fresh start in a
folder leaves nothing an earlier run computed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import calfseg.run_files as files
from calfseg.train import TrainConfig, fit

SOURCE = Path(__file__).resolve().parents[1] / "src" / "calfseg"
NAMES = {files.CONFIG, files.LAST_CHECKPOINT, files.BEST_CHECKPOINT, files.LOG_CSV,
         files.LOG_JSONL, files.PROVENANCE, files.DONE, files.FAILED}  # fmt: skip
# evaluation outputs: eval_<split>.json ... (whole, or the first piece of an f-string)
EVALUATION = re.compile(r"\b(eval|per_image|per_case|qualitative)_(\w*\.(json|csv|npz)\b|$)")


def _spellings(path: Path, root: Path = SOURCE) -> list[str]:
    """The string constants of ``path`` (docstrings aside) that spell a run file's name."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docstrings:
            continue
        text = node.value
        if any(name in text for name in NAMES) or EVALUATION.search(text):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {text!r}")
    return found


def test_run_file_names_are_spelled_in_one_module():
    spelled = [s for p in sorted(SOURCE.rglob("*.py")) if p.name != "run_files.py"
               for s in _spellings(p)]  # fmt: skip
    assert spelled == []


def test_the_check_finds_a_spelled_name(tmp_path: Path):
    # guards against a check that matches nothing
    text = 'LAST = "last.pt"\nreport = f"eval_{split}.json"\n'
    (tmp_path / "x.py").write_text(text)
    assert len(_spellings(tmp_path / "x.py", tmp_path)) == 2


def test_a_fresh_start_leaves_nothing_of_an_earlier_run(synthetic_cache: Path, tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    earlier = [files.evaluation_report("test"), files.per_image_table("test"),
               files.per_case_table("test"), files.qualitative_examples("val"), files.DONE,
               "old.pt"]  # fmt: skip
    for name in [*earlier, files.LOG_CSV, files.LOG_JSONL]:
        (run / name).write_text("from an earlier run")
    (run / "notes.txt").write_text("the user's")
    config = TrainConfig.tiny(synthetic_cache, epochs=1, max_steps=1, device="cpu", loss="bce",
                              tensorboard=False)  # fmt: skip
    fit(config, run, progress=False)
    left = {p.name for p in run.iterdir()}
    assert not left & set(earlier)
    assert "notes.txt" in left
    assert {files.CONFIG, files.LAST_CHECKPOINT, files.LOG_CSV} <= left
    assert "earlier" not in (run / files.LOG_CSV).read_text() + (run / files.LOG_JSONL).read_text()

"""Progress bars only on a terminal: no carriage-return junk in logs and pipes."""

from __future__ import annotations

import io
import sys

import pytest

from calfseg.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert progress_bar(10, "epoch 1/1") is None
    assert log.getvalue() == ""


def test_a_bar_on_a_terminal_unless_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert progress_bar(3, "x", enabled=False) is None
    bar = progress_bar(3, "reading", unit="file")
    assert bar is not None
    bar.update(3)
    bar.close()
    assert "reading" in terminal.getvalue() and "\r" in terminal.getvalue()


def test_no_bar_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert progress_bar(3, "x") is None


def test_every_bar_of_the_package_goes_through_the_helper() -> None:
    """No module but calfseg.progress builds a tqdm bar itself."""
    from pathlib import Path

    import calfseg

    root = Path(calfseg.__file__).parent
    direct = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "progress.py" and "tqdm(" in path.read_text()
    ]
    assert direct == []

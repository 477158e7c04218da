"""The Ray executor's pieces that need no cluster: the address check and the restart of a
run retrained from scratch (so that a retried task resumes instead of restarting)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from calfseg.bench.executors.ray_tasks import ExecutorError, _restartable, check_address
from calfseg.bench.executors.task import RunTask


def test_a_listening_address_passes_and_a_bad_one_is_named() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_address(f"127.0.0.1:{port}")
        check_address(f"ray://127.0.0.1:{port}")
    with pytest.raises(ExecutorError, match="expected HOST:PORT, ray://HOST:PORT or auto"):
        check_address("head:port")
    check_address("auto")  # left to Ray


def test_a_fresh_run_loses_its_old_checkpoint_and_is_sent_resumable(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"old")
    fresh = RunTask("unet-bce-s0", str(tmp_path), {}, resume=False)
    sent = _restartable(fresh)
    assert sent.resume is True and not (tmp_path / "last.pt").exists()
    (tmp_path / "last.pt").write_bytes(b"mine")
    kept = RunTask("unet-bce-s0", str(tmp_path), {}, resume=True)
    assert _restartable(kept) is kept and (tmp_path / "last.pt").read_bytes() == b"mine"

"""Training on CUDA: mixed precision (bf16, fp16 with a gradient scaler), evaluation on the
GPU, resumption. Skipped without a GPU (CI has none); run with ``pytest tests/gpu``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from calfseg.train import TrainConfig, evaluate_checkpoint, fit, load_checkpoint, train_run

from ..train.synthetic_cache import make_synthetic_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_cache(tmp_path_factory.mktemp("cuda_train") / "cache", size=64)


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
@pytest.mark.parametrize("loss", ["calf", "bce"])
def test_mixed_precision_training_on_cuda(cache: Path, tmp_path: Path, amp: str, loss: str):
    config = TrainConfig.tiny(
        cache, epochs=2, max_steps=4, device="cuda", amp=amp, loss=loss, grad_clip=1.0
    )
    outcome = train_run(config, tmp_path, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)
    assert 0 <= outcome["results"]["dice/per_image"] <= 1
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["scaler"] is not None) == (amp == "fp16")


def test_cuda_resume_and_evaluate(cache: Path, tmp_path: Path):
    config = TrainConfig.tiny(cache, epochs=2, max_steps=3, device="cuda", loss="calf")
    fit(config, tmp_path / "a", progress=False)
    fit(config, tmp_path / "b", progress=False, stop_after=1)
    fit(config, tmp_path / "b", progress=False)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for name in a:  # cuDNN is not bitwise reproducible everywhere: close, not equal
        if a[name].is_floating_point():
            torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)
    gpu = evaluate_checkpoint(tmp_path / "a" / "last.pt", device="cuda", surface=False)
    cpu = evaluate_checkpoint(tmp_path / "a" / "last.pt", device="cpu", surface=False)
    assert gpu["results"]["dice/per_image"] == pytest.approx(
        cpu["results"]["dice/per_image"], abs=0.02
    )

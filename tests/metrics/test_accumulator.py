"""MetricAccumulator: equals one-shot evaluation, merges, gathers across ranks, and never
puts NaN in its results."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st

from calfseg.metrics import (
    MetricAccumulator,
    confusion_counts,
    evaluate_counts,
    surface_distances,
)

from ..gloo import needs_gloo, on_gloo_ranks
from ._dist_worker import all_gather_worker, shard

needs_monai = pytest.mark.skipif(
    importlib.util.find_spec("monai") is None, reason="HD95 and ASSD need MONAI"
)


def random_set(seed: int, n: int = 23, side: int = 12):
    """Rectangular lesions of varied size, a third of the slices tumour-free; predictions
    that mostly follow the truth, sometimes miss or hallucinate."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, 1, side, side), dtype=np.float32)
    for i in range(n):
        if rng.random() < 2 / 3:
            r, c = rng.integers(0, side - 1, 2)
            h, w = rng.integers(1, side // 2, 2)
            truth[i, 0, r : r + h, c : c + w] = 1
    logits = 4 * truth - 2 + rng.normal(0, 1.5, truth.shape).astype(np.float32)
    logits[rng.random(n) < 0.15] = -3  # some empty predictions (missed lesions)
    spacing = rng.uniform(0.5, 1.5, (n, 2))
    cases = [f"c{i // 4}" for i in range(n)]
    return torch.from_numpy(logits), torch.from_numpy(truth), spacing, cases


def batches(n: int, sizes: list[int]):
    start = 0
    for size in sizes:
        yield slice(start, min(start + size, n))
        start += size


@needs_monai
@pytest.mark.parametrize("policy", ["one", "exclude"])
def test_accumulator_equals_one_shot_evaluation(policy) -> None:
    logits, truth, spacing, cases = random_set(0)
    acc = MetricAccumulator(policy=policy, pooled_batch_size=8)
    for sl in batches(len(truth), [5, 1, 9, 8]):
        acc.update(logits[sl], truth[sl], spacing=spacing[sl], case_ids=cases[sl])
    assert len(acc) == len(truth)
    once = evaluate_counts(
        confusion_counts(logits, truth),
        case_ids=np.array(cases),
        surface=surface_distances(logits, truth, spacing),
        policy=policy,
        pooled_batch_size=8,
    )
    assert acc.compute() == once


@needs_monai
def test_merge_state_round_trip_and_all_gather_without_process_group() -> None:
    logits, truth, spacing, cases = random_set(1)
    whole = MetricAccumulator().update(logits, truth, spacing=spacing, case_ids=cases)
    first = MetricAccumulator().update(
        logits[:10], truth[:10], spacing=spacing[:10], case_ids=cases[:10]
    )
    second = MetricAccumulator().update(
        logits[10:], truth[10:], spacing=spacing[10:], case_ids=cases[10:]
    )
    assert first.merge(second).compute() == whole.compute()
    assert MetricAccumulator.from_state(whole.state()).compute() == whole.compute()
    assert not (dist.is_available() and dist.is_initialized())
    gathered = whole.all_gather()
    assert gathered is not whole and gathered.compute() == whole.compute()


def test_reset_forgets_everything() -> None:
    logits, truth, _, _ = random_set(2)
    acc = MetricAccumulator(surface=False).update(logits, truth)
    acc.reset()
    assert len(acc) == 0 and acc.compute()["n_images"] == 0


def test_surface_distances_need_a_spacing() -> None:
    logits, truth, _, _ = random_set(3)
    with pytest.raises(ValueError, match="spacing is needed"):
        MetricAccumulator().update(logits, truth)
    r = MetricAccumulator(surface=False).update(logits, truth).compute()
    assert "hd95_mm/per_image" not in r and "dice/per_image" in r


def test_case_ids_in_some_updates_only_is_an_error() -> None:
    logits, truth, _, cases = random_set(4)
    acc = MetricAccumulator(surface=False)
    acc.update(logits[:4], truth[:4], case_ids=cases[:4]).update(logits[4:], truth[4:])
    with pytest.raises(ValueError, match="some updates but not in others"):
        acc.compute()
    with pytest.raises(ValueError, match="case_ids has 3 entries for 4 images"):
        acc.update(logits[:4], truth[:4], case_ids=cases[:3])


def test_merging_different_settings_is_an_error() -> None:
    with pytest.raises(ValueError, match="different settings"):
        MetricAccumulator(policy="one").merge(MetricAccumulator(policy="exclude"))


@needs_monai
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), policy=st.sampled_from(["one", "exclude"]))
@pytest.mark.slow
def test_results_never_contain_nan_and_none_always_has_an_explicit_reason(seed, n, policy) -> None:
    logits, truth, spacing, cases = random_set(seed, n=n, side=8)
    acc = MetricAccumulator(policy=policy, pooled_batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-excluded means warn; checked elsewhere
        r = acc.update(logits, truth, spacing=spacing, case_ids=cases).compute()
    json.dumps(r, allow_nan=False)  # no NaN or inf anywhere
    units = {"per_image": r["n_images"], "per_case": r.get("n_cases")}
    for key, value in r.items():
        if value is not None:
            continue
        parts = key.split("/")
        if key.startswith("area_tertile"):
            assert r["n_images"] == r["n_empty_truth"], key  # no foreground to split
            continue
        group = parts[2] if len(parts) == 3 else None
        n_units = r[f"n_images/{group}"] if group else units.get(parts[1], 1)
        if n_units == 0:
            continue
        # the only other reason: every unit was undefined and excluded
        assert policy == "exclude", key
        if parts[1] in units:
            assert r[f"n_undefined/{key}"] == n_units, key


@needs_gloo
@pytest.mark.slow
def test_all_gather_over_two_ranks_equals_evaluating_everything_in_one_process(tmp_path) -> None:
    got = on_gloo_ranks(all_gather_worker, tmp_path)
    assert got[0] == got[1]
    parts = [shard(r) for r in range(2)]
    acc = MetricAccumulator(surface=False)
    for logits, truth, cases in parts:
        acc.update(logits, truth, case_ids=cases)
    assert got[0] == acc.compute()
    assert got[0]["n_images"] == sum(len(p[0]) for p in parts)


@pytest.mark.slow
def test_count_metrics_work_without_monai_and_surfaces_name_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['monai'] = None  # as if not installed\n"
        "import torch\n"
        "from calfseg.metrics import MetricAccumulator\n"
        "from calfseg.extras import MissingExtraError\n"
        "assert 'scipy' not in sys.modules\n"
        "x = torch.zeros(2, 1, 4, 4); x[0, 0, 1, 1] = 1\n"
        "r = MetricAccumulator(surface=False).update(x * 4 - 2, x).compute()\n"
        "assert r['dice/per_image'] == 1.0\n"
        "try:\n"
        "    MetricAccumulator().update(x * 4 - 2, x, spacing=1.0)\n"
        "except MissingExtraError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'calf-seg[train]'" in out.stdout


@needs_monai
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_give_the_same_results_as_cpu() -> None:
    logits, truth, spacing, cases = random_set(5)
    cpu = MetricAccumulator().update(logits, truth, spacing=spacing, case_ids=cases).compute()
    gpu = (
        MetricAccumulator()
        .update(logits.cuda(), truth.cuda(), spacing=spacing, case_ids=cases)
        .compute()
    )
    assert gpu == cpu

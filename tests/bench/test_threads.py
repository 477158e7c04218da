"""The thread policy (calfseg.threads): the CPUs a process really has (affinity, cgroup v1
and v2 quotas read from faked files), the threads per run and the runs at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.threads import available_cpus, cgroup_quota, plan_threads


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_root_and_of_the_own_cgroup(tmp_path: Path) -> None:
    proc = tmp_path / "proc_cgroup"
    _write(proc, "0::/\n")
    _write(tmp_path / "cg" / "cpu.max", "150000 100000\n")  # 1.5 CPUs
    assert cgroup_quota(tmp_path / "cg", proc) == pytest.approx(1.5)
    _write(tmp_path / "cg" / "cpu.max", "max 100000\n")  # no limit at the root ...
    _write(proc, "0::/job/step\n")
    _write(tmp_path / "cg" / "job" / "step" / "cpu.max", "400000 100000\n")
    _write(tmp_path / "cg" / "job" / "cpu.max", "300000 100000\n")  # ... the parent's wins
    assert cgroup_quota(tmp_path / "cg", proc) == pytest.approx(3.0)


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    proc = tmp_path / "none"
    _write(tmp_path / "cg" / "cpu,cpuacct" / "cpu.cfs_quota_us", "250000\n")
    _write(tmp_path / "cg" / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_quota(tmp_path / "cg", proc) == pytest.approx(2.5)
    _write(tmp_path / "cg" / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")  # unlimited
    assert cgroup_quota(tmp_path / "cg", proc) is None
    assert cgroup_quota(tmp_path / "empty", proc) is None


def test_available_cpus_is_the_smaller_of_affinity_and_the_whole_quota() -> None:
    assert available_cpus(affinity=8, quota=2.5) == 2  # 2.5 CPUs of time: 2 busy threads
    assert available_cpus(affinity=2, quota=6.0) == 2
    assert available_cpus(affinity=4, quota=0.5) == 1  # at least one
    assert available_cpus(affinity=3, read_quota=False) == 3


def test_runs_get_one_thread_each_and_fill_the_cpus() -> None:
    plan = plan_threads(jobs=None, cpus=2, environ={})
    assert (plan.jobs, plan.threads, plan.source, plan.busy) == (2, 1, "policy", 2)
    # the threads per run do not follow --jobs (results would change with them)
    assert plan_threads(jobs=1, cpus=8, environ={}).threads == 1
    # loader workers are busy threads too: 8 CPUs / (1 thread + 3 workers) = 2 runs
    plan = plan_threads(jobs=None, cpus=8, workers=3, environ={})
    assert (plan.jobs, plan.busy) == (2, 8) and not plan.oversubscribed


def test_explicit_threads_win_over_omp_num_threads_which_wins_over_the_policy() -> None:
    env = {"OMP_NUM_THREADS": "3"}
    plan = plan_threads(jobs=None, cpus=12, environ=env)
    assert (plan.threads, plan.jobs, plan.source) == (3, 4, "OMP_NUM_THREADS")
    plan = plan_threads(jobs=None, cpus=12, threads=6, environ=env)
    assert (plan.threads, plan.jobs, plan.source) == (6, 2, "--threads")
    assert plan.environment()["OMP_NUM_THREADS"] == "6"
    # asked for more than the CPUs hold: planned as asked, and flagged
    assert plan_threads(jobs=4, cpus=2, environ={}).oversubscribed


def test_gpus_one_run_each_sharing_the_cpus() -> None:
    plan = plan_threads(jobs=None, cpus=16, gpus=4, workers=2, environ={})
    assert (plan.jobs, plan.threads, plan.busy) == (4, 2, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jobs": 0}, "--jobs must be a positive"),
        ({"jobs": -2}, "--jobs must be a positive"),
        ({"jobs": None, "threads": 0}, "--threads must be a positive"),
        ({"jobs": None, "environ": {"OMP_NUM_THREADS": "lots"}}, "OMP_NUM_THREADS='lots'"),
    ],
)
def test_bad_values_name_the_option(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_threads(cpus=2, **{"environ": {}, **kwargs})

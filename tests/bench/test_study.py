"""calf study rule: every fixed branch, calf, calf-dataset and combo per dataset; rule.csv
names the rule's pick as calf analyze does, each loss against it and the regret."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calfseg.analysis import analyze
from calfseg.bench.interval import paired_interval
from calfseg.bench.stats import decide
from calfseg.bench.study import RULE_COLUMNS, STUDY_LOSSES, RuleStudy
from calfseg.bench.study_report import run_rule_study
from calfseg.cli import main
from calfseg.data import prepare
from calfseg.errors import OptionError
from calfseg.train.provenance import run_provenance, write_provenance

from .fakes import TRUE_AREA, write_run

N_CASES = 12
SEEDS = (0, 1)
# per-case Dice offsets: branch-fisher gains 0.1 everywhere; the rest sit on a shared base
GAIN = {"branch-fisher": 0.10, "combo": -0.05}


def _dice(loss: str, seed: int, case: int) -> float:
    base = np.random.default_rng([case, seed]).uniform(0.5, 0.7)
    noise = np.random.default_rng([case, seed, len(loss), ord(loss[-1])]).normal(0, 0.004)
    return float(base + GAIN.get(loss, 0.0) + noise)


class StudyTrainer:
    """A finished fake run whose per-case Dice is :func:`_dice` (FP = FN = TRUE_AREA - TP)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, options: dict[str, Any], run_dir: Path, **kwargs: Any) -> None:
        run_dir = Path(run_dir)
        fold, folds = options.get("cv_fold"), options.get("cv_folds", 1)
        loss, seed = options["loss"], options["seed"]
        self.calls.append(run_dir.name)
        write_run(run_dir.parents[1], options["model"], loss, seed, fold=fold, n_folds=folds)
        with (run_dir / "per_case_test.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("case_id", "n_slices", "tp", "fp", "fn", "tn", "dice"))
            for c in range(N_CASES):
                if fold is not None and c % folds != fold - 1:
                    continue
                tp = round(_dice(loss, seed, c) * TRUE_AREA)
                miss = TRUE_AREA - tp
                writer.writerow([f"c{c:02d}", 4, tp, miss, miss, 10_000, tp / TRUE_AREA])
        (run_dir / "config.json").write_text(json.dumps(options))
        write_provenance(run_dir, run_provenance(options))


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("study")
    made = []
    for preset in ("paper-like", "left-skewed"):
        prepare(None, root / preset, synthetic=preset, cases=8, slices=6, size=16)
        made.append(root / preset)
    return made


def _study(out: Path, caches: list[Path], **changes: Any) -> RuleStudy:
    settings: dict[str, Any] = {"seeds": SEEDS, "folds": 2, "epochs": 1, **changes}
    return RuleStudy(out=out, datasets=tuple(str(c) for c in caches), **settings)


def test_rule_csv_names_the_pick_compares_every_loss_and_gives_the_regret(
    tmp_path: Path, caches: list[Path]
) -> None:
    trainer = StudyTrainer()
    results = run_rule_study(_study(tmp_path, caches), progress=False, train_fn=trainer)
    assert len(trainer.calls) == 2 * len(STUDY_LOSSES) * 2 * 2  # datasets x losses x seeds x folds
    with (tmp_path / "rule.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == RULE_COLUMNS
    for cache, result in zip(caches, results, strict=True):
        fingerprint = analyze(cache)  # what calf analyze CACHE says
        mine = [r for r in rows if r["dataset"] == cache.name]
        assert [r["loss"] for r in mine] == [*STUDY_LOSSES, "regret"]
        assert {r["rule_branch"] for r in mine} == {fingerprint.branch}
        assert float(mine[0]["skewness"]) == pytest.approx(fingerprint.skewness)
        pick = f"branch-{fingerprint.branch}"
        by = {r["loss"]: r for r in mine}
        assert by[pick]["verdict"] == "pick" and float(by[pick]["diff_vs_pick"]) == 0.0
        # each loss against the pick: the benchmark's interval on the cases x seeds table
        for loss in ("combo", "branch-fisher"):
            if loss == pick:
                continue
            table = np.array(
                [[_dice(loss, s, c) - _dice(pick, s, c) for s in SEEDS] for c in range(N_CASES)]
            )
            low, high = paired_interval(table, folds=[c % 2 for c in range(N_CASES)])
            row = by[loss]
            assert float(row["diff_vs_pick"]) == pytest.approx(table.mean(), abs=2e-3)
            assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(
                (low, high), abs=2e-3
            )  # the fake's TP rounds Dice to 1/1000
            assert row["verdict"] == decide(float(row["ci_low"]), float(row["ci_high"]), 0.01)
        regret = by["regret"]
        challenger = "branch-fisher" if pick != "branch-fisher" else None
        table = np.array(
            [[_dice(regret["challenger"], s, c) - _dice(pick, s, c) for s in SEEDS]
             for c in range(N_CASES)]
        )  # fmt: skip
        # the challenger's interval is Bonferroni'd over the five branches it was chosen from
        low, high = paired_interval(
            table, confidence=1 - 0.05 / 5, folds=[c % 2 for c in range(N_CASES)]
        )
        assert (float(regret["ci_low"]), float(regret["ci_high"])) == pytest.approx(
            (low, high), abs=2e-3
        )
        assert regret["verdict"] == decide(float(regret["ci_low"]), float(regret["ci_high"]), 0.01)
        if challenger:  # fisher gains 0.1 on every case: it beats the pick
            assert regret["challenger"] == challenger and regret["verdict"] == "better"
            assert float(regret["ci_high"]) - float(regret["ci_low"]) > float(
                by[challenger]["ci_high"]
            ) - float(by[challenger]["ci_low"])  # wider than the plain 95 % interval
        else:  # the pick is fisher: every other branch sits 0.1 below it
            assert regret["verdict"] == "worse" and float(regret["diff_vs_pick"]) < -0.05
        assert result.regret.verdict == regret["verdict"]
    study_md = (tmp_path / "study.md").read_text()
    assert "Does CALF's rule pick the right loss?" in study_md
    assert (tmp_path / "study.html").read_text().count("data:image/png;base64,") == 1
    # kill -9 and rerun: finished runs are not trained again
    again = StudyTrainer()
    run_rule_study(_study(tmp_path, caches), progress=False, train_fn=again)
    assert again.calls == []


def test_runs_made_another_way_are_refused(tmp_path: Path, caches: list[Path]) -> None:
    from calfseg.bench.errors import StaleRunsError

    run_rule_study(_study(tmp_path, caches[:1]), progress=False, train_fn=StudyTrainer())
    with pytest.raises(StaleRunsError, match="epochs 1 -> 2"):
        run_rule_study(
            _study(tmp_path, caches[:1], epochs=2), progress=False, train_fn=StudyTrainer()
        )


def test_unknown_datasets_and_presets_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="did you mean 'paper-like'"):
        RuleStudy(out=tmp_path, datasets=("paper-lik",)).benchmarks()
    with pytest.raises(OptionError, match="study preset"):
        RuleStudy(out=tmp_path, preset="paper").benchmarks()
    out = str(tmp_path / "out")
    assert main(["study", "rule", "--datasets", "nope", "--out", out]) == 2  # usage
    assert main(["study", "rule", "--datasets", str(tmp_path / "gone"), "--out", out]) == 1
    (tmp_path / "half").mkdir()  # a folder, but no cache
    assert main(["study", "rule", "--datasets", str(tmp_path / "half"), "--out", out]) == 1
    assert main(["study", "rule", "--margin", "nan", "--out", out]) == 2
    assert main(["study"]) == 2  # no study named: its help
    assert not (tmp_path / "out").exists()


def test_failed_runs_are_named_and_leave_the_regret_incomplete(
    tmp_path: Path, caches: list[Path]
) -> None:
    from calfseg.bench.study_report import write_study

    study = _study(tmp_path, caches[:1])
    run_rule_study(study, progress=False, train_fn=StudyTrainer())
    label = caches[0].name
    done = tmp_path / label / "runs" / "unet-branch-arcsine-s0-f1" / "done.json"
    done.unlink()
    (done.parent / "failed.json").write_text(json.dumps({"error": "boom"}))
    (result,) = write_study(study)
    assert result.failed == ("unet-branch-arcsine-s0-f1",)
    assert result.regret.verdict == "incomplete"
    assert "runs failed or are missing" in (tmp_path / "study.md").read_text()


def test_the_default_study_covers_every_row_of_the_rule(tmp_path: Path) -> None:
    from calfseg.data.sources.synthetic import BRANCH_PRESETS

    configs = RuleStudy(out=tmp_path).benchmarks()
    assert sorted(label for label, _ in configs) == sorted(BRANCH_PRESETS.values())
    for label, config in configs:
        assert config.synthetic == label and config.data is None
        assert config.losses == STUDY_LOSSES and not config.control
        assert config.out == tmp_path / label


def test_the_finding_counts_runs_that_learned_nothing_per_loss() -> None:
    from calfseg.bench.study import RuleRow
    from calfseg.bench.study_report import DatasetResult, finding

    def row(loss: str, verdict: str, diff: float | None = 0.0) -> RuleRow:
        return RuleRow("left-skewed", -1.5, 2.4, "fisher", loss, 48, 2, 0.47, 0.0, 0.9, diff,
                       -0.9, 1.9, verdict, "branch-ln" if loss == "regret" else "")  # fmt: skip

    result = DatasetResult(
        "left-skewed",
        (row("branch-fisher", "pick"), row("branch-ln", "inconclusive"),
         row("regret", "inconclusive")),
        learned_nothing=("unet-branch-fisher-s1-f1", "unet-branch-fisher-s1-f2", "unet-calf-s1-f1"),
    )  # fmt: skip
    text = finding([result])
    assert "on 1 of 1: the data could not decide (inconclusive) (left-skewed (branch-ln))" in text
    assert "left-skewed: branch-fisher 2 runs, calf 1 run" in text
    assert "the pick has no finished runs" not in text

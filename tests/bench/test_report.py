"""build_benchmark_report: summary.md and one self-contained report.html with every section."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calfseg.bench import build_benchmark_report
from calfseg.bench.report import DETAIL_TITLES, MIXED_TITLE, SECTION_TITLES, recorded_margin

from .fakes import SEEDS, TRUE_AREA, per_case_tp, write_benchmark, write_run

pytestmark = pytest.mark.slow  # renders figures and HTML: the full tier only


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._in_heading = True
            self.headings.append("")
        if values.get("src") is not None:
            self.sources.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.links.append(values["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings[-1] += data


def _headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("## ")]


def test_the_report_opens_with_the_verdicts(fake_benchmark: Path) -> None:
    files = build_benchmark_report(fake_benchmark)
    summary = files.summary.read_text()
    assert _headings(summary) == [f"## {t}" for t in SECTION_TITLES]
    for title in DETAIL_TITLES:
        assert f"### {title}" in summary
    verdicts_part = summary.split("## Convergence")[0]
    # the answer first, in words, then the table with unit and cases, then the forest plot
    assert "): CALF beats BCE (+0.080 per-case Dice, 95 % interval" in verdicts_part
    assert "): CALF is equivalent to BCE within ±0.01" in verdicts_part
    # the baseline's level comes with the answer: BCE's mean of the seed-averaged cases
    bce = np.mean([per_case_tp("unet", "bce", s) / TRUE_AREA for s in SEEDS], axis=0).mean()
    assert f"**unet (BCE: mean per-case Dice {bce:.3f}): CALF beats" in verdicts_part
    assert "Caution" not in verdicts_part  # every fake run converged and learned
    assert "| unet | dice | worse |" in verdicts_part
    assert "| fpn | dice | inconclusive |" in verdicts_part
    assert "| 12 |" in verdicts_part and "Unit: the case (patient)" in verdicts_part
    assert "generalized confidence interval" in verdicts_part
    assert "Resolution: this benchmark could call a difference larger than about" in (verdicts_part)
    assert "![Per-case Dice difference to BCE" in verdicts_part
    assert verdicts_part.index("| model | loss | verdict") < verdicts_part.index("![")
    # the slice-level paired tests are gone
    assert "n pairs" not in summary and "Paired tests" not in summary


def test_verdicts_csv_has_the_contract_columns_and_follows_the_rule(fake_benchmark: Path):
    files = build_benchmark_report(fake_benchmark)
    assert files.verdicts_csv == fake_benchmark / "verdicts.csv"
    with files.verdicts_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == [
        "model", "loss", "baseline", "metric", "unit", "n_units", "mean_diff", "ci_low",
        "ci_high", "margin", "verdict", "n_seeds", "stratum",
    ]  # fmt: skip
    rows = [r for r in rows if r["stratum"] == "all"]  # test_strata.py has the others
    assert [(r["model"], r["loss"]) for r in rows] == [
        ("unet", "calf"), ("unet", "dice"), ("fpn", "calf"), ("fpn", "dice"),
    ]  # fmt: skip
    for row in rows:
        assert (row["baseline"], row["metric"], row["unit"]) == ("bce", "dice", "case")
        assert int(row["n_units"]) == 12 and float(row["margin"]) == 0.01
        assert int(row["n_seeds"]) == len(SEEDS)
        low, high, margin = float(row["ci_low"]), float(row["ci_high"]), float(row["margin"])
        rule = (
            "equivalent" if -margin <= low and high <= margin
            else "better" if low > 0 else "worse" if high < 0 else "inconclusive"
        )  # fmt: skip
        assert row["verdict"] == rule
        assert low <= float(row["mean_diff"]) <= high


def test_the_margin_is_an_option_of_the_report(tmp_path: Path) -> None:
    files = build_benchmark_report(write_benchmark(tmp_path), margin=0.2)
    assert {v.margin for v in files.verdicts} == {0.2}
    assert recorded_margin(tmp_path) == 0.2
    assert "within ±0.2" in files.summary.read_text()


def test_convergence_lists_unconverged_and_failed_runs(tmp_path: Path) -> None:
    write_benchmark(tmp_path)
    write_run(tmp_path, "unet", "bce", 1, converged=False)
    write_run(tmp_path, "fpn", "dice", 0, converged=None)  # an older calf-seg
    failed = tmp_path / "runs" / "fpn-calf-s1"
    (failed / "done.json").unlink()
    (failed / "failed.json").write_text(json.dumps({"error": "RuntimeError: boom"}))
    summary = build_benchmark_report(tmp_path).summary.read_text()
    first = summary.split("## Convergence")[0]
    assert "Caution: unet: 1 of 6 runs did not converge. See Convergence" in first
    part = summary.split("## Convergence")[1].split("## Details")[0]
    assert "9 of 11 finished runs converged" in part
    assert "1 record no convergence" in part and "1 failed with an error" in part
    assert "| unet-bce-s1 | budget | 3 | 3 | 0.700 |" in part
    assert "| fpn-calf-s1 | RuntimeError: boom |" in part


def _finished_under_the_reference_rule(
    folder: Path, scores: list[float | None], *, converged: bool = False, **config: Any
) -> None:
    """Rewrite a fake run as one finished before ``convergence_rule`` was recorded, with
    its ``converged`` flag and these validation scores (None: an empty cell)."""
    done = json.loads((folder / "done.json").read_text())
    done.pop("convergence_rule", None)
    (folder / "done.json").write_text(json.dumps({**done, "converged": converged}))
    stored = json.loads((folder / "config.json").read_text())
    stored.update(min_delta=0.01, epochs=len(scores), **config)
    (folder / "config.json").write_text(json.dumps(stored))
    cells = ["" if v is None else str(v) for v in scores]
    rows = ["epoch,val_case_dice"] + [f"{i + 1},{v}" for i, v in enumerate(cells)]
    (folder / "log.csv").write_text("\n".join(rows) + "\n")


def _converged_runs(out: Path) -> str:
    summary = build_benchmark_report(out).summary.read_text()
    part = summary.split("## Convergence")[1].split("## Details")[0]
    return part.split(" finished runs converged")[0].rsplit("\n", 1)[-1]


def test_a_nan_validation_of_an_earlier_run_is_replayed_as_a_validation(tmp_path: Path):
    write_benchmark(tmp_path)
    # the log writes NaN empty: on validated epochs it is a score, one never improving;
    # read as "no validation", the last 4 would be 0.805 x 3 after 0.8: not converged
    scores = [0.5, 0.7, 0.75, 0.8, None, 0.805, 0.805, 0.805]
    _finished_under_the_reference_rule(tmp_path / "runs" / "unet-bce-s0", scores)
    assert _converged_runs(tmp_path) == "12 of 12"
    # with --val-every 2, an empty cell on an odd epoch is an epoch without validation
    every_2 = [None, 0.5, None, 0.7, None, 0.75, None, 0.8, None, 0.81, None, 0.812, None, 0.82]
    _finished_under_the_reference_rule(
        tmp_path / "runs" / "unet-bce-s0", [*every_2, None, 0.83], val_every=2
    )  # validations 0.5 .. 0.83: the last 4 (0.81-0.83) gain 0.03 on 0.8: still improving
    assert _converged_runs(tmp_path) == "11 of 12"


def test_an_earlier_flag_without_a_log_to_replay_is_kept(tmp_path: Path):
    write_benchmark(tmp_path)
    _finished_under_the_reference_rule(tmp_path / "runs" / "unet-bce-s0", [], converged=False)
    _finished_under_the_reference_rule(tmp_path / "runs" / "unet-bce-s1", [], converged=True)
    summary = build_benchmark_report(tmp_path).summary.read_text()
    assert "11 of 12 finished runs converged" in summary
    assert "record no convergence" not in summary


def test_a_run_finished_under_the_earlier_rule_is_judged_again_from_its_log(
    tmp_path: Path,
) -> None:
    write_benchmark(tmp_path)
    # the best of the last 4 rose 0.006 above the best before: converged by the gain rule
    creeping = [0.5, 0.898, 0.905, 0.907, 0.902, 0.913, 0.913, 0.913]
    _finished_under_the_reference_rule(tmp_path / "runs" / "unet-bce-s0", creeping)
    # 0.88 - 0.86 = 0.02 in the last 4: still improving by either rule
    rising = [0.5, 0.8, 0.85, 0.86, 0.87, 0.872, 0.875, 0.88]
    _finished_under_the_reference_rule(tmp_path / "runs" / "unet-bce-s1", rising)
    summary = build_benchmark_report(tmp_path).summary.read_text()
    part = summary.split("## Convergence")[1].split("## Details")[0]
    assert "11 of 12 finished runs converged" in part
    assert "| unet-bce-s1 |" in part and "| unet-bce-s0 |" not in part


def test_a_run_that_learned_nothing_is_flagged(tmp_path: Path) -> None:
    write_benchmark(tmp_path)
    folder = tmp_path / "runs" / "unet-dice-s0"
    rows = (folder / "per_case_test.csv").read_text().splitlines()
    zero = [rows[0]] + [",".join([r.split(",")[0], "10", "0", "0", "1000", "39960", "0.0"])
                        for r in rows[1:]]  # fmt: skip
    (folder / "per_case_test.csv").write_text("\n".join(zero) + "\n")
    part = build_benchmark_report(tmp_path).summary.read_text().split("## Details")[0]
    assert "Caution: unet: 1 of 6 learned nothing (per-case test Dice < 0.1)" in part
    assert "1 failed to learn (mean per-case test Dice below 0.1)" in part
    assert "| unet-dice-s0 | 0.000 |" in part


def test_report_html_is_self_contained(fake_benchmark: Path) -> None:
    files = build_benchmark_report(fake_benchmark)
    parser = _Collector()
    parser.feed(files.html.read_text())
    assert parser.headings[:2] == ["CALF benchmark report", SECTION_TITLES[0]]
    for title in (*SECTION_TITLES, *DETAIL_TITLES):
        assert title in parser.headings
    # forest plot + learning curves and qualitative examples of 2 models
    assert len(parser.sources) == len(files.figures) == 5
    assert all(src.startswith("data:image/png;base64,") for src in parser.sources)
    assert parser.links == []
    assert '<td class="better">better</td>' in files.html.read_text()


def test_report_of_no_runs_still_has_every_section(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    files = build_benchmark_report(tmp_path)
    summary = files.summary.read_text()
    assert all(f"## {title}" in summary for title in SECTION_TITLES)
    assert "No finished runs." in summary
    assert files.figures == ()
    assert (tmp_path / "verdicts.csv").read_text().startswith("model,loss,baseline,")


# -- provenance: the report names how its runs were made ----------------------------------


def _record(config: dict, digest: str, *, epochs: int = 3) -> dict:
    """A provenance record as train_run writes it (calfseg.train.provenance)."""
    return {
        "format": "calfseg.provenance/1",
        "calfseg_version": "0.1.0",
        "cache": {"path": "/data/cache/brats", "digest": digest},
        "fingerprint": {"count": 100, "skewness": 1.234, "kurtosis": 5.678, "branch": "log10"},
        "config": {**config, "epochs": epochs, "batch_size": 16, "lr": 0.001},
        "config_hash": "0" * 16,
    }


def _with_provenance(out: Path, change=lambda name: {}) -> Path:
    write_benchmark(out)
    for folder in sorted((out / "runs").iterdir()):
        config = json.loads((folder / "config.json").read_text())
        record = {**_record(config, "ab12cd34ef567890"), **change(folder.name)}
        (folder / "provenance.json").write_text(json.dumps(record))
    return out


def test_the_report_names_cache_fingerprint_settings_and_version(tmp_path: Path) -> None:
    files = build_benchmark_report(_with_provenance(tmp_path))
    summary = files.summary.read_text()
    for row in (
        "| cache | /data/cache/brats |",
        "| cache digest | ab12cd34ef567890 |",
        "| fingerprint (train split) | S +1.234, K +5.678 -> log10 (100 train areas) |",
        "| epochs | 3 |",
        "| batch size | 16 |",
        "| learning rate | 0.001 |",
        "| model preset | tiny |",
        "| seeds | 0, 1 |",
        "| calf-seg version | 0.1.0 |",
    ):
        assert row in summary, row
    assert MIXED_TITLE not in summary
    assert "ab12cd34ef567890" in files.html.read_text()


def test_mixed_provenance_is_said_at_the_top(tmp_path: Path) -> None:
    def change(name: str) -> dict:
        if name.startswith("fpn-calf"):  # 2 runs: other epochs and another cache
            config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
            return _record(config, "ffff0000ffff0000", epochs=5)
        return {}

    files = build_benchmark_report(_with_provenance(tmp_path, change))
    summary = files.summary.read_text()
    headings = [line for line in summary.splitlines() if line.startswith("## ")]
    assert headings[:2] == [f"## {SECTION_TITLES[0]}", f"## {MIXED_TITLE}"]
    first = summary.split(f"## {MIXED_TITLE}")[0]
    assert "**Warning: the runs were not all made the same way" in first
    assert "cache digest: ab12cd34ef567890 (10 runs), ffff0000ffff0000 (2 runs)" in summary
    assert "epochs: 3 (10 runs), 5 (2 runs)" in summary
    assert "| epochs | mixed: 3 (10 runs), 5 (2 runs) |" in summary
    parser = _Collector()
    parser.feed(files.html.read_text())
    assert parser.headings[2] == MIXED_TITLE  # right after the verdicts


def test_runs_without_provenance_are_reported_as_not_recorded(fake_benchmark: Path) -> None:
    summary = build_benchmark_report(fake_benchmark).summary.read_text()
    assert "| cache digest | not recorded |" in summary
    assert "| epochs | 3 |" in summary  # from config.json
    assert "12 run(s) record no provenance" in summary


def test_a_model_trained_with_one_seed_gets_a_caution_about_training_variance(
    tmp_path: Path,
) -> None:
    # unet with both seeds, fpn with seed 0 only: only fpn's verdicts rest on one training run
    for loss in ("bce", "dice", "calf"):
        for seed in SEEDS:
            write_run(tmp_path, "unet", loss, seed)
        write_run(tmp_path, "fpn", loss, SEEDS[0])
    summary = build_benchmark_report(tmp_path).summary.read_text()
    verdicts_part = summary.split("## Convergence")[0]
    assert "Caution: one seed (fpn). Its intervals cover the variation between cases" in (
        verdicts_part
    )
    # the verdict itself says what one seed cannot see, in the sentence and the table
    assert "for this one training seed; another seed may say otherwise" in verdicts_part
    assert "| fpn | calf | equivalent (one seed: blind to training noise) |" in verdicts_part
    assert "| unet | calf | better |" in verdicts_part
    assert "Rerun with --seeds 3" in verdicts_part


def test_no_one_seed_caution_when_every_model_has_several_seeds(fake_benchmark: Path) -> None:
    summary = build_benchmark_report(fake_benchmark).summary.read_text()
    assert "one seed" not in summary


def _with_control(out: Path, shift: float) -> Path:
    """The fake benchmark plus a unet A/A control: bce's per-case counts under seed s + 1000
    moved by ``shift`` Dice (0: the control is bce again, as it should be)."""
    from calfseg.bench.grid import CONTROL_LOSS, CONTROL_SEED_OFFSET

    write_benchmark(out)
    for seed in SEEDS:
        source = out / "runs" / f"unet-bce-s{seed}"
        folder = write_run(out, "unet", CONTROL_LOSS, seed + CONTROL_SEED_OFFSET)
        rows = list(csv.DictReader((source / "per_case_test.csv").open()))
        with (folder / "per_case_test.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for i, row in enumerate(rows):
                jitter = 0.004 * ((i + seed) % 3 - 1)  # runs differ a little
                tp = round(int(row["tp"]) + (shift + jitter) * TRUE_AREA)
                miss = TRUE_AREA - tp
                writer.writerow({**row, "tp": tp, "fp": miss, "fn": miss})
    return out


def test_the_control_and_the_resolution_are_stated_above_the_table(tmp_path: Path) -> None:
    files = build_benchmark_report(_with_control(tmp_path / "a", 0.0))
    control = next(v for v in files.verdicts if v.loss == "bce-control")
    assert control.ci_low is not None and control.ci_high is not None
    assert control.ci_low <= 0 <= control.ci_high
    verdicts_part = files.summary.read_text().split("## Convergence")[0]
    assert "A/A control (bce-control: BCE again, under other seeds" in verdicts_part
    assert "which contains 0, as it must" in verdicts_part
    width = (control.ci_high - control.ci_low) / 2
    assert f"larger than about ±{width:.3f} per-case Dice (the half-width of the A/A" in (
        verdicts_part
    )
    assert "| unet | bce-control |" in verdicts_part
    # the control is not a comparison: Holm adjusts the losses without it
    unet = [v for v in files.verdicts if v.model == "unet" and v.loss != "bce-control"]
    assert control.p_holm is None and all(v.p_holm is not None for v in unet)


def test_a_control_that_misses_zero_says_the_runs_disagree(tmp_path: Path) -> None:
    files = build_benchmark_report(_with_control(tmp_path / "b", 0.05))
    control = next(v for v in files.verdicts if v.loss == "bce-control")
    assert control.ci_low is not None and control.ci_low > 0
    summary = files.summary.read_text()
    assert "does NOT contain 0: runs of one recipe disagree more than the intervals" in summary


def test_the_learning_curve_keeps_each_runs_best_so_far() -> None:
    from calfseg.bench.figures import _best_so_far

    curve = {1: 0.2, 2: 0.5, 3: 0.4, 5: 0.6}  # validated at epochs 1, 2, 3 and 5
    got = _best_so_far(curve, [1, 2, 3, 4, 5, 6, 7])
    assert got == [0.2, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6]  # stopped after 5: its best stays
    assert np.isnan(_best_so_far({3: 0.1}, [1, 3])[0])


def test_the_resolution_sentence_names_the_control_and_the_losses_half_widths() -> None:
    from calfseg.bench.report import _resolution_sentence
    from calfseg.bench.stats import Verdict

    def row(loss: str, low: float, high: float) -> Verdict:
        return Verdict("unet", loss, "bce", "dice", "case", 48, (low + high) / 2, low, high,
                       0.01, "inconclusive", 3)  # fmt: skip

    control = row("bce-control", -0.02, 0.02)
    one = _resolution_sentence([control, row("calf", -0.01, 0.05)], 0.01)
    assert one is not None and "about ±0.020 per-case Dice" in one
    assert "the loss's half-width is ±0.030" in one and "run from" not in one
    two = _resolution_sentence([control, row("calf", -0.01, 0.05), row("combo", 0.0, 0.01)], 0.01)
    assert two is not None and "half-widths run from ±0.005 to ±0.030" in two
    alone = _resolution_sentence([row("calf", -0.004, 0.004)], 0.01)
    assert alone is not None and "about ±0.004" in alone and "equivalence can be shown" in alone

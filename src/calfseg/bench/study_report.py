"""Run ``calf study rule`` and write what it found: rule.csv, and study.md / study.html
(the finding in words, one table of datasets x losses with the rule's pick marked, one
figure, and per dataset the numbers behind it). The plan and the numbers are
:mod:`calfseg.bench.study`'s."""

from __future__ import annotations

import csv
from dataclasses import replace
from typing import Any

from calfseg.atomic import atomic_text, atomic_write_text
from calfseg.bench.document import Block, Figure, Paragraph, Section, Table, to_html, to_markdown
from calfseg.bench.figures import forest_plot
from calfseg.bench.runner import run_benchmark
from calfseg.bench.stats import FAILED_TO_LEARN, VERDICTS, Verdict
from calfseg.bench.study import (
    FIGURE_PNG,
    INCOMPLETE,
    NO_PICK,
    PICK,
    REGRET,
    REGRET_CONFIDENCE,
    RULE_COLUMNS,
    RULE_CSV,
    STUDY_HTML,
    STUDY_LOSSES,
    STUDY_MD,
    STUDY_TITLE,
    DatasetResult,
    RuleRow,
    RuleStudy,
    dataset_result,
    loss_of_run,
)

CLASSES = {v: v for v in VERDICTS} | {PICK: "equivalent"}


def run_rule_study(
    study: RuleStudy,
    *,
    progress: bool = True,
    overwrite: bool = False,
    execution: Any = None,
    train_fn: Any = None,
    make_config: Any = None,
) -> list[DatasetResult]:
    """Run every dataset's benchmark (finished runs are kept, stale ones refused unless
    ``overwrite``; the options are :func:`calfseg.bench.run_benchmark`'s), then write
    rule.csv and the study report; returns the results."""
    for label, config in study.benchmarks():
        if progress:
            print(f"calf study rule: dataset {label} -> {config.out}", flush=True)
        run_benchmark(
            config, train_fn=train_fn, make_config=make_config, progress=progress,
            overwrite=overwrite, execution=execution, report=False,
        )  # fmt: skip
    return write_study(study)


def write_study(study: RuleStudy) -> list[DatasetResult]:
    """Collect each dataset's runs and write ``rule.csv``, ``study.md`` and ``study.html``."""
    results = [dataset_result(label, config, study.margin) for label, config in study.benchmarks()]
    study.out.mkdir(parents=True, exist_ok=True)
    with atomic_text(study.out / RULE_CSV) as handle:
        writer = csv.writer(handle)
        writer.writerow(RULE_COLUMNS)
        writer.writerows(row.cells() for result in results for row in result.rows)
    sections = study_sections(results, study)
    atomic_write_text(study.out / STUDY_MD, to_markdown(STUDY_TITLE, sections, study.out))
    atomic_write_text(study.out / STUDY_HTML, to_html(STUDY_TITLE, sections))
    return results


def study_sections(results: list[DatasetResult], study: RuleStudy) -> list[Section]:
    losses = [loss for loss in STUDY_LOSSES if any(r.loss == loss for d in results for r in d.rows)]
    header = ("dataset", "S", "K", "rule's pick", *losses, "regret: challenger - pick")
    cells = []
    for d in results:
        by = {r.loss: r for r in d.rows}
        first = d.rows[0]
        row = [d.label, f"{first.skewness:+.2f}", f"{first.kurtosis:+.2f}", first.rule_branch]
        for loss in losses:
            r = by.get(loss)
            if r is None:
                row.append("–")
            elif r.verdict == PICK:
                row.append(f"PICK {_num(r.mean_dice)}")
            else:
                row.append(f"{_num(r.diff_vs_pick, sign=True)} {r.verdict}")
        regret = by[REGRET]
        best = f" ({regret.challenger})" if regret.challenger else ""
        row.append(f"{_num(regret.diff_vs_pick, sign=True)} {_ci(regret)} {regret.verdict}{best}")
        cells.append(tuple(row))
    figure = forest_plot(
        [
            replace(_as_verdict(r, study.margin), model=f"{d.label}: pick {r.rule_branch}")
            for d in results
            for r in d.rows
            if r.loss not in (REGRET,) and r.verdict != PICK
        ],
        study.margin,
        study.out / FIGURE_PNG,
    )
    blocks: list[Block] = [Paragraph(finding(results), lead=True)]
    blocks.append(Table(header, tuple(cells), CLASSES))
    blocks.append(Paragraph(_how_to_read(study)))
    if figure is not None:
        blocks.append(
            Figure(
                figure,
                "Per dataset: each loss's per-case Dice minus the rule's pick, mean and 95 % "
                f"interval; grey: the ±{study.margin:g} equivalence margin",
            )
        )
    sections = [Section("The answer", blocks)]
    for d in results:
        sections.append(Section(d.label, _dataset_blocks(d), 3))
    return sections


def finding(results: list[DatasetResult]) -> str:
    """The finding in plain words: on how many datasets the pick was the best fixed branch,
    equivalent to the best, beaten by one, or undecided; CALF per batch against its
    dataset-level pick; and what weakens the answer (failed runs, one seed, runs that
    learned nothing, calf-dataset fitting another branch than the rule's pick)."""
    n = len(results)
    regrets = [d.regret for d in results]

    def named(verdict: str, best: bool = False) -> list[str]:
        return [
            f"{r.dataset} ({r.challenger})" if best else r.dataset
            for r in regrets
            if r.verdict == verdict
        ]

    groups = [  # (what, the datasets, said even when none)
        ("the pick beat the best of the other five fixed branches", named("worse", True), True),
        ("the best other branch was within the margin of the pick (equivalent)",
         named("equivalent", True), False),
        ("a fixed branch beat the pick", named("better", True), True),
        ("the data could not decide (inconclusive)", named("inconclusive", True), False),
        ("runs are missing or failed (incomplete)", named(INCOMPLETE), False),
        ("the pick has no finished runs", named(NO_PICK), False),
    ]  # fmt: skip
    parts = [
        f"on {len(names)} of {n}: {text}" + (f" ({', '.join(names)})" if names else "")
        for text, names, always in groups
        if names or always
    ]
    text = (
        "The best of the other fixed branches against the rule's pick (the challenger, in "
        "brackets), " + "; ".join(parts) + "."
    )
    calf = [d.calf_vs_dataset for d in results if d.calf_vs_dataset is not None]
    if calf:
        tally = {v: sum(c.verdict == v for c in calf) for v in VERDICTS}
        said = ", ".join(f"{k} on {tally[k]}" for k in VERDICTS if tally[k])
        text += f" CALF re-picked per batch (the paper) against calf-dataset: {said}."
    return text + "".join(_cautions(results))


def _cautions(results: list[DatasetResult]) -> list[str]:
    out = []
    weak = [f"{d.label}: {_runs_by_loss(d)}" for d in results if d.learned_nothing]
    if weak:
        out.append(
            f" Runs that learned nothing (mean per-case test Dice below {FAILED_TO_LEARN:g}), "
            f"a loss's Dice then mixes working and failed runs: {'; '.join(weak)}."
        )
    broken = [f"{d.label}: {len(d.failed)} failed, {len(d.missing)} missing" for d in results
              if d.failed or d.missing]  # fmt: skip
    if broken:
        out.append(f" Caution: runs failed or are missing ({'; '.join(broken)}).")
    if any(r.n_seeds == 1 for d in results for r in d.rows):
        out.append(
            " Caution: one seed: the intervals see the cases, not the training noise; "
            "another seed may say otherwise."
        )
    other = [
        f"{d.label} ({', '.join(sorted(set(d.dataset_picks)))})"
        for d in results
        if d.dataset_picks and set(d.dataset_picks) != {d.rows[0].rule_branch}
    ]
    if other:
        out.append(
            " Note: calf-dataset, fitted on each fold's training rows, picked another branch "
            f"than the rule over the whole cache on {'; '.join(other)}."
        )
    return out


def _runs_by_loss(d: DatasetResult) -> str:
    """``branch-fisher 2 runs, calf 1 run``: per loss, its runs that learned nothing."""
    counts: dict[str, int] = {}
    for name in d.learned_nothing:
        counts[loss_of_run(name)] = counts.get(loss_of_run(name), 0) + 1
    return ", ".join(f"{loss} {n} run{'s' if n > 1 else ''}" for loss, n in counts.items())


def _dataset_blocks(d: DatasetResult) -> list[Block]:
    first = d.rows[0]
    text = (
        f"S = {first.skewness:+.3f}, K = {first.kurtosis:+.3f} (calf analyze CACHE: every "
        f"row of the cache): the rule picks {first.rule_branch} (branch-{first.rule_branch})."
        + (
            f" calf-dataset, fitted on each fold's training rows, trained with "
            f"{', '.join(sorted(set(d.dataset_picks)))}."
            if d.dataset_picks
            else ""
        )
        + (
            f" Runs that learned nothing (mean per-case test Dice below {FAILED_TO_LEARN:g}): "
            f"{_runs_by_loss(d)}; such a loss's mean mixes working and failed runs."
            if d.learned_nothing
            else ""
        )
        + (f" Failed runs: {', '.join(d.failed)}." if d.failed else "")
        + (f" Missing runs: {', '.join(d.missing)}." if d.missing else "")
    )
    header = (
        "loss", "mean per-case Dice", "95 % interval", "diff vs pick", "95 % interval",
        "verdict", "cases", "seeds",
    )  # fmt: skip
    cells = tuple(
        (
            r.loss + (f" ({r.challenger} - pick)" if r.loss == REGRET and r.challenger else ""),
            _num(r.mean_dice),
            _pair(r.dice_low, r.dice_high),
            _num(r.diff_vs_pick, sign=True),
            _ci(r),
            r.verdict,
            str(r.n_units),
            str(r.n_seeds),
        )
        for r in d.rows
    )
    blocks: list[Block] = [Paragraph(text), Table(header, cells, CLASSES)]
    v = d.calf_vs_dataset
    if v is not None:
        blocks.append(
            Paragraph(
                f"calf (per batch) minus calf-dataset: {_num(v.mean_diff, sign=True)}, 95 % "
                f"interval {_pair(v.ci_low, v.ci_high)}: {v.verdict}."
            )
        )
    return blocks


def _how_to_read(study: RuleStudy) -> str:
    return (
        "Cells: the rule's pick (PICK, its mean per-case Dice) and every other loss's mean "
        "per-case Dice minus the pick's, with the benchmark's verdict (calf benchmark's "
        "interval and rule, the pick as the baseline; margin "
        f"±{study.margin:g}). Regret: the fixed branch other than the pick with the largest "
        "mean difference to it (the challenger) minus the pick, its interval at "
        f"{100 * REGRET_CONFIDENCE:g} % (Bonferroni over the five branches it was chosen "
        "from, on the same cases) and the verdict rule: 'worse' (the pick beat them all) "
        "or 'equivalent' speak for the rule, 'better' against it; the regret itself is "
        "max(0, difference). The pick is calf analyze's over every row of "
        "the cache; calf-dataset fits its own on each fold's training rows. branch-log10 is "
        "branch-ln divided by ln 10, which Adam nearly ignores: expect those two to agree. "
        "rule.csv has every number."
    )


def _as_verdict(r: RuleRow, margin: float) -> Verdict:
    return Verdict(
        r.dataset, r.loss, "the rule's pick", "dice", "case", r.n_units,
        r.diff_vs_pick, r.ci_low, r.ci_high, margin, r.verdict, n_seeds=r.n_seeds,
    )  # fmt: skip


def _num(value: float | None, *, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _pair(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "–"
    return f"{low:+.3f} to {high:+.3f}"


def _ci(r: RuleRow) -> str:
    return f"[{_pair(r.ci_low, r.ci_high)}]"

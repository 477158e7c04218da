"""Build the benchmark report from the run folders alone: results.csv, per_image.csv,
per_case.csv, verdicts.csv, summary.md, figures/*.png and one self-contained report.html
with the same sections.

The report answers first: its first section is the verdict of each loss against BCE
(the table of verdicts.csv and a forest plot), then whether the runs converged and
learned, then the details (how the runs were made, the test metrics, CALF's branches,
Dice by lesion size, examples). The statistics are :mod:`calfseg.bench.stats`'s.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import calfseg.run_files as files
from calfseg.atomic import atomic_text, atomic_write_text
from calfseg.bench import figures
from calfseg.bench.collect import ResultsTable, collect_results
from calfseg.bench.convergence import Convergence, convergence
from calfseg.bench.document import (
    Block,
    Figure,
    Paragraph,
    Section,
    Table,
    to_html,
    to_markdown,
)
from calfseg.bench.errors import BenchmarkError
from calfseg.bench.grid import CONTROL_LOSS, RUNS_FOLDER
from calfseg.bench.settings import RunSettings, run_settings
from calfseg.bench.stats import (
    BASELINE,
    DEFAULT_MARGIN,
    FAILED_TO_LEARN,
    MIN_STRATUM_CASES,
    TOO_FEW,
    VERDICT_COLUMNS,
    VERDICTS,
    Verdict,
    branch_usage,
    case_means,
    case_scores,
    run_means,
    stratified_verdicts,
    verdicts,
)

TITLE = "CALF benchmark report"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"
VERDICTS_CSV = "verdicts.csv"
FIGURES_FOLDER = "figures"
FOREST_PNG = "forest.png"
BRANCHES = ("fisher", "logit", "arcsine", "log10", "ln", "bce_dice")
# (metric, reduction, header) of the details' metric table: means over runs
METRIC_COLUMNS = (
    ("dice", "pooled", "Dice (pooled)"),
    ("dice", "per_image", "Dice (per image)"),
    ("dice", "paper_batch_pooled", "Dice (paper: batch-pooled)"),
    ("sensitivity", "pooled", "Sensitivity (pooled)"),
    ("precision", "pooled", "Precision (pooled)"),
    ("hd95_mm", "per_case", "HD95 mm (per case, 3D)"),
    ("assd_mm", "per_case", "ASSD mm (per case, 3D)"),
    ("hd95_mm", "per_image", "HD95 mm (per slice)"),
)
MIXED_TITLE = "Warning: mixed provenance"  # right after the verdicts, only when it applies
SECTION_TITLES = ("Verdicts against BCE", "Convergence", "Details")
STRATA_TITLE = "Verdicts by lesion volume"
DETAIL_TITLES = (
    "Setup",
    "Test metrics",
    "CALF branch usage",
    "Dice by lesion size",
    "Qualitative examples",
)
VERDICT_CLASSES = {v: v for v in (*VERDICTS, TOO_FEW)}

Means = dict[tuple[str, str, str, str, str], tuple[float, int]]


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    html: Path
    figures: tuple[Path, ...]
    table: ResultsTable
    verdicts_csv: Path | None = None
    verdicts: tuple[Verdict, ...] = ()


def build_benchmark_report(
    out: str | Path, *, only: Collection[str] | None = None, margin: float | None = None
) -> ReportFiles:
    """Collect the finished runs of ``out`` (or only the run names in ``only``) and write
    every report file there; ``margin`` is the equivalence margin of the verdicts
    (default :data:`DEFAULT_MARGIN`)."""
    out = Path(out)
    margin = DEFAULT_MARGIN if margin is None else float(margin)
    table = collect_results(out, only=only)
    if table.unfinished:
        names = ", ".join(table.unfinished[:5]) + (" ..." if len(table.unfinished) > 5 else "")
        raise BenchmarkError(
            f"{len(table.unfinished)} run(s) under {out / RUNS_FOLDER} have neither "
            f"{files.DONE} nor {files.FAILED} (interrupted): {names}; finish them with the "
            "calf benchmark command that started them (it resumes), or move them out of "
            "runs/, then report; verdicts on the finished runs alone would drop their cases"
        )
    rows = verdicts(table, margin)
    strata = stratified_verdicts(table, margin) if rows else []
    verdicts_csv = write_verdicts(out / VERDICTS_CSV, rows + strata)
    fig_dir = out / FIGURES_FOLDER
    drawn: list[Path] = []

    def figure(path: Path | None, caption: str) -> list[Figure]:
        if path is None:
            return []
        drawn.append(path)
        return [Figure(path, caption)]

    control = (
        f"; {CONTROL_LOSS}: BCE under other seeds, whose interval must contain 0"
        if any(v.loss == CONTROL_LOSS for v in rows)
        else ""
    )
    forest = figure(
        figures.forest_plot(rows, margin, fig_dir / FOREST_PNG),
        f"Per-case Dice difference to {BASELINE.upper()} with its 95 % interval; grey: the "
        f"±{margin:g} equivalence margin{control}",
    )
    curves: list[Block] = []
    qualitative: list[Block] = []
    for model in table.models:
        lines = figures.learning_curves(table, model, fig_dir / f"curves-{model}.png")
        curves += figure(lines, f"{model}: validation Dice per epoch")
        grid = figures.qualitative_grid(table, model, fig_dir / f"qualitative-{model}.png")
        qualitative += figure(grid, f"{model}: smallest-lesion test slices")
    settings = run_settings(table)
    trained = convergence(table)
    sections = [
        _verdict_section(table, rows, margin, forest, settings, trained),
        *_mixed_section(settings),
        *_strata_section(strata),
        _convergence_section(table, trained, curves),
        Section(SECTION_TITLES[2], [Paragraph("What the verdicts rest on.")]),
        _setup(table, settings),
        _metrics_section(table),
        _branch_section(table),
        _size_section(table),
        Section(DETAIL_TITLES[4], qualitative or [Paragraph("No data in the run folders.")], 3),
    ]
    summary = out / SUMMARY_MD
    atomic_write_text(summary, to_markdown(TITLE, sections, out))
    report = out / REPORT_HTML
    atomic_write_text(report, to_html(TITLE, sections))
    return ReportFiles(summary, report, tuple(drawn), table, verdicts_csv, tuple(rows))


def write_verdicts(path: Path, rows: list[Verdict]) -> Path:
    """``verdicts.csv``: :data:`calfseg.bench.stats.VERDICT_COLUMNS`, one row per verdict
    (``stratum`` ``all`` over every case, then the lesion-volume strata)."""
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(VERDICT_COLUMNS)
        writer.writerows(v.csv_cells() for v in rows)
    return path


def recorded_margin(out: str | Path) -> float | None:
    """The margin of an existing ``OUT/verdicts.csv`` (``calf report`` keeps it), or None
    when there is none or its rows disagree."""
    path = Path(out) / VERDICTS_CSV
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        margins = {row.get("margin") for row in csv.DictReader(handle)}
    if len(margins) != 1:
        return None
    try:
        return float(margins.pop() or "")
    except ValueError:
        return None


# -- formatting ----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"


def _ci(v: Verdict) -> str:
    if v.verdict == TOO_FEW:
        return f"none (< {MIN_STRATUM_CASES} cases)"
    if v.ci_low is None or v.ci_high is None:
        return "none (n < 2)" if v.n_units < 2 else "–"
    return f"{v.ci_low:+.3f} to {v.ci_high:+.3f}"


# -- 1. verdicts ---------------------------------------------------------------------------


def _verdict_section(
    table: ResultsTable,
    rows: list[Verdict],
    margin: float,
    forest: list[Figure],
    settings: RunSettings,
    trained: Convergence,
) -> Section:
    blocks: list[Block] = []
    if settings.mixed:
        blocks.append(
            Paragraph(
                f"Warning: the runs were not all made the same way (see {MIXED_TITLE!r} "
                "below); these verdicts compare unlike runs.",
                lead=True,
            )
        )
    if not rows:
        reason = (
            "No finished runs."
            if not table.runs
            else f"No verdicts: a verdict needs {BASELINE} runs and runs of another loss of "
            f"the same model, each with {files.per_case_table(files.TEST_SPLIT)}."
        )
        return Section(SECTION_TITLES[0], [*blocks, Paragraph(reason)])
    blocks += [Paragraph(_answer(table, rows, model), lead=True) for model in _models(rows)]
    for note in (_control_sentence(rows), _resolution_sentence(rows, margin)):
        if note:
            blocks.append(Paragraph(note, lead=True))
    for caution in (_caution(table, trained), _one_seed_caution(table)):
        if caution:
            blocks.append(Paragraph(caution, lead=True))
    header = (
        "model", "loss", "verdict", f"mean diff vs {BASELINE}", "95 % interval",
        "half-width", "cases", "seeds", "would decide it", "p (Wilcoxon, Holm)",
    )  # fmt: skip
    cells = tuple(
        (
            v.model,
            v.loss,
            _verdict_words(v),
            _fmt(v.mean_diff, 3, sign=True),
            _ci(v),
            _fmt(v.half_width, 3),
            str(v.n_units),
            str(v.n_seeds),
            _needed(v),
            _p(v.p_holm),
        )
        for v in rows
    )
    blocks.append(Table(header, cells, VERDICT_CLASSES))
    blocks += forest
    blocks.append(Paragraph(_how_to_read(table, margin)))
    return Section(SECTION_TITLES[0], blocks)


def _strata_section(strata: list[Verdict]) -> list[Section]:
    """The verdicts within the lesion-volume strata of the cases, with the cases behind
    each (the mean hides what small lesions and empty cases do)."""
    if not strata:
        return []
    header = (
        "model", "loss", "cases", "stratum", "verdict", f"mean diff vs {BASELINE}",
        "95 % interval", "half-width",
    )  # fmt: skip
    cells = tuple(
        (v.model, v.loss, str(v.n_units), v.stratum, _verdict_words(v),
         _fmt(v.mean_diff, 3, sign=True), _ci(v), _fmt(v.half_width, 3))
        for v in strata
    )  # fmt: skip
    text = (
        "The same paired analysis within groups of cases, by the true lesion volume of the "
        "case (TP + FN over its test slices): empty (no lesion: there a case scores 1 "
        "without a predicted voxel and 0 with one, so the difference is one in false "
        "alarms), then small, medium and large, the tertiles of the other cases' volumes. "
        f"A stratum with fewer than {MIN_STRATUM_CASES} cases (the smallest design the "
        f"interval's coverage was measured at) gets no interval: {TOO_FEW}. These rows "
        "describe where a difference comes from; the overall row above decides."
    )
    return [Section(STRATA_TITLE, [Paragraph(text), Table(header, cells, VERDICT_CLASSES)], 3)]


def _caution(table: ResultsTable, trained: Convergence) -> str | None:
    """One sentence naming, per model, the runs behind the verdicts that did not converge
    or learned nothing: the verdicts of such runs say little about the losses."""
    parts = []
    for model in table.models:
        n = sum(r.model == model for r in table.runs)
        late = sum(r.model == model for r in trained.unconverged)
        empty = sum(r.model == model for r, _ in trained.failed_to_learn)
        said = [f"{late} of {n} runs did not converge"] if late else []
        if empty:
            said.append(
                f"{empty} of {n} learned nothing (per-case test Dice < {FAILED_TO_LEARN:g})"
            )
        if said:
            parts.append(f"{model}: " + " and ".join(said))
    if not parts:
        return None
    return "Caution: " + "; ".join(parts) + ". See Convergence before trusting these verdicts."


def _one_seed_caution(table: ResultsTable) -> str | None:
    """With one seed per model, the interval sees the cases but not the training run: a
    rerun that differs only in its seed, or in the last bits of its arithmetic (another
    thread count), can move a difference by more than its interval."""
    single = [
        m for m in table.models
        if len({r.seed for r in table.runs if r.model == m and r.loss != CONTROL_LOSS}) == 1
    ]  # fmt: skip
    if not single:
        return None
    return (
        f"Caution: one seed ({', '.join(single)}). Its intervals cover the variation "
        "between cases, not between training runs; a run that differs only in its seed can "
        "move a difference by more than its interval. Rerun with --seeds 3 (or more) before "
        "acting on a 'better' or 'worse'."
    )


ONE_SEED = "one seed: blind to training noise"


def _verdict_words(v: Verdict) -> str:
    """The verdict, and with one seed what it cannot see, in its own words."""
    return f"{v.verdict} ({ONE_SEED})" if v.n_seeds == 1 else v.verdict


def _needed(v: Verdict) -> str:
    """What would decide an inconclusive row: cases at these seeds, seeds at these cases."""
    parts = []
    if v.cases_needed is not None:
        parts.append(f"~{v.cases_needed} cases")
    if v.seeds_needed is not None:
        parts.append(f"~{v.seeds_needed} seeds")
    if v.verdict == "inconclusive" and not parts:
        return "neither alone"
    return " or ".join(parts) or "–"


def _control_sentence(rows: list[Verdict]) -> str | None:
    """Whether the A/A control (BCE under other seeds) agrees with BCE, per model."""
    parts = []
    for v in rows:
        if v.loss != CONTROL_LOSS or v.ci_low is None or v.ci_high is None:
            continue
        inside = v.ci_low <= 0 <= v.ci_high
        verdict = (
            "contains 0, as it must: the runs agree with each other as far as the statistics assume"
            if inside
            else "does NOT contain 0: runs of one recipe disagree more than the intervals "
            "allow, so the other verdicts are too confident"
        )
        parts.append(
            f"{v.model}: {_fmt(v.mean_diff, 3, sign=True)}, 95 % interval {_ci(v)}, which {verdict}"
        )
    if not parts:
        return None
    return (
        f"A/A control ({CONTROL_LOSS}: BCE again, under other seeds; its true difference "
        "is 0): " + "; ".join(parts) + "."
    )


def _resolution_sentence(rows: list[Verdict], margin: float) -> str | None:
    """The smallest difference this benchmark could call: the A/A control's half-width
    (what the noise between runs of one recipe allows), else the median over the losses."""
    control = [v.half_width for v in rows if v.loss == CONTROL_LOSS and v.half_width is not None]
    widths = [v.half_width for v in rows if v.loss != CONTROL_LOSS and v.half_width is not None]
    if not control and not widths:
        return None
    if control:
        width, source = max(control), "the half-width of the A/A control's interval"
    else:
        width, source = float(np.median(widths)), "the median half-width of the intervals"
    decide = (
        f"inside the ±{margin:g} margin, so equivalence can be shown"
        if width <= margin
        else f"wider than the ±{margin:g} margin, so equivalence within it cannot be shown"
    )
    if len(widths) > 1:
        spread = f"; the losses' half-widths run from ±{min(widths):.3f} to ±{max(widths):.3f}"
    elif widths:
        spread = f"; the loss's half-width is ±{widths[0]:.3f}"
    else:
        spread = ""
    return (
        f"Resolution: this benchmark could call a difference larger than about ±{width:.3f} "
        f"per-case Dice ({source}){spread}; that is {decide}."
    )


def _models(rows: list[Verdict]) -> list[str]:
    return list(dict.fromkeys(v.model for v in rows))


def _answer(table: ResultsTable, rows: list[Verdict], model: str) -> str:
    """One sentence per model: CALF's verdicts first (the question the benchmark asks), then
    how many of the other losses fell in each verdict."""
    mine = [v for v in rows if v.model == model]
    calf = [v for v in mine if v.loss.startswith("calf")]
    parts = [_calf_phrase(v) for v in calf]
    others = [v for v in mine if not v.loss.startswith("calf") and v.loss != CONTROL_LOSS]
    if others:
        counts = [
            f"{verdict}: {', '.join(v.loss for v in others if v.verdict == verdict)}"
            for verdict in VERDICTS
            if any(v.verdict == verdict for v in others)
        ]
        parts.append(f"Other losses against {BASELINE.upper()}: " + "; ".join(counts))
    if not calf:
        parts.insert(0, "no CALF runs")
    base = case_means(case_scores(table), model, BASELINE)
    level = f" ({BASELINE.upper()}: mean per-case Dice {sum(base.values()) / len(base):.3f})"
    return f"{model}{level if base else ''}: " + ". ".join(parts) + "."


def _calf_phrase(v: Verdict) -> str:
    name, base = v.loss.upper(), v.baseline.upper()
    detail = (
        f"{_fmt(v.mean_diff, 3, sign=True)} per-case Dice, 95 % interval {_ci(v)}, "
        f"{v.n_units} cases x {v.n_seeds} seed{'' if v.n_seeds == 1 else 's'}"
    )
    scope = (
        " for this one training seed; another seed may say otherwise, and the interval "
        "cannot show by how much" if v.n_seeds == 1 else ""
    )  # fmt: skip
    if v.verdict == "better":
        return f"{name} beats {base}{scope} ({detail})"
    if v.verdict == "worse":
        return f"{name} is worse than {base}{scope} ({detail})"
    if v.verdict == "equivalent":
        return f"{name} is equivalent to {base} within ±{v.margin:g}{scope} ({detail})"
    needed = _needed(v)
    hint = f"; {needed} would decide it" if needed not in ("–", "neither alone") else ""
    return f"{name} vs {base} is inconclusive{scope} ({detail}{hint})"


def _how_to_read(table: ResultsTable, margin: float) -> str:
    folds = [f for f in table.folds if f is not None]
    cv = (
        f"{len(folds)}-fold patient-level cross-validation: every case tested once per seed by "
        "a model that never saw it"
        if folds
        else "the cache's own test split"
    )
    return (
        f"Unit: the case (patient). Per-case Dice = 2 TP / (2 TP + FP + FN) over all of a "
        f"case's test slices ({cv}), averaged over the seeds within each case; the "
        f"difference is loss minus {BASELINE} per case, each seed paired with the same "
        f"seed of {BASELINE}. 95 % interval: the generalized confidence interval of a "
        "crossed cases x training-runs design, which counts the spread between cases and "
        "between training runs (a run: a seed trained on a fold), with the few degrees of "
        "freedom a handful of seeds gives (calfseg.bench.interval; its coverage is "
        "measured by benchmarks/coverage.py). Verdict, in this order: equivalent if the "
        f"interval lies within ±{margin:g} (the margin), better if its lower end is above "
        "0, worse if its upper end is below 0, else inconclusive; 'would decide it' gives "
        "the cases (at these seeds) or seeds (at these cases) for which the interval's "
        "half-width would fall below the distance to the nearest decision, from the "
        "variance components. The Wilcoxon signed-rank test on the case differences, "
        "Holm-corrected over each model's losses, is secondary and decides nothing. The "
        "table is verdicts.csv."
    )


def _mixed_section(settings: RunSettings) -> list[Section]:
    """The provenance warning, right after the verdicts, when the runs disagree."""
    if not settings.mixed:
        return []
    text = (
        "The runs of this report were not all made the same way, so their numbers are not "
        "comparable as they stand: " + "; ".join(settings.mixed) + ". Rerun the benchmark "
        "with --overwrite (or into a new --out) to make them alike."
    )
    return [Section(MIXED_TITLE, [Paragraph(text)])]


# -- 2. convergence ------------------------------------------------------------------------


def _convergence_section(table: ResultsTable, found: Convergence, curves: list[Block]) -> Section:
    n = found.n_runs
    text = (
        f"{len(found.converged)} of {n} finished runs converged (the best validation per-case "
        "Dice of their last validations rose at most min_delta above the best before them)"
    )
    if found.not_recorded:
        text += f"; {len(found.not_recorded)} record no convergence (an older calf-seg)"
    text += (
        f". {len(found.failed_to_learn)} failed to learn (mean per-case test Dice below "
        f"{FAILED_TO_LEARN:g}). {len(table.failed)} failed with an error."
    )
    blocks: list[Block] = [Paragraph(text)]
    if found.unconverged:
        blocks.append(
            Paragraph("Not converged: the budget ended while still improving, or nothing learned.")
        )
        rows = tuple(
            (
                r.name,
                str(r.done.get("stop_reason", "–")),
                str(r.done.get("epochs_run", "–")),
                str(r.done.get("best_epoch", "–")),
                _number(r.done.get("best_val_case_dice")),
            )
            for r in found.unconverged
        )
        header = ("run", "stop reason", "epochs run", "best epoch", "best val case Dice")
        blocks.append(Table(header, rows))
    if found.failed_to_learn:
        blocks.append(Paragraph("Failed to learn: the verdicts of these models mean little."))
        learned = tuple((r.name, f"{dice:.3f}") for r, dice in found.failed_to_learn)
        blocks.append(Table(("run", "mean per-case test Dice"), learned))
    if table.failed:
        errors = tuple((name, error) for name, error in sorted(table.failed.items()))
        blocks.append(Table(("failed run", "error"), errors))
    blocks += curves
    return Section(SECTION_TITLES[1], blocks)


def _number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


# -- 3. details ----------------------------------------------------------------------------


def _settings_blocks(settings: RunSettings) -> list[Block]:
    made = Paragraph(f"How the runs were made (from their {files.PROVENANCE} and {files.CONFIG}):")
    blocks: list[Block] = [made, Table(("setting", "value"), settings.rows)]
    if settings.unrecorded:
        blocks.append(
            Paragraph(
                f"{settings.unrecorded} run(s) record no provenance (made by an older "
                "calf-seg): their cache and its digest are not known."
            )
        )
    return blocks


def _setup(table: ResultsTable, settings: RunSettings) -> Section:
    seeds = ", ".join(str(s) for s in table.seeds) or "none"
    folds = [f for f in table.folds if f is not None]
    text = (
        f"{len(table.runs)} finished runs: models {', '.join(table.models) or 'none'}; "
        f"losses {', '.join(table.losses) or 'none'}; seeds {seeds}; "
        + (f"{len(folds)} cross-validation folds." if folds else "no cross-validation.")
    )
    blocks = [Paragraph(text), *_loss_options(table), *_settings_blocks(settings)]
    return Section(DETAIL_TITLES[0], blocks, 3)


def _loss_options(table: ResultsTable) -> list[Paragraph]:
    """One sentence with each loss's options (``loss_options`` of the runs' config.json)."""
    found: dict[str, list[str]] = {}
    for run in table.runs:
        options = run.config.get("loss_options") or {}
        text = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(options.items()))
        if text and text not in found.setdefault(run.loss, []):
            found[run.loss].append(text)
    if not found:
        return []
    parts = [f"{loss}: {'; '.join(texts)}" for loss, texts in found.items()]
    return [Paragraph("Loss options: " + " | ".join(parts) + ".")]


def _metrics_section(table: ResultsTable) -> Section:
    means = run_means(table)
    scores = case_scores(table)
    blocks: list[Block] = [
        Paragraph(
            "Test metrics: Dice (per case) is the mean over cases of the seed-averaged "
            "per-case Dice the verdicts use; the other columns are means over the runs "
            f"(seeds and folds) of each run's {files.evaluation_report(files.TEST_SPLIT)}, for "
            "reference."
        )
    ]
    for model in table.models:
        columns = [
            c
            for c in METRIC_COLUMNS
            if any((model, loss, c[0], c[1], "") in means for loss in table.losses)
        ]
        rows = []
        for loss in table.losses:
            per_case = case_means(scores, model, loss)
            case_cell = (
                f"{sum(per_case.values()) / len(per_case):.3f} ({len(per_case)} cases)"
                if per_case
                else "–"
            )
            cells = [_mean_cell(means.get((model, loss, m, r, "")), m) for m, r, _ in columns]
            rows.append((loss, case_cell, *cells))
        header = ("loss", "Dice (per case)", *(h for _, _, h in columns))
        blocks += [Paragraph(f"{model}:"), Table(header, tuple(rows))]
    return Section(DETAIL_TITLES[1], blocks, 3)


def _mean_cell(found: tuple[float, int] | None, metric: str) -> str:
    if found is None:
        return "–"
    return f"{found[0]:.{2 if metric.endswith('_mm') else 3}f}"


def _branch_section(table: ResultsTable) -> Section:
    usage = branch_usage(table)
    if not usage:
        return Section(DETAIL_TITLES[2], [Paragraph("No run logged CALF branch shares.")], 3)
    names = list(BRANCHES) + sorted({b for s in usage.values() for b in s} - set(BRANCHES))
    rows = []
    for model in table.models:
        for loss in table.losses:
            runs = [r.name for r in table.runs if (r.model, r.loss) == (model, loss)]
            shares = [usage[name] for name in runs if name in usage]
            if not shares:
                continue
            cells = (
                f"{100 * sum(s.get(b, 0.0) for s in shares) / len(shares):.1f} %"
                if any(b in s for s in shares)
                else "–"
                for b in names
            )
            rows.append((model, loss, str(len(shares)), *cells))
    note = Paragraph(
        "Share of training steps on each branch the rule picked, averaged over the epochs "
        f"of each run's {files.LOG_CSV} and then over its runs."
    )
    table_block = Table(("model", "loss", "runs", *names), tuple(rows))
    return Section(DETAIL_TITLES[2], [note, table_block], 3)


def _size_section(table: ResultsTable) -> Section:
    means = run_means(table)
    groups = figures.SIZE_GROUPS
    blocks: list[Block] = [
        Paragraph(
            "Per-image Dice in the tertiles of true lesion area (slices, mean over runs): "
            "where class imbalance bites hardest is the small tertile."
        )
    ]
    header = ("model", "loss", *(f"Dice ({g})" for g in groups))
    rows = tuple(
        (model, loss, *(_mean_cell(means.get((model, loss, "dice", "per_image", g)), "dice")
                        for g in groups))
        for model in table.models
        for loss in table.losses
        if any((model, loss, "dice", "per_image", g) in means for g in groups)
    )  # fmt: skip
    if not rows:
        return Section(DETAIL_TITLES[3], [Paragraph("No size groups in the results.")], 3)
    return Section(DETAIL_TITLES[3], [*blocks, Table(header, rows)], 3)

"""Build the benchmark report from the run folders alone: results.csv, per_image.csv,
summary.md, figures/*.png and one self-contained report.html with the same sections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calfseg.bench import figures
from calfseg.bench.collect import ResultsTable, collect_results
from calfseg.bench.document import Block, Figure, Paragraph, Section, Table, to_html, to_markdown
from calfseg.bench.stats import (
    ALPHA,
    BASELINE,
    PairedTest,
    SeedSummary,
    branch_usage,
    paired_tests,
    seed_summaries,
)

TITLE = "CALF benchmark report"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"
FIGURES_FOLDER = "figures"
BRANCHES = ("fisher", "logit", "arcsine", "log10", "ln", "bce_dice")
# (metric, reduction, header)
METRIC_COLUMNS = (
    ("dice", "per_image", "Dice (per image)"),
    ("dice", "pooled", "Dice (pooled)"),
    ("dice", "per_case", "Dice (per case)"),
    ("iou", "per_image", "IoU (per image)"),
    ("iou", "pooled", "IoU (pooled)"),
    ("sensitivity", "per_image", "Sensitivity (per image)"),
    ("sensitivity", "pooled", "Sensitivity (pooled)"),
    ("specificity", "per_image", "Specificity (per image)"),
    ("specificity", "pooled", "Specificity (pooled)"),
    ("precision", "per_image", "Precision (per image)"),
    ("precision", "pooled", "Precision (pooled)"),
    ("hd95_mm", "per_image", "HD95 mm (per image)"),
)
SECTION_TITLES = (
    "Setup",
    "Metrics per model",
    "Paired tests against BCE",
    "CALF against BCE",
    "CALF branch usage",
    "Dice by lesion size",
    "Learning curves",
    "Qualitative examples",
    "Failed runs",
)


Found = dict[tuple[str, str, str, str, str], SeedSummary]


@dataclass(frozen=True)
class ReportFiles:
    summary: Path
    html: Path
    figures: tuple[Path, ...]
    table: ResultsTable


def build_report(out: str | Path) -> ReportFiles:
    """Collect the finished runs of ``out`` and write every report file there."""
    out = Path(out)
    table = collect_results(out)
    summaries = seed_summaries(table)
    tests = paired_tests(table)
    found = {(s.model, s.loss, s.metric, s.reduction, s.group): s for s in summaries}
    fig_dir = out / FIGURES_FOLDER
    drawn: list[Path] = []

    def figure(path: Path | None, caption: str) -> list[Figure]:
        if path is None:
            return []
        drawn.append(path)
        return [Figure(path, caption)]

    losses = table.losses
    metrics = Section(SECTION_TITLES[1])
    sizes = Section(SECTION_TITLES[5])
    curves = Section(SECTION_TITLES[6])
    qualitative = Section(SECTION_TITLES[7])
    for model in table.models:
        metrics.blocks.append(Paragraph(f"{model}: mean ± 95 % CI over seeds."))
        metrics.blocks.append(_metric_table(found, model, losses))
        bars = figures.metric_bars(summaries, model, losses, fig_dir / f"metrics-{model}.png")
        metrics.blocks += figure(bars, f"{model}: per-image metrics, 95 % CI whiskers")
        sizes.blocks.append(Paragraph(f"{model}: per-image Dice by true-area tertile."))
        sizes.blocks.append(_size_table(found, model, losses))
        bars = figures.size_tertiles(summaries, model, losses, fig_dir / f"sizes-{model}.png")
        sizes.blocks += figure(bars, f"{model}: Dice by lesion-size tertile")
        lines = figures.learning_curves(table, model, fig_dir / f"curves-{model}.png")
        curves.blocks += figure(lines, f"{model}: validation Dice per epoch")
        grid = figures.qualitative_grid(table, model, fig_dir / f"qualitative-{model}.png")
        qualitative.blocks += figure(grid, f"{model}: smallest-lesion test slices")
    for section in (curves, qualitative):
        if not section.blocks:
            section.blocks.append(Paragraph("No data in the run folders."))
    sections = [
        _setup(table),
        metrics,
        _tests_section(tests),
        _verdicts(table, tests),
        _branch_section(table),
        sizes,
        curves,
        qualitative,
        _failed_section(table),
    ]
    summary = out / SUMMARY_MD
    summary.write_text(to_markdown(TITLE, sections, out))
    report = out / REPORT_HTML
    report.write_text(to_html(TITLE, sections))
    return ReportFiles(summary, report, tuple(drawn), table)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if value >= 1e-3 else f"{value:.1e}"


def _cell(s: SeedSummary | None) -> str:
    if s is None or s.mean is None:
        return "–"
    digits = 2 if s.metric.endswith("_mm") else 3
    if s.half_width is None:
        return f"{s.mean:.{digits}f} (CI n/a)"
    return f"{s.mean:.{digits}f} ± {s.half_width:.{digits}f}"


def _setup(table: ResultsTable) -> Section:
    seeds = ", ".join(str(s) for s in table.seeds) or "none"
    text = (
        f"{len(table.runs)} finished runs: models {', '.join(table.models) or 'none'}; "
        f"losses {', '.join(table.losses) or 'none'}; seeds {seeds}. "
        "Cells are means over seeds ± the half-width of the 95 % Student t-interval "
        '("CI n/a" with one seed). Paired tests: Wilcoxon signed-rank on per-image Dice '
        f"against {BASELINE} on the test slices with a lesion, paired by cache row within "
        "model and seed, seeds "
        f"pooled by concatenating pairs, Holm-corrected over the losses of each model "
        f"(alpha {ALPHA})."
    )
    return Section(SECTION_TITLES[0], [Paragraph(text)])


def _metric_table(found: Found, model: str, losses: list[str]) -> Table:
    columns = [
        c for c in METRIC_COLUMNS if any((model, loss, c[0], c[1], "") in found for loss in losses)
    ]
    rows = tuple(
        (loss, *(_cell(found.get((model, loss, m, r, ""))) for m, r, _ in columns))
        for loss in losses
    )
    return Table(("loss", *(header for _, _, header in columns)), rows)


def _size_table(found: Found, model: str, losses: list[str]) -> Table:
    groups = figures.SIZE_GROUPS
    rows = tuple(
        (loss, *(_cell(found.get((model, loss, "dice", "per_image", g))) for g in groups))
        for loss in losses
    )
    return Table(("loss", *(f"Dice (per image, {g})" for g in groups)), rows)


def _tests_section(tests: list[PairedTest]) -> Section:
    header = (
        "model", "loss", "n pairs", "median diff", "mean diff", "p (Wilcoxon)", "p (Holm)",
        "verdict",
    )  # fmt: skip
    rows = tuple(
        (
            t.model,
            t.loss,
            str(t.n_pairs),
            _fmt(t.median_difference, 4),
            _fmt(t.mean_difference, 4),
            _p(t.p_value),
            _p(t.p_holm),
            t.verdict,
        )
        for t in tests
    )
    note = Paragraph(
        f"Per-image Dice of each loss minus {BASELINE}'s on the same test slice (slices with "
        "a lesion); "
        '"better"/"worse" need a Holm-adjusted p below '
        f"{ALPHA}. All-zero differences give p = 1."
    )
    if not rows:
        return Section(SECTION_TITLES[2], [Paragraph(f"No {BASELINE} runs to pair.")])
    return Section(SECTION_TITLES[2], [note, Table(header, rows)])


def _verdicts(table: ResultsTable, tests: list[PairedTest]) -> Section:
    lines: list[Block] = []
    for model in table.models:
        calf_tests = [t for t in tests if t.model == model and t.loss.startswith("calf")]
        if not calf_tests:
            lines.append(Paragraph(f"{model}: no CALF and {BASELINE} runs to compare."))
        for t in calf_tests:
            lines.append(Paragraph(f"{model}: {_sentence(t)}"))
    if not lines:
        lines.append(Paragraph("No finished runs."))
    return Section(SECTION_TITLES[3], lines)


def _sentence(t: PairedTest) -> str:
    name, base = t.loss.upper(), t.baseline.upper()
    if t.verdict == "not tested":
        return f"{name} and {base} share no test slices with a defined Dice; not tested."
    detail = (
        f"(median paired difference {t.median_difference:+.4f}, mean "
        f"{t.mean_difference:+.4f}, Holm p = {_p(t.p_holm)}, "
        f"{t.n_pairs} pairs)"
    )
    if t.verdict == "better":
        return f"{name} beat {base} on per-image Dice significantly {detail}."
    if t.verdict == "worse":
        return f"{name} was significantly worse than {base} on per-image Dice {detail}."
    return f"{name} did not differ significantly from {base} on per-image Dice {detail}."


def _branch_section(table: ResultsTable) -> Section:
    usage = branch_usage(table)
    if not usage:
        return Section(SECTION_TITLES[4], [Paragraph("No run logged CALF branch shares.")])
    names = list(BRANCHES) + sorted({b for s in usage.values() for b in s} - set(BRANCHES))
    rows = []
    order = {model: i for i, model in enumerate(table.models)}
    for info in sorted(table.runs, key=lambda r: (order[r.model], r.loss, r.seed)):
        if info.name in usage:
            shares = usage[info.name]
            cells = (f"{100 * shares[b]:.1f} %" if b in shares else "–" for b in names)
            rows.append((info.model, info.loss, str(info.seed), *cells))
    note = Paragraph("Share of training steps on each branch, averaged over the epochs of log.csv.")
    return Section(SECTION_TITLES[4], [note, Table(("model", "loss", "seed", *names), tuple(rows))])


def _failed_section(table: ResultsTable) -> Section:
    if not table.failed:
        return Section(SECTION_TITLES[8], [Paragraph("None.")])
    rows = tuple((name, error) for name, error in sorted(table.failed.items()))
    return Section(SECTION_TITLES[8], [Table(("run", "error"), rows)])

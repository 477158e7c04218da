"""The text report of a fingerprint, as ``calf analyze`` prints it: one ``name  value`` row
per fact, aligned, for people (the JSON document is :meth:`Fingerprint.to_dict`)."""

from __future__ import annotations

import math

from calfseg.fingerprint.format import Fingerprint


def row(name: str, text: str) -> str:
    """One aligned row of the report."""
    return f"  {name:<10} {text}"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def statistics_rows(fingerprint: Fingerprint) -> list[str]:
    """S, K and the rule's pick."""
    return [
        row("S", f"{signed(fingerprint.skewness)}  (skewness g1)"),
        row("K", f"{signed(fingerprint.kurtosis)}  (excess kurtosis g2)"),
        row("branch", f"{fingerprint.branch}  ({fingerprint.condition})"),
    ]


def summary_rows(fingerprint: Fingerprint, unit: str, seed: int) -> list[str]:
    """Everything after the line saying what was measured: empties, quantiles, S, K, the
    pick, the batches and the bootstrap (``seed``: the one they were drawn with)."""
    summary = fingerprint.summary
    if summary is None:
        return statistics_rows(fingerprint)
    fate = "excluded" if summary.excluded_empty else "counted as area 0"
    lines = [row("empty", f"{summary.n_empty} ({summary.empty_fraction:.1%}), {fate}")]
    if summary.excluded_empty:
        lines.append(row("analysed", f"{fingerprint.count} non-empty {unit}"))
    parts = [f"{name} {number(value)}" for name, value in summary.quantiles.items()]
    parts.append(f"mean {number(fingerprint.moments.mean)}")
    lines.append(row("quantiles", "  ".join(parts)))
    lines += statistics_rows(fingerprint)
    if summary.batch is not None:
        b = summary.batch
        lines.append(
            row(
                "batches",
                f"{b.batches} of {b.batch_size}, seed {seed}: {frequencies(b.branch_frequencies)}",
            )
        )
        lines.append(
            row(
                "",
                f"S median {signed(b.skewness_median)}, 95% of batches in "
                f"{pair(b.skewness_range95)}; undefined in {b.undefined_fraction:.1%}",
            )
        )
    else:
        lines.append(row("batches", "not computed (--batch-size N; the paper used 32)"))
    if summary.bootstrap is not None:
        boot = summary.bootstrap
        lines.append(
            row(
                "bootstrap",
                f"{boot.resamples} resamples, seed {seed}: {frequencies(boot.branch_frequencies)}",
            )
        )
        lines.append(
            row("", f"S 95% CI {pair(boot.skewness_ci95)}, K 95% CI {pair(boot.kurtosis_ci95)}")
        )
    return lines


def moments_only_report(path: str, fingerprint: Fingerprint, batch_size: int | None) -> str:
    """The printout for a fingerprint file: n, mean, S, K, the pick, and what it cannot
    tell without the areas themselves."""
    lines = [
        f"calf analyze {path} (fingerprint: moments only)",
        row("areas", f"{fingerprint.count}"),
    ]
    if fingerprint.count:
        std = math.sqrt(fingerprint.moments.variance)
        lines.append(row("mean", f"{number(fingerprint.moments.mean)} (std {number(std)})"))
    lines += statistics_rows(fingerprint)
    note = "per-batch frequencies, quantiles and the bootstrap need the areas themselves"
    if batch_size is not None:
        note = f"--batch-size ignored: {note}"
    lines.append(row("note", note + "; a fingerprint holds only their moments"))
    return "\n".join(lines)


def frequencies(freqs: dict[str, float]) -> str:
    """``branch share`` pairs, most frequent first, zeros left out."""
    shown = sorted(((f, b) for b, f in freqs.items() if f > 0), reverse=True)
    return ", ".join(f"{b} {f:.1%}" for f, b in shown) or "none"


def number(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def signed(x: float) -> str:
    return "undefined" if math.isnan(x) else f"{x:+.3f}"


def pair(values: tuple[float, float]) -> str:
    return f"[{signed(values[0])}, {signed(values[1])}]"

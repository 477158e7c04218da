"""The files of a training run's folder: every name is spelled here and nowhere else.

::

    RUN/config.json              the TrainConfig, written when training starts (loop)
    RUN/last.pt                  the checkpoint to resume from, every epoch (loop)
    RUN/best.pt                  the best validation score's checkpoint: what a run stands for
    RUN/log.csv, RUN/log.jsonl   one row per epoch (logs)
    RUN/provenance.json          what made the run: versions, cache digest, options
    RUN/eval_<split>.json        an evaluation's metrics (evaluate)
    RUN/per_image_<split>.csv    one row per slice
    RUN/per_case_<split>.csv     one row per case: the unit of the benchmark's verdicts
    RUN/qualitative_<split>.npz  the examples the report draws
    RUN/done.json                written last: the run is complete (run, the benchmark)
    RUN/failed.json              the benchmark's record of a run that raised

A fresh start in a folder removes :data:`RESULTS` (what an earlier run computed), so that no
file of another run survives beside the new one's.
"""

from __future__ import annotations

CONFIG = "config.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
LOG_CSV = "log.csv"
LOG_JSONL = "log.jsonl"
PROVENANCE = "provenance.json"
DONE = "done.json"
FAILED = "failed.json"
TEST_SPLIT = "test"  # the split a benchmark run is evaluated on


def evaluation_report(split: str) -> str:
    return f"eval_{split}.json"


def per_image_table(split: str) -> str:
    return f"per_image_{split}.csv"


def per_case_table(split: str) -> str:
    return f"per_case_{split}.csv"


def qualitative_examples(split: str) -> str:
    return f"qualitative_{split}.npz"


# What an earlier run computed, as glob patterns: removed when a run starts afresh.
RESULTS = (
    "*.pt",
    evaluation_report("*"),
    per_image_table("*"),
    per_case_table("*"),
    qualitative_examples("*"),
    LOG_CSV,
    LOG_JSONL,
    DONE,
)

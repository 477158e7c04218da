"""Early stopping on the validation case Dice, and the ``converged`` verdict of a run.

Two references are kept, as in Keras' and Lightning's early stopping:

- ``best``: the highest score so far (strictly higher replaces it, so the first of equal
  scores wins); the loop keeps its epoch as ``best.pt``.
- ``reference``: the score of the last *significant* improvement, one by more than
  ``min_delta``. ``stale`` counts the validations since then; several small gains that add
  up to more than ``min_delta`` count as one improvement when the sum crosses it.

Counting starts at the first validation with a score above 0: before it the model has found
no lesion pixel in any validation case, which is a run that has not started learning, not
one that has plateaued (a BCE model often predicts nothing for the first epochs under heavy
imbalance); such validations neither stop the run nor make it converged. (An undefined
score after the first counted one is counted: it is never an improvement.)

The run stops when ``stale`` reaches ``patience``. It has **converged** when it improved
by more than ``min_delta`` at least once after its first counted score (``improvements >=
1``: it learned something) and then the last ``window`` validations gained at most
``min_delta`` on the best score before them, ``window`` being ``patience``, or
:data:`CONVERGENCE_WINDOW` when the run has no patience:

    converged  <=>  improvements >= 1  and  max(s[-w:]) - max(s[:-w]) <= min_delta

The gain is measured from the best score, not from the ratchet's ``reference``: the
reference can lie up to ``min_delta`` below the best, so a run creeping up by 0.002 a
validation crossed it inside the window and was called "still improving" after gaining
0.006 in its last four validations (4 of 24 default benchmark runs). When the ratchet
counts ``stale >= window`` (patience ran out), the window's gain is at most ``min_delta``
too, whenever it is defined (every score of the window is at most ``reference +
min_delta``, and the reference is a score before the window); a window of undefined (NaN)
scores has no gain, and then the ratchet's count decides, as it did before. A run whose
budget ended while it still improved has not converged; nor has a run that never improved
on its first score (a run that learned nothing after epoch 1 sits on a plateau it never
climbed), whether or not patience stopped it. A run without validation cannot be judged:
not converged.

A run **diverged** when its mean training loss over an epoch is not finite or above
:data:`DIVERGED_LOSS`: :func:`divergence` says so, and the loop stops the run with a
:class:`TrainingDivergedError` (``calf``: exit 3), instead of training on and reporting a
model that predicts nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from calfseg.errors import TrainingDivergedError as TrainingDivergedError  # its home here

CONVERGENCE_WINDOW = 4
"""Validations without improvement that make a run without ``patience`` converged: the last
fifth or so of the CPU preset's 22-epoch annealed schedule, where the learning rate is below
a tenth of its peak (docs/train.md, *The CPU recipe*)."""
CONVERGENCE_RULE = "window-gain"
"""The rule behind a finished run's ``converged`` flag, recorded next to it as
``convergence_rule``: a run finished before the rule was recorded measured the window's gain
from the reference, and :func:`replayed_convergence` judges it again from its epoch log."""
STOP_REASONS: tuple[str, ...] = ("patience", "budget")
DIVERGED_LOSS = 1e3
"""A mean training loss per pixel above which a run has diverged. Every loss of the registry
is at most a weighted BCE per pixel: a constant prediction at the foreground prior scores
below ln 2 = 0.69, class weights of 1/prior put it in the tens; a mean of 1,000 means logits
wrong by about 1,000 on average, a model thrown off any path that learns (``--lr 1e10``:
2e18 after one epoch)."""


def divergence(epoch: int, loss: float | None) -> str | None:
    """Why the run diverged at ``epoch`` with mean training loss ``loss``, or None."""
    if loss is None:
        return None
    if math.isfinite(loss) and loss <= DIVERGED_LOSS:
        return None
    return (
        f"training diverged at epoch {epoch}: mean training loss {loss:.3g} (not finite or "
        f"above {DIVERGED_LOSS:g}); lower --lr, or set --grad-clip or --warmup-steps, then "
        "start again with --overwrite"
    )


@dataclass
class EarlyStopping:
    """The state of early stopping; :meth:`state` and :meth:`from_state` round-trip it
    through a checkpoint (plain numbers only)."""

    patience: int | None
    min_delta: float
    best: float | None = None
    reference: float | None = None
    stale: int = 0
    validations: int = 0
    improvements: int = 0  # significant improvements after the first counted score
    scores: list[float | None] = field(default_factory=list)  # every validation (None: NaN)

    def observe(self, score: float | None) -> bool:
        """Record a validation score (None or NaN: undefined, never an improvement).
        Returns whether it is a new best (``best.pt`` is then saved)."""
        self.validations += 1
        value = score if score is not None and math.isfinite(score) else None
        self.scores.append(value)
        new_best = value is not None and (self.best is None or value > self.best)
        if new_best:
            self.best = value
        if self.reference is None:  # nothing found yet: not counted
            if value is not None and value > 0:
                self.reference, self.stale = value, 0
            return new_best
        if value is not None and value > self.reference + self.min_delta:
            self.reference, self.stale = value, 0
            self.improvements += 1
        else:
            self.stale += 1
        return new_best

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` validations in a row brought no significant improvement."""
        return self.patience is not None and self.stale >= self.patience

    def ends_run(self, epochs_trained: int, min_epochs: int = 0) -> bool:
        """Whether early stopping ends the run after ``epochs_trained`` epochs: patience has
        run out (:attr:`should_stop`) and at least ``min_epochs`` epochs were trained."""
        return self.should_stop and epochs_trained >= min_epochs

    @property
    def window(self) -> int:
        """The validations that judge convergence: ``patience``, else
        :data:`CONVERGENCE_WINDOW`."""
        return self.patience if self.patience is not None else CONVERGENCE_WINDOW

    def window_gain(self) -> float | None:
        """How far the best of the last :attr:`window` validations rose above the best
        before them (negative: it stayed below); None while fewer validations than the
        window and one more were recorded, or when either side has no defined score."""
        w = self.window
        if len(self.scores) <= w:
            return None
        before = [s for s in self.scores[:-w] if s is not None]
        within = [s for s in self.scores[-w:] if s is not None]
        if not before or not within:
            return None
        return max(within) - max(before)

    @property
    def converged(self) -> bool:
        """Whether the run improved by more than ``min_delta`` after its first score above 0
        and then the last ``patience`` (or :data:`CONVERGENCE_WINDOW`) validations gained at
        most ``min_delta`` on the best score before them; or the ratchet counts ``stale >=
        window`` (which implies that bound where the gain is defined, and decides where it
        is not: a window of NaN scores). A state restored from a checkpoint that did not
        keep its scores judges the gain on the scores since, which can only understate the
        best before the window: it errs towards "not converged"."""
        if self.improvements < 1:
            return False
        if self.stale >= self.window:
            return True
        gain = self.window_gain()
        return gain is not None and gain <= self.min_delta

    def ended(self, epochs_run: int, planned: int) -> str:
        """Why a run of ``planned`` epochs ended after ``epochs_run``: ``"patience"`` only
        when patience ran out before the budget did; a run that trained every planned epoch
        ended on its ``"budget"``, whatever patience says at its end."""
        return "patience" if self.should_stop and epochs_run < planned else "budget"

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(
        cls, state: dict[str, Any] | None, *, patience: int | None, min_delta: float,
        best: float | None,
    ) -> EarlyStopping:  # fmt: skip
        """The state stored in a checkpoint, under the run's ``patience`` and ``min_delta``;
        a checkpoint of an older calf-seg (``state`` None) starts from its best score."""
        if state is None:
            reference = best if best is not None and best > 0 else None
            return cls(patience, min_delta, best=best, reference=reference)
        kept = {k: state[k] for k in ("best", "reference", "stale", "validations")}
        kept["scores"] = list(state.get("scores", []))  # a state without them: the ratchet
        # a checkpoint of an earlier version counted no improvements: one is assumed when
        # its run had moved past its first score, as its converged verdict then assumed
        improvements = state.get("improvements", 1 if kept["validations"] > 1 else 0)
        return cls(patience, min_delta, **kept, improvements=int(improvements))


def replayed_convergence(
    scores: list[float | None], *, patience: int | None, min_delta: float
) -> bool:
    """Whether a run with these validation scores, in order, has converged under
    :data:`CONVERGENCE_RULE` (the log of a finished run replayed through
    :class:`EarlyStopping`)."""
    stopping = EarlyStopping(patience, min_delta)
    for score in scores:
        stopping.observe(score)
    return stopping.converged

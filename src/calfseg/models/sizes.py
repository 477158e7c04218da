"""Which input sizes a model takes, and the error that names the sizes that work."""

from __future__ import annotations

from dataclasses import dataclass

from calfseg.errors import OptionError


@dataclass(frozen=True)
class SizeRule:
    """Which input sizes a model takes: H and W multiples of ``divisor``, at least ``minimum``."""

    divisor: int
    minimum: int

    def accepts(self, height: int, width: int) -> bool:
        return all(n >= self.minimum and n % self.divisor == 0 for n in (height, width))


def check_size_values(height: object, width: object) -> None:
    """Raise a ValueError unless both are positive integers (bool excluded)."""
    for label, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{label} must be a positive integer, got {value!r}")


def _nearest(n: int, rule: SizeRule) -> str:
    below = (n // rule.divisor) * rule.divisor
    above = max(below + rule.divisor, rule.minimum)
    return f"{below} or {above}" if below >= rule.minimum else str(above)


def size_message(model: str, rule: SizeRule, height: int, width: int) -> str:
    """``'<model> needs H and W divisible by 32; got 80x20: try H = 64 or 96, W = 32'``: what
    ``rule`` asks for and, for each axis it rejects, the nearest sizes that it accepts."""
    bad = [(axis, n) for axis, n in (("H", height), ("W", width)) if not rule.accepts(n, n)]
    needs = f"H and W divisible by {rule.divisor}"
    if rule.divisor == 1:
        needs = f"H and W of at least {rule.minimum}"
    elif rule.minimum > rule.divisor:
        needs += f" and at least {rule.minimum}"
    tries = ", ".join(f"{axis} = {_nearest(n, rule)}" for axis, n in bad)
    return f"{model} needs {needs}; got {height}x{width}: try {tries}"

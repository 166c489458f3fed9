"""How numbers are written for people: never 0% or 100%, always with the interval."""

from __future__ import annotations

import math


def percent(p: float, digits: int = 1) -> str:
    """A probability as a percentage that never reads 0% or 100% ("<0.1%", ">99.9%")."""
    lo = 10 ** -(digits + 2)
    if p < lo:
        return f"<{100 * lo:.{digits}f}%"
    if p > 1 - lo:
        return f">{100 * (1 - lo):.{digits}f}%"
    text = f"{100 * p:.{digits}f}%"
    if text == f"{0:.{digits}f}%":
        return f"<{100 * lo:.{digits}f}%"
    if text == f"{100:.{digits}f}%":
        return f">{100 * (1 - lo):.{digits}f}%"
    return text


def probability_with_interval(s: dict) -> str:
    """'84.0% (90% CrI 61.2% to 95.3%)' from a probability summary (mean as the headline)."""
    return f"{percent(s['mean'])} ({round(100 * s['ci'])}% CrI {percent(s['lower'])} to {percent(s['upper'])})"


def factor(log_lr: float) -> str:
    """A factor on the odds: 'x 9.4' or 'x 0.31' (÷ is avoided so it reads in plain text)."""
    f = math.exp(log_lr)
    if f >= 100:
        return f"x {f:,.0f}"
    if f >= 10:
        return f"x {f:.1f}"
    return f"x {f:.2g}" if f < 1 else f"x {f:.2f}"


def words(p: float) -> str:
    """Plain words for a probability of infiltration (never 'excluded' or 'ruled out')."""
    if p >= 0.95:
        return "infiltration is very likely"
    if p >= 0.75:
        return "infiltration is likely"
    if p >= 0.5:
        return "infiltration is more likely than not"
    if p >= 0.25:
        return "infiltration remains a real possibility"
    if p >= 0.05:
        return "infiltration is less likely, but possible"
    return "infiltration is unlikely, though still possible"

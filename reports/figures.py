"""The report's figures, drawn with matplotlib from the report context (no model code).

Each figure is a function that draws onto a given ``Axes`` from its part of the context
(``ctx["figures"][name]``) and is saved as SVG with real text; the HTML report carries it inline and
the PDF is printed from that same HTML (:mod:`palsy.reports.render`), so both show the very same drawing.
Elements that tests count carry a ``gid``: waterfall bars
``waterfall-bar-<k>``, icons ``icon-filled-<k>`` / ``icon-open-<k>``, Fagan lines ``fagan-line-<k>``,
the differential's segments ``differential-<step>-<cause>``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from palsy.reports import palette
from palsy.reports.wording import percent

RED = palette.color(0)  # infiltration's colour in every figure and page
BLUE = "#2166ac"
GREY = "#555555"
LIGHT = "#d9d9d9"
PROB_TICKS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
LR_TICKS = (0.001, 0.01, 0.1, 1, 10, 100, 1000)
LIMIT = 7.0  # log odds shown: about 0.1% to 99.9%

STYLE = {
    "svg.hashsalt": "palsy-report",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def style() -> Iterator[None]:
    """matplotlib settings for deterministic output with real text (SVG and PDF)."""
    with matplotlib.rc_context(STYLE):
        yield


def logit(p: float) -> float:
    """log(p / (1 - p))."""
    return math.log(p / (1 - p))


def prob_label(p: float) -> str:
    """Axis label of a probability: '0.1%', '5%', '99.9%' (never 0% or 100%)."""
    return f"{100 * p:g}%"


def draw_icons(ax: Axes, fig: dict[str, Any]) -> None:
    """A 10 x 10 icon array: ``fig['filled']`` filled icons (infiltration), the rest open."""
    n = int(fig["filled"])
    for k in range(100):
        row, col = divmod(k, 10)
        filled = k < n
        c = Circle((col + 0.5, 9.5 - row), 0.38, facecolor=RED if filled else "white",
                   edgecolor=RED if filled else GREY, linewidth=0.8, transform=ax.transData)
        c.set_gid(f"icon-{'filled' if filled else 'open'}-{k}")
        ax.add_artist(c)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.set_aspect("equal")
    ax.axis("off")


def _prob_axis_limits(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values + [0.0]) - 0.6, max(values + [0.0]) + 0.6
    return max(lo, -LIMIT - 0.2), min(hi, LIMIT + 0.2)


def draw_waterfall(ax: Axes, fig: dict[str, Any]) -> None:
    """Horizontal odds waterfall: the prior, each finding, the result; each bar ends at the mean
    P(infiltration) after its step and is labelled with it; whiskers are intervals."""
    steps = fig["steps"]
    vals = [v for s in steps for v in (s["lower"], s["mean"], s["upper"])]
    x0, x1 = _prob_axis_limits(vals)
    n = len(steps)
    for k, s in enumerate(steps):
        y = n - 1 - k
        end = min(max(s["mean"], x0), x1)
        if s["kind"] == "finding":
            start = min(max(s["start"], x0), x1)
            color = RED if end >= start else BLUE
        else:
            start, color = x0, GREY
        left, width = min(start, end), max(abs(end - start), 0.03)
        bar = Rectangle((left, y - 0.32), width, 0.64, facecolor=color, edgecolor="none", alpha=0.85)
        bar.set_gid(f"waterfall-bar-{k}")
        ax.add_artist(bar)
        ax.plot([max(s["lower"], x0), min(s["upper"], x1)], [y, y], color="black", linewidth=1.0)
        ax.plot([end, end], [y - 0.32, y + 0.32], color="black", linewidth=0.6)
        # the bar's own number, the mean P it ends at: a geometric-mean factor here (section 4's) can point
        # the other way than the bar, whose step is between means
        note = prob_label_text(s["p_mean"])
        ax.text(min(max(s["upper"], end), x1) + 0.12, y, note, va="center", ha="left", fontsize=7)
        if s["kind"] == "finding" and k + 1 < n:
            ax.plot([end, end], [y - 0.32, y - 0.68], color=GREY, linewidth=0.5, linestyle=":")
    ax.set_yticks(range(n))
    ax.set_yticklabels([_short(s.get("short", s["label"])) for s in reversed(steps)], fontsize=7)
    ticks = [p for p in PROB_TICKS if x0 <= logit(p) <= x1]
    ax.set_xticks([logit(p) for p in ticks])
    ax.set_xticklabels([prob_label(p) for p in ticks])
    ax.set_xlim(x0, x1 + 1.6)
    ax.set_ylim(-0.7, n - 0.3)
    ax.axvline(0, color=LIGHT, linewidth=0.6, zorder=0)
    ax.set_xlabel("P(infiltration) against the other causes (log-odds scale); bars end at means")


def prob_label_text(p: float) -> str:
    """A bar's probability note, via the report's wording rules (never 0% or 100%)."""
    return percent(p)


def _short(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def draw_fagan(ax: Axes, fig: dict[str, Any]) -> None:
    """Fagan nomogram: pretest (left, reversed), likelihood ratio (middle), post-test (right).

    In log-odds coordinates the left axis is at y = -logit(pre), the middle at y = log(LR) / 2 and
    the right at y = logit(post), so each draw is a straight line.
    """
    lim = LIMIT
    segments = [[(0.0, -pre), (2.0, pre + lr)] for pre, lr in zip(fig["pre"], fig["log_lr"], strict=True)]
    fan = LineCollection(segments, colors=RED, alpha=0.08, linewidths=0.7)
    fan.set_gid("fagan-fan")
    ax.add_collection(fan, autolim=False)
    pre, lr = fig["mean_pre"], fig["mean_log_lr"]
    (bold,) = ax.plot([0, 2], [-pre, pre + lr], color="black", linewidth=1.6)
    bold.set_gid("fagan-mean")
    for x in (0, 1, 2):
        ax.plot([x, x], [-lim, lim], color=GREY, linewidth=0.8)
    for p in PROB_TICKS:
        for x, y, ha, dx in ((0, -logit(p), "right", -0.04), (2, logit(p), "left", 0.04)):
            ax.plot([x, x + (0.03 if x == 0 else -0.03)], [y, y], color=GREY, linewidth=0.6)
            ax.text(x + dx, y, prob_label(p), ha=ha, va="center", fontsize=6.5)
    for v in LR_TICKS:
        y = math.log(v) / 2
        if abs(y) <= lim:
            ax.plot([0.97, 1.03], [y, y], color=GREY, linewidth=0.6)
            ax.text(1.05, y, f"{v:g}", ha="left", va="center", fontsize=6.5)
    for x, label in ((0, "Before the findings"), (1, "Likelihood ratio"), (2, "After the findings")):
        ax.text(x, lim + 0.6, label, ha="center", va="bottom", fontsize=7.5, clip_on=False)
    ax.set_xlim(-0.45, 2.45)
    ax.set_ylim(-lim - 0.3, lim + 0.3)
    ax.axis("off")


def draw_differential(ax: Axes, fig: dict[str, Any]) -> None:
    """The differential after each step: one horizontal bar per step, split into the mean
    probability of every cause weighed (sums to one)."""
    rows = fig["rows"]
    n = len(rows)
    for k, row in enumerate(rows):
        y = n - 1 - k
        left = 0.0
        for j, (cause, p) in enumerate(zip(fig["causes"], row["means"], strict=True)):
            seg = Rectangle((left, y - 0.34), p, 0.68, facecolor=palette.color(j), hatch=palette.hatch(j) or None,
                            edgecolor="white", linewidth=0.4)
            seg.set_gid(f"differential-{k}-{cause}")
            ax.add_artist(seg)
            if p >= 0.08:
                ax.text(left + p / 2, y, percent(p), ha="center", va="center", fontsize=6,
                        color=palette.text_on(palette.color(j)))
            left += p
    ax.set_yticks(range(n))
    ax.set_yticklabels([_short(r.get("short", r["label"])) for r in reversed(rows)], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xticklabels(["", "25%", "50%", "75%", ""])
    ax.set_xlabel("Mean probability of each cause after each step")
    handles = [Rectangle((0, 0), 1, 1, facecolor=palette.color(j), hatch=palette.hatch(j) or None)
               for j in range(len(fig["causes"]))]
    height_in = ax.get_position().height * ax.figure.get_figheight()  # the legend sits 0.4 in below the axes
    ax.legend(handles, fig["names"], loc="upper center", bbox_to_anchor=(0.5, -0.4 / max(height_in, 0.1)),
              ncol=3, fontsize=6.5, frameon=False)


DRAW: dict[str, tuple[Callable[[Axes, dict[str, Any]], None], tuple[float, float]]] = {
    "icons": (draw_icons, (2.0, 2.0)),
    "waterfall": (draw_waterfall, (7.0, 0.0)),  # height from the number of bars
    "fagan": (draw_fagan, (4.2, 3.6)),
    "differential": (draw_differential, (7.0, 0.0)),  # height from the number of steps
}

#: The figures of the report, in the order they appear.
NAMES = ("icons", "waterfall", "differential", "fagan")


def size(name: str, fig: dict[str, Any]) -> tuple[float, float]:
    """The figure's size in inches (the waterfall grows with its bars)."""
    w, h = DRAW[name][1]
    if name == "waterfall":
        h = 0.75 + 0.26 * len(fig["steps"])
    elif name == "differential":
        h = 1.25 + 0.26 * len(fig["rows"])
    return w, h


def WATERFALL_RECT(height: float) -> tuple[float, float, float, float]:  # noqa: N802
    """Axes rectangle (figure fractions) of the waterfall in a figure ``height`` inches tall."""
    return (0.27, 0.6 / height, 0.71, 1 - 0.72 / height)


def DIFFERENTIAL_RECT(height: float) -> tuple[float, float, float, float]:  # noqa: N802
    """Axes rectangle (figure fractions) of the differential in a figure ``height`` inches tall
    (room below for the legend)."""
    return (0.27, 1.05 / height, 0.65, 1 - 1.15 / height)


def figure(name: str, fig: dict[str, Any]) -> Figure:
    """A standalone figure (one axes) of ``name``: icons, waterfall, differential or fagan."""
    draw, _ = DRAW[name]
    f = Figure(figsize=size(name, fig))
    if name == "waterfall":
        ax = f.add_axes(WATERFALL_RECT(size(name, fig)[1]))
    elif name == "differential":
        ax = f.add_axes(DIFFERENTIAL_RECT(size(name, fig)[1]))
    elif name == "fagan":
        ax = f.add_axes((0.02, 0.02, 0.96, 0.9))
    else:
        ax = f.add_axes((0.02, 0.02, 0.96, 0.96))
    draw(ax, fig)
    return f


def svg(name: str, fig: dict[str, Any]) -> str:
    """The figure as SVG text (deterministic: fixed hash salt, no date)."""
    with style():
        f = figure(name, fig)
        buf = io.StringIO()
        f.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()

"""The one palette of palsy's figures and pages: colour-blind-safe colours for any number of causes.

The first colours are Okabe and Ito's set for colour-vision deficiency, ordered so that every pair stays
apart under simulated protanopia, deuteranopia and tritanopia (tested); more causes take Paul Tol's
"muted" set, and beyond that the colours repeat with a pattern (``hatch``), so an eighth or a twentieth
cause never borrows infiltration's colour silently. Colour is never the only carrier: figures and pages
write the cause's name on (or beside) its bar, in the text colour :func:`text_on` picks for contrast.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Okabe & Ito (2008), reordered: vermillion first (infiltration, the cause the tool is about).
OKABE_ITO: tuple[str, ...] = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
                              "#000000")
#: Paul Tol's "muted" qualitative scheme (colour-blind safe), for causes beyond the first eight.
TOL_MUTED: tuple[str, ...] = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
                              "#882255", "#AA4499")
BASE: tuple[str, ...] = OKABE_ITO + TOL_MUTED
#: Fill patterns (matplotlib hatches; the page draws stripes) for colours used a second time.
HATCHES: tuple[str, ...] = ("", "//", "..", "xx", "\\\\", "oo")
#: Neutral colours for what is not a cause (intervals, reference lines, text).
INK = "#1b1b1b"
GREY = "#6e6e6e"
LIGHT = "#d9d9d9"


def color(i: int) -> str:
    """The colour of the ``i``-th cause (0 is the first: infiltration)."""
    return BASE[i % len(BASE)]


def hatch(i: int) -> str:
    """The fill pattern of the ``i``-th cause: none for the first ``len(BASE)``, then one per round."""
    return HATCHES[(i // len(BASE)) % len(HATCHES)]


def colors(n: int) -> list[str]:
    """Colours for ``n`` causes, in order."""
    return [color(i) for i in range(n)]


def cause_colors(causes: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each cause's ``fill``, ``text`` (black or white, whichever contrasts more) and ``hatch``, by name."""
    return {c: {"fill": color(i), "text": text_on(color(i)), "hatch": hatch(i)} for i, c in enumerate(causes)}


def _luminance(hex_color: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    rgb = [int(hex_color[k:k + 2], 16) / 255 for k in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(fill: str) -> str:
    """Black or white text, whichever contrasts more with ``fill``."""
    return "#000000" if contrast(fill, "#000000") >= contrast(fill, "#ffffff") else "#ffffff"

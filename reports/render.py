"""Render the clinician report (HTML and PDF) from one context (:mod:`reports.context`).

HTML: a Jinja2 template (``templates/report.html``, autoescaping on, so every user-supplied string
is escaped) with the CSS inline and the figures inline as base64 SVG: the page loads nothing from
the network and prints cleanly (``@media print``).

PDF: composed with matplotlib's own PDF backend (:class:`matplotlib.backends.backend_pdf.PdfPages`),
text placed as real text with TrueType (Type 42) fonts so it can be extracted. Why not an HTML-to-PDF
engine (WeasyPrint, a headless browser): those need extra system libraries (Pango, Cairo, a
browser), which the project does not install; matplotlib is already a dependency, its output is
deterministic (no creation date, fixed SVG hash salt) and the PDF then shows the *same* figures,
drawn by the same functions of :mod:`reports.figures` onto axes placed on the page.

:func:`write` renders everything in memory, writes into a temporary folder next to the target and
only then moves the files into place, so bad input or a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from reports import figures as FG

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORMATS = ("html", "pdf")

PAGE_W, PAGE_H = 8.27, 11.69  # A4, inches
MARGIN = 0.6


class _Widths:
    """Glyph advance widths (in ems) of the report font, read once from the font file (for wrapping)."""

    def __init__(self) -> None:
        self.fonts: dict[bool, Any] = {}
        self.cache: dict[tuple[bool, str], float] = {}

    def em(self, text: str, bold: bool = False) -> float:
        if bold not in self.fonts:
            from matplotlib import font_manager
            from matplotlib.ft2font import FT2Font

            prop = font_manager.FontProperties(family=FG.STYLE["font.family"], weight="bold" if bold else "normal")
            font = FT2Font(font_manager.findfont(prop))
            font.set_size(100, 72)
            self.fonts[bold] = font
        total = 0.0
        for c in text:
            w = self.cache.get((bold, c))
            if w is None:
                from matplotlib.ft2font import LoadFlags

                glyph = self.fonts[bold].load_char(ord(c), flags=LoadFlags.NO_HINTING)
                w = self.cache[(bold, c)] = glyph.linearHoriAdvance / 65536 / 100
            total += w
        return total


WIDTHS = _Widths()


def wrap(text: str, width_in: float, size: float, bold: bool = False) -> list[str]:
    """Greedy word wrap of ``text`` to ``width_in`` inches at ``size`` points (measured glyph widths)."""
    limit = width_in * 72 / size
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if WIDTHS.em(trial, bold) <= limit:
            line = trial
            continue
        if line:
            lines.append(line)
        while WIDTHS.em(word, bold) > limit:  # a word longer than the line (a hash, a URL)
            cut = max(1, int(len(word) * limit / WIDTHS.em(word, bold)) - 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [""]


def svg_images(ctx: dict[str, Any]) -> dict[str, str]:
    """Each figure as base64 SVG (for ``<img src="data:...">``)."""
    return {name: base64.b64encode(FG.svg(name, ctx["figures"][name]).encode("utf-8")).decode("ascii")
            for name in FG.NAMES}


def html(ctx: dict[str, Any]) -> str:
    """The self-contained HTML report."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("report.html").render(**ctx, svg=svg_images(ctx))


# --- PDF -----------------------------------------------------------------------------------------

class _Pages:
    """A minimal flowing layout on A4 figures: headings, wrapped paragraphs, tables, figures."""

    def __init__(self, footer: str) -> None:
        self.pages: list[Any] = []
        self.footer = footer
        self.y = 0.0
        self._new()

    def _new(self) -> None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(PAGE_W, PAGE_H))
        self.pages.append(fig)
        self.y = PAGE_H - MARGIN
        fig.text(0.5, 0.35 / PAGE_H, f"{self.footer} | page {len(self.pages)}", ha="center", va="bottom",
                 fontsize=6.5, color=FG.GREY)

    @property
    def fig(self) -> Any:
        return self.pages[-1]

    def need(self, h: float) -> None:
        if self.y - h < MARGIN:
            self._new()

    def text(self, x: float, y: float, s: str, size: float, **kw: Any) -> None:
        self.fig.text(x / PAGE_W, y / PAGE_H, s, fontsize=size, va="top", ha="left", **kw)

    @staticmethod
    def wrap(s: str, width_in: float, size: float, bold: bool = False) -> list[str]:
        return wrap(s, width_in, size, bold)

    def heading(self, s: str, size: float = 10.5, keep: float = 0.4) -> None:
        """A section heading, kept on one page with the next ``keep`` inches."""
        self.need(0.2 + keep)
        self.y -= 0.08
        self.text(MARGIN, self.y, s, size, weight="bold")
        self.y -= size / 72 * 1.5

    def para(self, s: str, size: float = 8.0, indent: float = 0.0, weight: str = "normal",
             color: str = "black", width: float | None = None) -> None:
        width = width or PAGE_W - 2 * MARGIN - indent
        lines = self.wrap(s, width, size, weight == "bold")
        lh = size / 72 * 1.3
        for line in lines:
            self.need(lh)
            self.text(MARGIN + indent, self.y, line, size, weight=weight, color=color)
            self.y -= lh
        self.y -= lh * 0.35

    def table(self, header: list[str], rows: list[list[str]], widths: list[float], size: float = 7.0) -> None:
        lh = size / 72 * 1.28
        total = sum(widths)
        widths = [w * (PAGE_W - 2 * MARGIN) / total for w in widths]

        def row(cells: list[str], bold: bool) -> None:
            wrapped = [self.wrap(c, w - 0.1, size, bold) for c, w in zip(cells, widths, strict=True)]
            h = max(len(c) for c in wrapped) * lh + 0.05
            self.need(h)
            x = MARGIN
            for lines, w in zip(wrapped, widths, strict=True):
                for i, line in enumerate(lines):
                    self.text(x + 0.03, self.y - 0.025 - i * lh, line, size, weight="bold" if bold else "normal")
                x += w
            self.y -= h
            self.fig.add_artist(_hline(self.y))

        self.need(3 * lh)
        row(header, True)
        for r in rows:
            row(r, False)
        self.y -= 0.1

    def columns(self, items: list[str], ncol: int = 2, size: float = 5.6, gap: float = 0.2) -> None:
        """Short paragraphs flowed into ``ncol`` columns (new page when full)."""
        width = (PAGE_W - 2 * MARGIN - gap * (ncol - 1)) / ncol
        lh = size / 72 * 1.25
        top, col = self.y, 0
        for item in items:
            lines = self.wrap(item, width, size)
            h = len(lines) * lh + lh * 0.2
            if self.y - h < MARGIN:
                col += 1
                if col == ncol:
                    self._new()
                    top, col = self.y, 0
                self.y = top
            x = MARGIN + col * (width + gap)
            for i, line in enumerate(lines):
                self.fig.text(x / PAGE_W, (self.y - i * lh) / PAGE_H, line, fontsize=size, va="top", ha="left")
            self.y -= h

    def figure(self, name: str, fig_ctx: dict[str, Any], width: float, height: float, x: float | None = None,
               advance: bool = True, rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> None:
        self.need(height)
        x = MARGIN if x is None else x
        rl, rb, rw, rh = rect
        ax = self.fig.add_axes(((x + rl * width) / PAGE_W, (self.y - height + rb * height) / PAGE_H,
                                rw * width / PAGE_W, rh * height / PAGE_H))
        FG.DRAW[name][0](ax, fig_ctx)
        if advance:
            self.y -= height + 0.05


def _hline(y: float) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([MARGIN / PAGE_W, 1 - MARGIN / PAGE_W], [y / PAGE_H] * 2, linewidth=0.3, color=FG.LIGHT)


def _plain_refs(refs: list[int]) -> str:
    return "".join(f"[{n}]" for n in refs)


def pdf(ctx: dict[str, Any]) -> bytes:
    """The PDF report (a few A4 pages, text extractable), from the same context as the HTML."""
    from matplotlib.backends.backend_pdf import PdfPages

    with FG.style():
        figs = pages(ctx)
        buf = io.BytesIO()
        with PdfPages(buf, metadata={"CreationDate": None, "ModDate": None, "Creator": "palsy report",
                                     "Title": ctx["title"], "Subject": f"patient {ctx['patient']['id']}"}) as out:
            for fig in figs:
                out.savefig(fig)
    return buf.getvalue()


def pages(ctx: dict[str, Any]) -> list[Any]:
    """The PDF's pages as matplotlib figures (call inside :func:`reports.figures.style`): the same
    sections, numbers and words as the HTML, in the same order."""
    m = {p["name"]: p["value"] for p in ctx["provenance"]}
    pg = _Pages(f"palsy {m['palsy version']} | patient {ctx['patient']['id']} | evidence "
                f"{m['Evidence hash'][:12]} | {m['Model variant']} variant")
    ci = ctx["ci_percent"]
    pg.para(ctx["title"], 13, weight="bold")
    pat = ctx["patient"]
    pg.para(f"Clinician report for patient {pat['id']}" + (f": {pat['description']}" if pat["description"] else ""), 8.5)
    for w in ctx["warnings"]:
        pg.para(f"{w['heading'].upper()} {w['text']}", 8.5, weight="bold", color=FG.RED)
    if ctx["left_out"]:
        pg.para(ctx["left_out"], 7.5, color=FG.BLUE)

    pg.heading("1. Leukemic infiltration and the differential")
    h = ctx["headline"]
    pg.para(f"{h['heading']}{h['qualifier']}: {h['text']}", 12, weight="bold")
    pg.para(h["sentence"], 8.5)
    dif = ctx["differential"]
    pg.table(["Cause", f"After the findings: mean ({ci}% CrI)", "Before any finding: mean"],
             [[r["name"], f"{r['percent']} ({r['interval']})", r["prior_percent"]] for r in dif["rows"]],
             [1.6, 2.0, 1.1], size=7.5)
    if h["movers"]:
        pg.para("Moved it most: " + "; ".join(h["movers"]) + " (geometric-mean factors on the odds of infiltration).", 7.5)
    pg.need(1.6)
    top = pg.y
    pg.figure("icons", ctx["figures"]["icons"], 1.5, 1.5, advance=False)
    pg.y = top
    pg.para(h["natural"], 8.5, indent=1.7)
    pg.para(ctx["base_rate"]["sentence"] + (f" Sources: {_plain_refs(ctx['base_rate']['refs'])}."
                                           if ctx["base_rate"]["refs"] else ""), 7.5, indent=1.7)
    pg.y = min(pg.y, top - 1.6)

    pg.heading("2. Findings as entered")
    pg.table(["Finding", "Value"], [[f["name"], f["value"]] for f in pat["findings"]], [1.3, 2.6], size=7)
    if pat["unknown"]:
        pg.para("Unknown findings are left out of the calculation (averaged over), never read as negative: "
                + ", ".join(pat["unknown"]) + ".", 7)

    wf = ctx["figures"]["waterfall"]
    _, hh = FG.size("waterfall", wf)
    pg.heading("3. How each finding moved the probabilities", keep=hh)
    pg.figure("waterfall", wf, PAGE_W - 2 * MARGIN, hh, rect=FG.WATERFALL_RECT(hh))
    pg.para(wf["caption"], 7, color=FG.GREY)
    df = ctx["figures"]["differential"]
    _, hd = FG.size("differential", df)
    pg.figure("differential", df, PAGE_W - 2 * MARGIN, hd, rect=FG.DIFFERENTIAL_RECT(hd))
    pg.para(df["caption"], 7, color=FG.GREY)
    names = df["names"]
    pg.table(["Step (clinical order)", f"Factor on the odds of infiltration: geometric mean ({ci}% CrI)",
              f"P(infiltration) after: mean ({ci}% CrI)"] + [f"{n} (mean)" for n in names],
             [[s["label"], s["factor_text"], s["p_text"], *s["causes"]] for s in ctx["steps_table"]],
             [1.5, 1.2, 1.2] + [0.55] * len(names), size=6.2)

    pg.heading("4. Findings, their weight and the evidence behind them")
    if ctx["findings_table"]:
        pg.table(["Finding", f"Factor, clinical order: geometric mean ({ci}% CrI)", "Factor, order-free (Shapley): "
                  "geometric mean", "Evidence (references below)"],
                 [[r["label"], r["factor_text"], r["shapley"],
                   f"as {r['same_as']}" if r["same_as"] else
                   "; ".join(f"{g['label']}: {_plain_refs(g['refs'])}" for g in r["evidence"])]
                  for r in ctx["findings_table"]], [1.6, 1.3, 0.8, 2.6], size=6.8)
    else:
        pg.para("No findings were entered: the answer is the prior of the causes.")

    pg.heading("5. What the next test could do")
    if ctx["next_tests"]:
        rows = [[t["name"], o["result"], o["probability"]["text"], o["after"]["text"], o["leading"]]
                for t in ctx["next_tests"] for o in t["outcomes"]]
        pg.table(["Test", "Result", f"Chance of this result: mean ({ci}% CrI)",
                  f"P(infiltration) after it: mean ({ci}% CrI)", "Leading cause after it"], rows,
                 [1.2, 1.3, 1.4, 1.4, 1.0], size=6.8)
    else:
        pg.para("No pending test is modelled for this patient.")

    pg.heading("6. Fagan nomogram", keep=2.8)
    fg = ctx["figures"]["fagan"]
    top = pg.y
    pg.figure("fagan", fg, 3.4, 2.8, advance=False, rect=(0.0, 0.0, 1.0, 0.92))
    pg.y = top - 0.3
    pg.para(fg["caption"], 7, indent=3.6, color=FG.GREY)
    pg.y = min(pg.y, top - 2.9)

    pg.heading("7. Population and limits of the model")
    pg.para("Population. " + ctx["population"], 7)
    for item in ctx["limits"]:
        pg.para("- " + item, 7, indent=0.1)

    pg.heading("8. Provenance")
    pg.para("; ".join(f"{p['name']}: {p['value']}" for p in ctx["provenance"]) + ".", 6.8)

    pg.heading("9. Disclaimer")
    pg.para(ctx["disclaimer"], 8, weight="bold")

    pg.heading("References")
    pg.columns([f"[{r['n']}] {r['short']}" for r in ctx["references"]], 3, 5.2, gap=0.15)
    return pg.pages


# --- files ---------------------------------------------------------------------------------------

def parse_formats(text: str) -> tuple[str, ...]:
    """'html,pdf' -> ('html', 'pdf'); ValueError naming the value and the allowed formats."""
    got = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in got if f not in FORMATS]
    if bad or not got:
        raise ValueError(f"--format: {text!r} is not allowed; allowed: a comma-separated list of {', '.join(FORMATS)}")
    return got


def file_stem(patient_id: str) -> str:
    """A safe file name from a patient id (anything but letters, digits, '.', '_' and '-' becomes '_')."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id).strip("._") or "patient"
    return stem[:100]


def render(ctx: dict[str, Any], formats: tuple[str, ...] = FORMATS) -> dict[str, bytes]:
    """Every requested format in memory: ``{'html': bytes, 'pdf': bytes}``."""
    out = {}
    if "html" in formats:
        out["html"] = html(ctx).encode("utf-8")
    if "pdf" in formats:
        out["pdf"] = pdf(ctx)
    return out


def write(ctx: dict[str, Any], out_dir: str | Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Render in memory, write to a temporary folder beside ``out_dir``, then move into place."""
    data = render(ctx, formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(ctx["patient"]["id"])
    paths = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".palsy-report-") as tmp:
        for fmt, blob in data.items():
            (Path(tmp) / f"{stem}.{fmt}").write_bytes(blob)
        for fmt in data:
            target = out_dir / f"{stem}.{fmt}"
            os.replace(Path(tmp) / f"{stem}.{fmt}", target)
            paths.append(target)
    return paths

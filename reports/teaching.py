"""The teaching pages (docs/design.md §6, issue 24): presentation only.

The numbers come from :mod:`palsy.model.teach` (answers of patients); the words of causes, findings,
levels, LPs and tests from :mod:`palsy.reports.labels`; the colours from :mod:`palsy.reports.palette`.
``palsy teach`` writes, all or nothing (:func:`palsy.reports.output.write_all`):

- ``lesson.html``: the core (the claim first, one typical patient, the 1,000-patient tree,
  where the probability goes, why each negative LP adds less, the tests in plain words, three
  questions with answers) and the appendix (each finding alone, the source patients step by step, what
  the decision adds, a glossary, where the numbers come from);
- ``handout.html`` and ``handout.pdf``: the core on two printed A4 pages (Chromium prints the HTML, as
  the clinician report's PDF: :mod:`palsy.reports.pdf`);
- ``cases.html``: published cases (and the steroid trap) to solve, each finding revealed after the
  learner predicts its direction, then the answer, the reasoning and the full citation;
- ``interactive.html``: the calculator for every finding of the schema, with a classroom mode (settings
  folded away, the result beside the findings and in view, one finding at a time with predict-then-reveal),
  the case carried in the address's fragment with the command line's names and levels, a link to share it,
  and a patient file to save and load; everything offline (``reports/static/teach.js``);
- ``guide.html``: the facilitator's guide, from ``session`` in ``teaching_cases.yaml``: audience, objectives, a
  timed plan that uses the pages above, the beliefs to expect and what answers them, and the answer key of the
  cases (every answer in view, for print);
- ``lesson.json``: the lesson's numbers.

Every number in the core (lesson and handout) is a ``<span class="n" data-n="KEY">`` whose text
:func:`core_numbers` makes from the answers: tests re-derive each one from ``palsy.model.answer``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

from palsy.model import findings as F
from palsy.reports import palette as P
from palsy.reports import templating
from palsy.reports import wording as W
from palsy.reports.labels import Labels
from palsy.reports.output import write_all

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
LESSON_NAME = "lesson.html"
HANDOUT_NAME = "handout.html"
HANDOUT_PDF = "handout.pdf"
CASES_NAME = "cases.html"
PAGE_NAME = "interactive.html"
#: The interactive page's label of its case list, which the guide names too.
CASE_LABEL = "Case"
#: The classroom preset of the lesson's patient with its negative LPs, which the guide's link opens at its first step
#: and names (a teacher's review, s16: the link projected the answer before the room predicted).
LPS_PRESET_TITLE = "The lesson's patient, with its negative LPs"
#: The address's key that opens the classroom's one-finding-at-a-time on the findings it carries (``teach.js``): the
#: preset they are, at its first step, nothing revealed.
STEP_KEY = "step"
GUIDE_NAME = "guide.html"
#: The clinician report of the lesson's typical patient (what the lesson's A3 points to).
TYPICAL_REPORT_NAME = "typical-report.html"
#: The page each ``material`` of the session's plan names.
MATERIALS = {"lesson": LESSON_NAME, "handout": HANDOUT_PDF, "cases": CASES_NAME, "interactive": PAGE_NAME,
             "guide": GUIDE_NAME}
INF = "infiltration"
#: The probabilities the lesson writes: one decimal, never 0% or 100% (reports/wording.py).
pct = W.percent


def _env():
    return templating.environment()


def _css(name: str = "teach.css") -> Markup:
    return Markup((STATIC / name).read_text(encoding="utf-8").replace("</", "<\\/"))


def _json_script(x: Any) -> Markup:
    data = json.dumps(x, separators=(",", ":"), allow_nan=False)
    return Markup(data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


# --- numbers in words -------------------------------------------------------------------------------

def factor(x: float) -> str:
    """A factor on the odds (a likelihood ratio) as the reports write it: 'x 0.59', 'x 14'."""
    return W.factor(math.log(x))


def count(x: float) -> str:
    """A count of patients: '1,000', '183'."""
    return f"{round(x):,}"


def largest_remainder(values: Mapping[str, float], total: int) -> dict[str, int]:
    """Whole numbers that sum to ``total``, each the floor of its value plus one for the largest
    remainders (so a tree's branches add up)."""
    floors = {k: math.floor(v) for k, v in values.items()}
    short = total - sum(floors.values())
    for k in sorted(values, key=lambda k: values[k] - floors[k], reverse=True)[:max(short, 0)]:
        floors[k] += 1
    return floors


def tree_counts(core: Mapping[str, Any]) -> dict[str, Any]:
    """The two LPs of the 1,000-patient tree in whole patients: each branch's causes by largest remainder
    of the answers' counts (:func:`palsy.model.teach.tree`), the positive branch by subtraction, so every
    split adds up."""
    first, second = core["trees"]
    n = round(first["n"])
    root = largest_remainder(first["all"], n)
    neg1_total = round(first["negative_total"])
    neg1 = largest_remainder(first["negative"], neg1_total)
    neg2_total = round(second["negative_total"])
    neg2 = largest_remainder(second["negative"], neg2_total)
    others = [c for c in root if c != INF]

    def split(all_: dict[str, int], neg: dict[str, int]) -> dict[str, int]:
        return {"inf": all_[INF], "others": sum(all_[c] for c in others), "neg_inf": neg[INF],
                "neg_others": sum(neg[c] for c in others), "pos_inf": all_[INF] - neg[INF],
                "pos_others": sum(all_[c] - neg[c] for c in others)}

    return {"n": n, "root": root, "neg1": neg1, "neg1_total": neg1_total, "neg2": neg2, "neg2_total": neg2_total,
            "lp1": split(root, neg1), "lp2": split(neg1, neg2), "others": others}


def false_positive_counts(core: Mapping[str, Any], tc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tree's positive LPs without infiltration (``t.lp1.pos_others``) split by where they come from
    (:func:`palsy.model.teach.false_positives`): ``tap``, the whole patients that blasts in the blood carried in by a
    traumatic tap add (the count less the same count for the patient with no blasts in the blood, rounded), and
    ``misread`` the rest (reactive cells misread, a method's artefact); ``possible`` says whether the patient can have
    blasts in the blood at all (a teacher's review: the tree blamed a traumatic tap with blood blasts for a patient in
    remission). None without the split (a lesson computed before it)."""
    fp = core.get("false_positive")
    if not fp:
        return None
    total = tc["lp1"]["pos_others"]
    extra = fp["all"] - fp["no_blasts"]
    tap = 0 if not fp["blasts_possible"] or not math.isfinite(extra) else min(max(round(extra), 0), total)
    return {"tap": tap, "misread": total - tap, "possible": bool(fp["blasts_possible"]),
            "known": fp["level"] is not None, "separated": math.isfinite(extra)}


class Numbers:
    """The printed numbers of the core, by key: each a ``<span class="n" data-n="KEY">`` (tests re-derive
    every one from the answers)."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}

    def __setitem__(self, key: str, text: str) -> None:
        self.text[key] = text

    def __getitem__(self, key: str) -> Markup:
        return Markup('<span class="n" data-n="{}">{}</span>').format(key, self.text[key])

    def __contains__(self, key: str) -> bool:
        return key in self.text


def core_numbers(core: Mapping[str, Any]) -> Numbers:
    """Every number the core prints, formatted, by key (see the module's docstring)."""
    N = Numbers()
    ci = core["ci"]
    N["ci"] = W.ci_percent(ci) + "%"
    for k, s in enumerate(core["steps"]):
        p = s["probability"]
        N[f"p{k}"], N[f"lo{k}"], N[f"hi{k}"] = pct(p["mean"]), pct(p["lower"]), pct(p["upper"])
        N[f"of100_{k}"] = str(round(100 * p["mean"]))
        for c in s["causes"]:
            N[f"c{k}.{c['cause']}"] = pct(c["probability"]["mean"])
            N[f"c{k}.{c['cause']}.lo"] = pct(c["probability"]["lower"])
            N[f"c{k}.{c['cause']}.hi"] = pct(c["probability"]["upper"])
    for k, v in enumerate(core.get("variants") or []):
        if v and v.get("probability"):
            N[f"v{k}"] = pct(v["probability"]["mean"])
            N["vmargin"] = str(round(100 * float(v["threshold"])))  # percentage points: model.yaml's differ_by
    for k, lr in enumerate(core["lr"], start=1):
        N[f"lr{k}"] = factor(lr)
    for k, pn in enumerate(core["p_negative"], start=1):
        N[f"pneg{k}"] = pct(pn)
    for k, g in enumerate(core["gain"], start=1):
        for c, share in g.items():
            N[f"gain{k}.{c}"] = pct(share)
    tc = tree_counts(core)
    N["t.n"] = count(tc["n"])
    for c, v in tc["root"].items():
        N[f"t.all.{c}"] = count(v)
    for c, v in tc["neg1"].items():
        N[f"t.neg1.{c}"] = count(v)
    for c, v in tc["neg2"].items():
        N[f"t.neg2.{c}"] = count(v)
    N["t.neg1"], N["t.pos1"] = count(tc["neg1_total"]), count(tc["n"] - tc["neg1_total"])
    N["t.neg2"], N["t.pos2"] = count(tc["neg2_total"]), count(tc["neg1_total"] - tc["neg2_total"])
    for lp in ("lp1", "lp2"):
        for key, v in tc[lp].items():
            N[f"t.{lp}.{key}"] = count(v)
    fp = false_positive_counts(core, tc)
    if fp is not None:
        N["fp.misread"], N["fp.tap"] = count(fp["misread"]), count(fp["tap"])
    # the share from the answers' own counts, not the whole patients rounded to add up (those gave 87.5% where the
    # model says 86.8%: a teacher's review, s16)
    first = core["trees"][0]
    pos_inf = first["all"][INF] - first["negative"][INF]
    N["ppos1"] = pct(pos_inf / max(first["n"] - first["negative_total"], 1e-12))
    for key, a in core["accuracy"].items():
        N[f"se.{key}"], N[f"sp.{key}"] = pct(a["sensitivity"]), pct(a["specificity"])
        N[f"lrn.{key}"], N[f"lrp.{key}"] = factor(a["lr_negative"]), factor(a["lr_positive"])
        N[f"pn.{key}"], N[f"after.{key}"] = pct(a["p_negative"]), pct(a["after"]["mean"])
    for m in core["mri"]:
        N[f"mri.{m['value']}.lr"] = factor(m["lr"])
        N[f"mri.{m['value']}.p"] = pct(m["after"]["probability"]["mean"])
    return N


#: The teaching pages' one spelling (:data:`palsy.reports.wording.PAGE_SPELLING`): the schema's and the causes'
#: labels, which every page shows, write US "leukemia" ("Leukemia type", "leukemic infiltration"), so the texts the
#: pages take from other files (actions, decision settings, scope notes, reasonings: "haematologists",
#: "papilloedema") follow them; Guillain-Barré keeps its accent (a teacher's review, s16: "leukemia team" and
#: "leukaemia team" on one page, "Guillain-Barre" beside "Guillain-Barré"). Citations are quoted as published.
SPELLING = W.PAGE_SPELLING["teaching"]


def house_style(text: str) -> str:
    """``text`` in the teaching pages' one spelling (:data:`SPELLING`, :func:`palsy.reports.wording.house_style`)."""
    return W.house_style(text, SPELLING)


def styled(value: Any) -> Any:
    """``value`` (a template's context) in the teaching pages' one spelling, citations and identifiers as they are
    (:func:`palsy.reports.wording.styled`)."""
    return W.styled(value, SPELLING)


def _render(template: str, **context: Any) -> str:
    """``template`` rendered with ``context`` in the pages' one spelling (:func:`styled`)."""
    return _env().get_template(template).render(**styled(context))


def leading_text(d: Mapping[str, Any], labels: Labels) -> str:
    """'Bell's palsy' or, for a near-tie, 'Bell's palsy and zoster, tied' (never a winner on noise)."""
    return W.leading([labels.cause_short(c) for c in [d["leading"], *d["tied"]]])


# --- words learners meet ------------------------------------------------------------------------------------

#: A glossary: (term, pattern, plain meaning), as ``teaching_cases.yaml``'s ``glossary`` gives them
#: (:attr:`palsy.model.teach.Teaching.glossary`).
Glossary = Sequence[tuple[str, str, str]]


def words_on(text: str, glossary: Glossary, leave_out: Sequence[str] = ()) -> list[dict[str, str]]:
    """The terms of ``glossary`` that ``text`` (a page's visible text, unescaped) uses, less ``leave_out``."""
    import re

    return [{"term": term, "text": meaning} for term, pattern, meaning in glossary
            if term not in leave_out and re.search(pattern, text)]


def visible_text(html: str) -> str:
    """A page's visible text, unescaped (scripts and styles left out, the page's data included: the interactive
    page shows the actions and labels it carries as JSON)."""
    import re
    from html import unescape

    html = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    html = re.sub(r"<script(?![^>]*application/json)[^>]*>.*?</script>", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


# --- figures --------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 10})
    return plt


def _svg(fig) -> str:
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buf.getvalue()


def figure_stacked(rows: Sequence[tuple[str, Mapping[str, float]]], causes: Sequence[str], labels: Labels,
                   title: str, min_label: float = 0.07) -> str:
    """Horizontal stacked bars of every cause's mean probability, one bar per row, each segment labelled
    with the cause and its percentage (segments too narrow for a label are named at the bar's end).
    Colours from :mod:`palsy.reports.palette`; patterns for colours used a second time."""
    plt = _plt()
    colors = P.cause_colors(causes)
    fig, ax = plt.subplots(figsize=(7.6, 0.62 * len(rows) + 0.9))
    for i, (_name, m) in enumerate(rows):
        left, small = 0.0, []
        for c in causes:
            v = m.get(c, 0.0)
            col = colors[c]
            ax.barh(i, v, left=left, color=col["fill"], edgecolor="white", linewidth=1.2, hatch=col["hatch"] or None)
            if v >= min_label:
                ax.text(left + v / 2, i, f"{labels.cause_short(c)}\n{pct(v)}", ha="center", va="center", fontsize=8,
                        color=col["text"])
            elif v > 0:
                small.append(f"{labels.cause_short(c)} {pct(v)}")
            left += v
        if small:
            ax.text(1.01, i, "; ".join(small), ha="left", va="center", fontsize=7.5, color=P.INK)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _ in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xticklabels(["0", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("probability of each cause (mean over the model's uncertainty)")
    ax.set_title(title, fontsize=10, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig)


#: The printed handout's chart: drawn at the size it prints, so that its text prints at its own size (a teacher's
#: review, s16: the lesson's chart, shrunk into the handout's box, printed its labels at about 5 pt). Width and height
#: in inches: the A4 page's width within the handout's margins and the height its CSS caps the chart at
#: (``teach_handout.css``: 210 mm less 2 x 10 mm; ``max-height: 5.6cm``), each a little less.
HANDOUT_FIGURE = (7.4, 2.18)
#: The chart's smallest text on the handout, in points (the handout's own text is 7.5 pt and up).
HANDOUT_FIGURE_PT = 7.5


def figure_stacked_print(rows: Sequence[tuple[str, Mapping[str, float]]], causes: Sequence[str], labels: Labels,
                         size: tuple[float, float] = HANDOUT_FIGURE, fontsize: float = HANDOUT_FIGURE_PT) -> str:
    """:func:`figure_stacked` for print, at ``size`` (inches) and with every text at ``fontsize`` points: a legend of
    the causes above the bars, each segment labelled with its cause and percentage where that fits, with its
    percentage where only that fits, and named at the bar's end otherwise (room kept for those inside the axes).
    The image is exactly ``size`` (no tight bounding box), so that printed in a box of that size it is not scaled."""
    plt = _plt()
    colors = P.cause_colors(causes)
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    for i, (_name, m) in enumerate(rows):
        left = 0.0
        for c in causes:
            v = m.get(c, 0.0)
            ax.barh(i, v, left=left, height=0.72, color=colors[c]["fill"], edgecolor="white", linewidth=1.0,
                    hatch=colors[c]["hatch"] or None)
            left += v
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _ in rows], fontsize=fontsize)
    ax.invert_yaxis()
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xticklabels(["0", "25%", "50%", "75%", "100%"], fontsize=fontsize)
    ax.tick_params(length=2.5, pad=1.5)
    ax.set_xlabel("probability of each cause (mean over the model's uncertainty)", fontsize=fontsize, labelpad=1.5)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=colors[c]["fill"], hatch=colors[c]["hatch"] or None,
                             edgecolor="white") for c in causes]
    fig.legend(handles, [labels.cause_short(c) for c in causes], loc="outside upper center", ncols=len(causes),
               fontsize=fontsize, frameon=False, handlelength=1.0, handleheight=0.8, columnspacing=1.0, borderpad=0.1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_bounds(0, 1)
    ax.set_xlim(0, 1)
    fig.canvas.draw()  # the layout: the axes' width in pixels, which the texts inside it do not change
    renderer = fig.canvas.get_renderer()
    axes_px = ax.get_window_extent(renderer).width

    def px(text: str) -> float:
        t = fig.text(0, 0, text, fontsize=fontsize)
        w = t.get_window_extent(renderer).width
        t.remove()
        return w

    pad = px("n")
    xmax, plan = 1.0, []
    for _ in range(6):  # the room for the names at the bars' ends narrows the bars: until that settles
        plan = []
        for _name, m in rows:
            inside, ends, left = [], [], 0.0
            for c in causes:
                v = m.get(c, 0.0)
                fits = [t for t in (f"{labels.cause_short(c)} {pct(v)}", pct(v)) if px(t) + pad < v * axes_px / xmax]
                if fits:
                    inside.append((left + v / 2, fits[0], colors[c]["text"]))
                elif v > 0:
                    ends.append(f"{labels.cause_short(c)} {pct(v)}")
                left += v
            plan.append((inside, "; ".join(ends)))
        room = max((px(e) for _i, e in plan if e), default=0.0)
        new = 1.0 / (1.0 - (room + 2 * pad) / axes_px) if room else 1.0
        if abs(new - xmax) < 1e-9:
            break
        xmax = new
    ax.set_xlim(0, xmax)
    for i, (inside, ends) in enumerate(plan):
        for x, text, color in inside:
            ax.text(x, i, text, ha="center", va="center", fontsize=fontsize, color=color)
        if ends:
            ax.text(1 + pad / axes_px * xmax, i, ends, ha="left", va="center", fontsize=fontsize, color=P.INK)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buf.getvalue()


def _img(svg: str, alt: str, caption: str) -> dict[str, str]:
    return {"src": "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii"),
            "alt": alt, "caption": caption}


# --- the core: lesson and handout -------------------------------------------------------------------------

def _steps_label(k: int) -> str:
    return "before the LP" if k == 0 else f"after {k} negative LP{'s' if k > 1 else ''}"


def core_context(core: Mapping[str, Any], labels: Labels, figure: bool = True, for_print: bool = False) -> dict[str, Any]:
    """The core's template context: the numbers (:func:`core_numbers`), the typical patient in words, the
    differential tables, the tree and the questions' facts; the chart for the screen, or ``for_print`` at the size the
    handout prints it (:func:`figure_stacked_print`)."""
    N = core_numbers(core)
    sc = labels.schema
    causes = core["causes"]
    typ = core["patient"]
    findings = [f"{sc.label(n)}: {sc.level_label(n, typ[n])}" for n in sc.categorical
                if typ.get(n) not in (None, "unknown")]
    lp = F.LP.of(**core["negative_lp"])
    steps = core["steps"]
    diff_rows = []
    for c in causes:
        row = {"cause": c, "label": labels.cause(c), "short": labels.cause_short(c),
               "color": P.cause_colors(causes)[c], "cells": [N[f"c{k}.{c}"] for k in range(len(steps))],
               "interval": [Markup("{}&ndash;{}").format(N[f"c{k}.{c}.lo"], N[f"c{k}.{c}.hi"]) for k in range(len(steps))]}
        diff_rows.append(row)
    gain1 = core["gain"][0]
    others_by_gain = sorted(gain1, key=lambda c: -gain1[c])
    acc = [{"key": key, "methods": " and ".join(sc.lp.method_labels[m].split(" (")[0] for m in a["methods"])}
           for key, a in core["accuracy"].items()]
    ctx: dict[str, Any] = {
        "N": N, "ci_pct": W.ci_percent(core["ci"]), "variant": core["variant"], "draws": core["draws"],
        "description": core["description"], "findings": findings, "based_on": core["based_on"],
        "lp_words": labels.lp(lp), "repeats": len(steps) - 1, "steps": [_steps_label(k) for k in range(len(steps))],
        "diff_rows": diff_rows, "lead": [leading_text(s, labels) for s in steps],
        "tied": [bool(s["tied"]) for s in steps],
        "others_by_gain": [{"label": labels.cause_short(c), "key": c} for c in others_by_gain],
        "others_text": ", ".join(labels.cause_short(c) for c in causes if c != INF),
        "tree_others": [{"key": c, "label": labels.cause_short(c)} for c in causes if c != INF],
        "accuracy": acc, "subtype": core["variant"] == "subtype",
        "diminishing": all(b > a for a, b in zip(core["lr"], core["lr"][1:], strict=False)),
        "mri": [{"value": m["value"], "label": sc.level_label(m["finding"], m["value"]),
                 "lead": leading_text(m["after"], labels)} for m in core["mri"]],
        "inf_label": labels.cause(INF), "inf_short": labels.cause_short(INF),
        "colors": P.cause_colors(causes),
        "variants": _variants_note(core),
        "fp": false_positive_counts(core, tree_counts(core)),
    }
    if figure:
        rows = [(_steps_label(k), s["means"]) for k, s in enumerate(steps)]
        svg = (figure_stacked_print(rows, causes, labels) if for_print else
               figure_stacked(rows, causes, labels, "Where the probability goes: our patient"))
        ctx["where_figure"] = _img(svg, "Stacked bars: each cause's probability before and after 1 to 3 negative LPs",
                                   "Each bar is the whole differential of our patient (mean probabilities, labelled "
                                   "on the bar" + (" where they fit, at its end otherwise" if for_print else "") +
                                   "); the intervals are in the table.")
    return ctx


#: Words a minute read aloud: a talk's pace (a teaching convention), for the pages' one account of how long the core
#: takes (a teacher's review, s16: the lesson said "ten-minute", the guide "a quarter of an hour").
READ_ALOUD_WPM = 130


def prose_words(html: str) -> int:
    """The words of a page's visible text, its tables and figures left out (they are shown, not read aloud)."""
    html = re.sub(r"<table\b.*?</table>|<figure\b.*?</figure>", " ", html, flags=re.S)
    return len(visible_text(html).split())


def core_length(core: Mapping[str, Any], labels: Labels) -> dict[str, int]:
    """How long the core (``teach_core.html``: the claim to the three questions and their answers) takes read aloud:
    its words (:func:`prose_words`), shown rounded to tens, and minutes at :data:`READ_ALOUD_WPM`."""
    ctx = core_context(core, labels, figure=False)
    words = prose_words(_render("teach_core.html", **ctx, answers_open=False))
    return {"words": words, "words_shown": int(round(words, -1)), "minutes": max(1, round(words / READ_ALOUD_WPM)),
            "wpm": READ_ALOUD_WPM}


def _variants_note(core: Mapping[str, Any]) -> dict[str, Any] | None:
    """The other variant's P(infiltration) at each step, when it differs from the lesson's by more than the
    design's margin at any step (``palsy posterior`` then prints MODEL UNCERTAINTY): its name, the steps, and
    whether it too falls with each negative LP; None otherwise (a teacher's review found the lesson silent
    where the command warned)."""
    vs = list(core.get("variants") or [])
    if not vs or not all(v and v.get("probability") for v in vs) or not any(v.get("differs") for v in vs):
        return None
    means = [v["probability"]["mean"] for v in vs]
    return {"variant": vs[0]["variant"], "steps": [_steps_label(k) for k in range(len(vs))],
            "falls": all(b < a for a, b in zip(means, means[1:], strict=False))}


def handout_html(core: Mapping[str, Any], labels: Labels, escalating: Sequence[Mapping[str, Any]] = (),
                 glossary: Glossary = ()) -> str:
    """The two-page printable handout: the core, the signs that escalate whatever the probability
    (:func:`escalations`, their words only: the lesson gives why, with the sources) and where the lesson goes
    further."""
    ctx = core_context(core, labels, for_print=True)
    length = core_length(core, labels)

    def render(words: Sequence[Mapping[str, str]]) -> str:
        return _render("teach_handout.html",
                       css=_css("teach_handout.css"), **ctx, answers_open=True, escalations=list(escalating),
                       lesson_name=LESSON_NAME, words=list(words), words_compact=True, length=length)

    # the terms it uses in plain words: only those the handout's own text leaves undefined (LP, CSF and the tap are
    # the lesson's subject, and the handout has two pages)
    return render(words_on(visible_text(render(())), glossary,
                           leave_out=("LP", "CSF", "Blasts", "CNS", "Atraumatic / traumatic tap", "VZV")))


# --- the appendix -----------------------------------------------------------------------------------------

def findings_table(rows: Sequence[Mapping[str, Any]], labels: Labels) -> list[list[str]]:
    """Each finding alone added to the typical patient: factor on the odds, P after (interval), leading cause."""
    sc = labels.schema
    out = []
    for r in rows:
        p = r["after"]["probability"]
        out.append([sc.label(r["finding"]), sc.level_label(r["finding"], r["value"]), factor(r["lr"]),
                    f"{pct(p['mean'])} ({pct(p['lower'])} to {pct(p['upper'])})", leading_text(r["after"], labels)])
    return out


def step_label(step: Mapping[str, Any], labels: Labels, unstated: Mapping[str, Any] | None = None) -> str:
    """A step of a walkthrough in words: 'LP 1: cytology negative' or 'Side of the facial palsy: both sides'; an LP
    whose method its source did not state (``unstated``: :func:`palsy.model.teach.solve`'s) says so and how the model
    reads it: 'LP 1: negative, method not stated (read as cytology)'."""
    if step.get("lp") is not None:
        if unstated and step["index"] in unstated["lps"]:
            results = [r for _m, r in F.LP.of(**step["lp"]).results]
            return f"LP {step['index']}: {' and '.join(results)}, method not stated (read as {method_word(labels, unstated['read_as'])})"
        return f"LP {step['index']}: {labels.lp(F.LP.of(**step['lp']))}"
    return f"{labels.finding(step['finding'])}: {labels.value(step['finding'], step['value'])}"


def start_of(w: Mapping[str, Any], labels: Labels) -> dict[str, str]:
    """Where a walkthrough starts, before its first finding: P(infiltration) (mean, interval) and the leading cause
    (a near-tie named as one)."""
    prior = w["prior"]
    p = prior["probability"]
    lead = leading_text({"leading": prior["leading"], "tied": prior.get("tied", [])}, labels)
    return {"p": pct(p["mean"]), "lo": pct(p["lower"]), "hi": pct(p["upper"]), "lead": lead}


def method_word(labels: Labels, method: str) -> str:
    """An LP method in the pages' words ('cytology', 'flow cytometry')."""
    return labels.schema.lp.method_labels[method].split(" (")[0]


def walk_rows(w: Mapping[str, Any], labels: Labels) -> list[list[str]]:
    """A walkthrough as rows: step, factor on the odds, P(infiltration) after (interval), leading cause; the first
    row where it starts, with its interval too (a teacher's review, s16: it had none)."""
    s0 = start_of(w, labels)
    rows = [["before any finding", "", f"{s0['p']} ({s0['lo']} to {s0['hi']})", s0["lead"]]]
    for s in w["steps"]:
        p = s["probability"]
        rows.append([step_label(s, labels), factor(s["lr"]),
                     f"{pct(s['causes'][INF])} ({pct(p['lower'])} to {pct(p['upper'])})",
                     leading_text(s, labels)])
    return rows


#: File names of the evidence folder that the actions' words cite, as the learner's pages say them (a teacher's
#: review: file paths and tool commands on the learner's pages); the clinician report keeps the file names.
PLAIN = {"priors/decision.yaml": "the decision settings of the clinician report",
         "priors/actions.yaml": "the clinician report's list of actions"}


def plain(text: str) -> str:
    """``text`` with the evidence folder's file names (:data:`PLAIN`) in plain words."""
    for path, words in PLAIN.items():
        text = text.replace(f"({path})", f"({words})").replace(path, words)
    return text


def escalations(actions: Sequence[Any], references: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The actions of ``priors/actions.yaml`` that call the leukaemia team today (``urgency: escalation``), by
    priority, each with its detail and the short citations of its sources: what the lesson teaches as the signs
    that escalate whatever the probability (a teacher's review found bilateral and multi-nerve palsy untaught)."""
    from palsy.reports.context import short_citation

    return [{"id": a.id, "text": plain(a.text), "sign": a.sign, "detail": plain(a.detail),
             "compact": compact_escalation(a.sign or "", plain(a.text)),
             "refs": [short_citation(references[k]).rstrip(".") for k in a.refs if k in references]}
            for a in sorted(actions, key=lambda a: a.priority) if a.urgency == "escalation"]


#: Short words a restatement of a sign is not judged by.
_MINOR = frozenset("a an and the of in on or to with by from not is are be its this that as at for".split())


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _MINOR}


def compact_escalation(sign: str, text: str) -> dict[str, str]:
    """An escalation as the handout lists it: the sign in bold, then what to do, said once. An action's text often
    opens by restating its sign ("Blasts in the CSF, not from a known bloody tap, with this palsy are CNS3 disease,
    whatever leads: a mimic can coexist"); then that opening stands for the sign and the rest follows it, rather
    than the sign and the text's own restatement of it (a teacher's review, s16). The opening restates the sign
    when it holds at least half of the sign's words (short words aside)."""
    head, sep, rest = text.partition(": ")
    words = _content_words(sign)
    if sep and words and len(words & _content_words(head)) >= len(words) / 2:
        return {"sign": head, "text": rest}
    return {"sign": sign, "text": text}


def lesson_html(L: Mapping[str, Any], labels: Labels, references: Mapping[str, Mapping[str, Any]],
                escalating: Sequence[Mapping[str, Any]] = (), glossary: Glossary = ()) -> str:
    """The lesson: the core, the signs that escalate whatever the probability (:func:`escalations`), then the
    appendix."""
    from palsy.reports.context import listed_citation

    ctx = core_context(L["core"], labels)
    walks = [{"id": w["id"], "description": w["description"], "rows": walk_rows(w, labels),
              "left_out": w["left_out"], "final": leading_text(w["final"], labels),
              "scope": w["scope_notes"]} for w in L["walkthroughs"]]
    cited = sorted({k for c in L["cases"] for k in ([c["case"]["ref"]] if c["case"]["ref"] else []) + list(c["case"]["refs"])})

    length = core_length(L["core"], labels)

    def render(words: Sequence[Mapping[str, str]]) -> str:
        return _render("teach_lesson.html",
                       css=_css(), **ctx, findings_rows=findings_table(L["findings"], labels), walks=walks,
                       not_modelled=", ".join(L["not_modelled"]), evidence_hash=(L.get("evidence_hash") or "")[:12],
                       version=L.get("version") or "", cases_name=CASES_NAME, page_name=PAGE_NAME,
                       handout_name=HANDOUT_PDF, report_name=TYPICAL_REPORT_NAME, answers_open=False,
                       escalations=list(escalating), words=list(words), length=length,
                       references=[{"key": k, "text": listed_citation(references[k])} for k in cited if k in references])

    # the glossary gains the abbreviations the lesson uses (its own entries define the tap)
    return render(words_on(visible_text(render(())), glossary, leave_out=("Atraumatic / traumatic tap",)))


# --- the cases to solve --------------------------------------------------------------------------------------

def fragment(patient: F.Patient, extra: Mapping[str, str] | None = None) -> str:
    """The page's address fragment for ``patient``: the command line's names and levels
    (``lineage=T-ALL&laterality=bilateral&csf=cytology=negative,flow=positive``), one ``csf`` per LP."""
    sc = patient.schema
    parts = [f"id={quote(patient.id, safe='')}"] if patient.id else []
    for name in sc.findings:
        if name == sc.lp.name:
            parts += [f"{name}={quote(lp.code, safe='=,')}" for lp in patient.csf]
        elif patient.values.get(name) is not None:
            parts.append(f"{name}={quote(str(patient.values[name]), safe='')}")
    parts += [f"{k}={quote(v, safe=',')}" for k, v in (extra or {}).items()]
    return "&".join(parts)


def direction(lr: float, same_within: float) -> str:
    """'up', 'down' or 'same': a step's factor on the odds against the band of :func:`same_band`."""
    if abs(math.log(lr)) < math.log1p(same_within):
        return "same"
    return "up" if lr > 1 else "down"


def same_band(same_within: float) -> dict[str, str]:
    """The factors on the odds between which a step is "about the same" (:func:`direction`), as the pages
    print them: ``1 / (1 + same_within)`` to ``1 + same_within``, symmetric on the log scale (x 0.91 to x 1.10
    for 0.1). The pages had printed ``1 - same_within`` (x 0.90), so that a step of x 0.905 read "down" inside
    the band they showed (a teacher's review, December 2026)."""
    return {"same_low": factor(1 / (1 + same_within)), "same_high": factor(1 + same_within)}


def cases_context(cases: Sequence[Mapping[str, Any]], labels: Labels, references: Mapping[str, Mapping[str, Any]],
                  patients: Mapping[str, F.Patient], same_within: float) -> list[dict[str, Any]]:
    """Each case to solve: its steps (label, direction, factor, P after and its interval, leading cause), the
    final differential, the source's cause, the reasoning and the full citations."""
    from palsy.reports.context import listed_citation

    out = []
    for c in cases:
        case = c["case"]
        keys = ([case["ref"]] if case["ref"] else []) + list(case["refs"])
        steps = []
        unstated = c.get("unstated")
        for s in c["steps"]:
            p = s["probability"]
            geo = s.get("lr_geometric")
            steps.append({"label": step_label(s, labels, unstated), "direction": direction(s["lr"], same_within),
                          "factor": factor(s["lr"]), "p": pct(s["causes"][INF]), "lo": pct(p["lower"]),
                          "hi": pct(p["upper"]), "lead": leading_text(s, labels), "lr": s["lr"],
                          "lr_report": geo, "report_factor": factor(geo) if geo else ""})
        final = c["final"]
        diff = [{"label": labels.cause(x["cause"]), "mean": pct(x["probability"]["mean"]),
                 "lo": pct(x["probability"]["lower"]), "hi": pct(x["probability"]["upper"])} for x in final["causes"]]
        without = c.get("without_lps")
        out.append({"id": case["id"], "title": case["title"], "source": case["source"], "constructed": case["constructed"],
                    "established": case["established"], "teaching": case["teaching"], "notes": case["notes"],
                    "cause": labels.cause(case["cause"]) if case["cause"] in labels.causes else case["cause"],
                    "cause_key": case["cause"], "steps": steps, "final_lead": leading_text(final, labels),
                    "disagrees": case["cause"] in labels.causes and case["cause"] not in [final["leading"], *final["tied"]],
                    "final_p": pct(final["probability"]["mean"]), "diff": diff,
                    # every probability with its interval (a teacher's review, s16: these two had none)
                    "final_lo": pct(final["probability"]["lower"]), "final_hi": pct(final["probability"]["upper"]),
                    "without": ({"p": pct(without["probability"]["mean"]), "lead": leading_text(without, labels),
                                 "lo": pct(without["probability"]["lower"]), "hi": pct(without["probability"]["upper"])}
                                if without else None),
                    "left_out": c["left_out"], "in_scope": c["in_scope"], "scope": c["scope_notes"],
                    # where the case starts, before its first finding (a teacher's review, s16: never shown)
                    "start": start_of(c, labels),
                    # LPs whose method the source did not state, read as model.yaml's unknown_csf_method (s16)
                    "unstated": ({"lps": _and([str(j) for j in unstated["lps"]]), "count": len(unstated["lps"]),
                                  "read_as": method_word(labels, unstated["read_as"])} if unstated else None),
                    "fragment": fragment(patients[case["id"]]),
                    # each as published, with its DOI and PMID, and "citation incomplete" where it is (s18)
                    "citations": [listed_citation(references[k]) for k in keys if k in references]})
    return out


def _and(items: Sequence[str]) -> str:
    """'1', '1 and 2', '1, 2 and 3'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def factor_note(cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the pages say about their factors beside the clinician report's (a teacher's review: the guide and the
    cases said theirs were "as palsy posterior gives them", which prints the geometric mean over the draws): the
    step of the cases where the two differ most (``example``: case number and title, the step, both factors), and
    the steps where they point in opposite directions (``opposite``, of ``steps``)."""
    best, opposite, total = None, 0, 0
    for i, c in enumerate(cases, start=1):
        for s in c["steps"]:
            if not s.get("lr_report"):
                continue
            total += 1
            if (s["lr"] - 1) * (s["lr_report"] - 1) < 0:
                opposite += 1
            gap = abs(math.log(s["lr_report"]) - math.log(s["lr"]))
            if best is None or gap > best[0]:
                best = (gap, {"case": i, "title": c["title"], "step": s["label"], "here": s["factor"],
                              "report": s["report_factor"]})
    return {"factors": {"example": best[1] if best else None, "opposite": opposite, "steps": total}}


def cases_html(cases: Sequence[Mapping[str, Any]], ci: float, same_within: float, glossary: Glossary = ()) -> str:
    """The cases to solve (predict-then-reveal works without JavaScript: each answer is a disclosure)."""
    js = (STATIC / "teach_cases.js").read_text(encoding="utf-8")
    if "</script" in js.lower():
        raise ValueError("teach_cases.js must not contain '</script'")
    def render(words: Sequence[Mapping[str, str]]) -> str:
        return _render("teach_cases.html",
            css=_css(), cases=cases, ci_pct=W.ci_percent(ci), page_name=PAGE_NAME, lesson_name=LESSON_NAME,
            js=Markup(js), words=list(words), words_compact=False, **same_band(same_within), **factor_note(cases))

    return render(words_on(visible_text(render(())), glossary))


def guide_html(session: Mapping[str, Any], cases: Sequence[Mapping[str, Any]], ci: float, same_within: float,
               *, core: Mapping[str, Any] | None = None, patient_with_lps: Any = None,
               labels: Labels | None = None) -> str:
    """The facilitator's guide: who the session is for, its objectives, the timed plan (each step with its
    start and end minute and the page it uses), what the plan's steps need (the answers to the three questions,
    the classroom link of the lesson's patient with its negative LPs and the numbers the page will show), the
    beliefs to expect with what answers them (those of ``teaching_cases.yaml``, then those whose answers are the
    model's numbers: the credible interval, the two variants, the two factors on the odds), and the answer key of
    the cases (:func:`cases_context`: each finding's direction, both factors and P after, the final answer and the
    reasoning), all in view, for the screen and for print.

    ``core`` (the lesson's core, :func:`palsy.model.teach.core`), ``patient_with_lps``
    (:func:`palsy.model.teach.typical_with_lps`) and ``labels``: without them the guide has the plan, the beliefs
    of ``teaching_cases.yaml`` and the answer key only."""
    start, plan = 0, []
    for step in session["plan"]:
        plan.append({**step, "start": start, "end": start + int(step["minutes"]), "page": MATERIALS[step["material"]]})
        start += int(step["minutes"])
    extra: dict[str, Any] = {"lesson": None, "length": None}
    if core is not None and patient_with_lps is not None and labels is not None:
        patient = patient_with_lps
        ctx = {k: v for k, v in core_context(core, labels, figure=False).items() if k != "ci_pct"}
        N = ctx["N"]
        sc = patient.schema
        method_words = {key: " and ".join(sc.lp.method_labels[m].split(" (")[0] for m in a["methods"])
                        for key, a in core["accuracy"].items()}
        extra = {**ctx, "length": core_length(core, labels), "lesson": {
            # opens the classroom on the preset of these findings at its first step: nothing revealed until the room
            # has predicted (it had opened with every LP applied and the answer on screen: a teacher's review, s16)
            "link": f"{PAGE_NAME}#{fragment(patient)}&mode=classroom&{STEP_KEY}=1",
            "preset": LPS_PRESET_TITLE,
            "before": [f"{sc.label(n)}: {sc.level_label(n, patient.values[n])}" for n in sc.categorical
                       if patient.values.get(n) is not None],
            "lp_steps": [{"label": _steps_label(k), "p": N[f"p{k}"], "lr": N[f"lr{k}"] if k else None}
                         for k in range(len(core["steps"]))],
            "one_lp": [{"methods": method_words[key], "p": N[f"after.{key}"], "alone": len(a["methods"]) == 1,
                        "method": a["methods"][0]} for key, a in core["accuracy"].items()],
            "method_labels": {m: sc.lp.method_labels[m].split(" (")[0] for m in sc.lp.methods},
            "lp_words": " and ".join(sc.lp.method_labels[m].split(" (")[0] for m in sc.lp.methods
                                     if m in core["negative_lp"]),
            "variants": _variants_entry(core, labels),
        }}
    return _render("teach_guide.html",
        css=_css(), session=session, plan=plan, cases=cases, ci_pct=W.ci_percent(ci),
        names={"lesson": LESSON_NAME, "cases": CASES_NAME, "page": PAGE_NAME, "handout": HANDOUT_PDF},
        **same_band(same_within), **factor_note(cases), **extra,
        words={"up": "up", "down": "down", "same": "about the same"},
        # the page's own words for the controls the guide names (the schema's LP label is the page's legend)
        controls={"case": CASE_LABEL, "lp_legend": labels.schema.lp.label if labels else "Lumbar punctures"})


#: Where a mean falls against a decision's thresholds, without the decision's action (said of the other variant).
POSITION = {"no_test": "falls below the lower threshold", "test": "falls between the thresholds",
            "treat": "falls above the upper threshold"}


def _variants_entry(core: Mapping[str, Any], labels: Labels) -> dict[str, Any] | None:
    """The other variant at each step of the lesson (its P(infiltration) beside this variant's), whether it is lower
    after every negative LP, and the first step where the decision would or may differ under it (``flip``).

    Where its mean falls in another zone of this variant's decision it may differ (``palsy posterior``'s "the decision
    may differ under it": the other variant's own thresholds are not computed, so no action is said of its mean).
    Where either mean reads as a threshold as written (:func:`palsy.reports.wording.shown_at`:
    9.98% against a floor of 10% reads '10.0%'), it may differ, and that mean is said to read as the threshold
    rather than to fall in the zone the unrounded comparison gives it (the knife edge the report's words mended
    first, December 2026). None without the other variant."""
    vs = list(core.get("variants") or [])
    if not vs or not all(v and v.get("probability") for v in vs):
        return None
    steps = []
    for k, (v, s) in enumerate(zip(vs, core["steps"], strict=True)):
        th = v.get("thresholds") or {}
        zones = v.get("zone_words") or {}  # decision.yaml's words for each zone
        other, ours = v["probability"]["mean"], s["probability"]["mean"]
        edges = {who: W.shown_at({"thresholds": th, "probability": p}) if th else None
                 for who, p in (("other", other), ("ours", ours))}
        # the other variant's mean is placed against this variant's thresholds only: its own decision (its own
        # thresholds, the work-up still due) is not computed, so no action is said of it (a teacher's review, s16:
        # 'its 4.5% is below the lower threshold: no further test', where that variant's own decision tests again)
        where = {who: f"reads as {W.EDGE_NAME[edges[who]]}" if edges[who] else
                 (POSITION.get(v.get("action") or "", "") if who == "other" else f"is {zones.get(who, '')}")
                 for who in edges}
        steps.append({"label": _steps_label(k), "k": k, "other": pct(other), "ours": pct(ours),
                      "differs": bool(v.get("decision_differs")), "edge": any(edges.values()),
                      "low": pct(th["low"]) if th else "", "high": pct(th["high"]) if th else "",
                      "other_where": where["other"], "our_where": where["ours"]})
    lower = all(v["probability"]["mean"] < s["probability"]["mean"] for v, s in zip(vs[1:], core["steps"][1:], strict=True))
    flip = next((st for st in steps if st["differs"] or st["edge"]), None)
    return {"variant": vs[0]["variant"], "ours": core["variant"], "steps": steps, "lower": lower, "flip": flip}


# --- the interactive page ------------------------------------------------------------------------------------

def page_labels(labels: Labels, causes: Sequence[str]) -> dict[str, Any]:
    """Every word the page shows for causes, findings, levels, LPs and tests (from the one labels module)."""
    sc = labels.schema
    out: dict[str, Any] = {"causes": {c: {"label": labels.cause(c), "short": labels.cause_short(c)} for c in causes},
                           "findings": {}, "tests": {k: labels.test(k) for k in sc.next_tests}}
    for name in sc.categorical:
        out["findings"][name] = {"label": sc.label(name), "help": sc.help(name),
                                 "levels": {lv: sc.level_label(name, lv) for lv in sc.allowed(name)},
                                 "short": {lv: sc.short_label(name, lv) for lv in sc.levels[name]}}
    lp = sc.lp
    out["lp"] = {"label": lp.label, "help": lp.help, "methods": dict(lp.method_labels), "results": dict(lp.result_labels),
                 "traumatic": dict(lp.traumatic_labels)}
    return out


def page_rules(actions: Sequence[Any], references: Mapping[str, Mapping[str, Any]], page_one: int,
               decision_settings: Any = None) -> dict[str, Any]:
    """The actions of ``priors/actions.yaml`` as data (their triggers evaluated in the browser) with short
    citations of their sources, and what the page knows of the decision without computing its thresholds
    (``decision_settings``: the treatment threshold and the testing floor, which bound them: a trigger on the
    decision is read under every decision the mean allows, and what depends on the rest is left to the
    clinician report)."""
    from palsy.reports.context import short_citation

    keys = sorted({k for a in actions for k in a.refs})
    out = {"actions": [{"id": a.id, "text": plain(a.text), "detail": plain(a.detail), "when": a.when,
                        "priority": a.priority, "urgency": a.urgency, "refs": list(a.refs)}
                       for a in sorted(actions, key=lambda a: a.priority)],
           "page_one": page_one, "references": {k: short_citation(references[k]) for k in keys if k in references}}
    if decision_settings is not None:
        out["decision"] = {"treatment": float(decision_settings.treatment_threshold),
                           "floor": float(decision_settings.testing_floor)}
    return out


#: The page's groups of findings, by the schema's roles (a role not listed goes to "other").
GROUPS = (("context", "Who the patient is", ("context",)), ("palsy", "What the palsy looks like", ("scope", "presentation")),
          ("lp", "Lumbar punctures and the CSF", ("lp_profile",)), ("imaging", "Imaging", ("imaging",)))


def page_groups(schema: Mapping[str, Any], labels: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The page's fieldsets: every categorical finding of the schema, by role, with its words."""
    groups = [{"id": gid, "legend": legend, "roles": roles, "findings": []} for gid, legend, roles in GROUPS]
    other = {"id": "other", "legend": "Other findings", "roles": (), "findings": []}
    for f in schema["findings"]:
        if f["role"] == "lp":
            continue
        words = labels["findings"][f["name"]]
        item = {"name": f["name"], "label": words["label"], "help": words["help"],
                "options": [{"value": lv, "label": words["levels"].get(lv, lv)} for lv in f["allowed"]]}
        group = next((g for g in groups if f["role"] in g["roles"]), other)
        group["findings"].append(item)
    lp_group = next(g for g in groups if g["id"] == "lp")
    lp_group["legend"] = labels["lp"]["label"]
    return [g for g in groups + [other] if g["findings"] or g["id"] == "lp"]


def page_html(models: Sequence[Mapping[str, Any]], *, schema: Mapping[str, Any], labels: Mapping[str, Any],
              rules: Mapping[str, Any], presets: Sequence[Mapping[str, Any]], ci: float = 0.9,
              same_within: float = 0.1, not_modelled: Sequence[str] = (), glossary: Glossary = ()) -> str:
    """The self-contained interactive page (``glossary``: the words learners meet, those it uses defined on it).

    Parameters
    ----------
    models : sequence of dict
        :func:`palsy.model.teach.page_tables` of each variant (the first is the default).
    schema : dict
        :func:`palsy.model.teach.page_schema`.
    labels : dict
        :func:`page_labels`.
    rules : dict
        :func:`page_rules`.
    presets : sequence of dict
        Cases the classroom mode offers: ``id``, ``title``, ``fragment`` and ``cause`` (what the source
        established, in words).
    same_within : float
        A step whose factor on the odds is within the band of :func:`same_band` counts as "about the same".
    """
    js = (STATIC / "teach.js").read_text(encoding="utf-8")
    if "</script" in js.lower():
        raise ValueError("teach.js must not contain '</script'")
    first = models[0]
    causes = first["causes"]
    variants = [m["variant"] for m in models]
    # the data the page shows in words, in the pages' one spelling (its citations as published)
    data = styled({"schema": schema, "labels": labels, "rules": rules, "presets": list(presets), "ci": ci,
                   "same_within": same_within, "variants": variants, "palette": P.cause_colors(causes),
                   "not_modelled": list(not_modelled)})
    lp = labels["lp"]

    def render(tables: Sequence[Mapping[str, Any]], words: Sequence[Mapping[str, str]]) -> str:
        return _render("teach_page.html",
            css=_css(), js=Markup(js), data_json=_json_script(data),
            models=[{"variant": m["variant"], "json": _json_script({**m, "settings": styled(m["settings"])})}
                    for m in tables], ci=ci, draws=first["n"],
            evidence_hash=(first.get("evidence_hash") or "")[:12], version=first.get("version") or "", variants=variants,
            others=", ".join(labels["causes"][c]["label"] for c in causes if c != INF),
            causes=[{"cause": c, "label": labels["causes"][c]["label"]} for c in causes],
            groups=page_groups(schema, labels), presets=presets, max_lps=schema["lp"]["max_lps"],
            methods=[{"name": m, "label": lp["methods"][m].split(" (")[0]} for m in schema["lp"]["methods"]],
            results=[{"value": r, "label": r} for r in schema["lp"]["results"]],
            traumatic=[{"value": t, "label": lp["traumatic"][t]} for t in schema["lp"]["traumatic"]],
            not_modelled=", ".join(not_modelled), lesson_name=LESSON_NAME, cases_name=CASES_NAME, case_label=CASE_LABEL,
            words=list(words), words_compact=False)

    # the terms the page uses (its words and the actions and labels it shows, not the model's tables), defined
    return render(models, words_on(visible_text(render((), ())), glossary))


# --- files ---------------------------------------------------------------------------------------------------

def write(out: Path, files: Mapping[str, bytes]) -> dict[str, Path]:
    """Write the lesson's files as one set (all or nothing: :func:`palsy.reports.output.write_all`)."""
    return dict(write_all(out, dict(files)))


def to_jsonable(x: Any) -> Any:
    """The lesson's numbers as plain JSON (arrays as lists)."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


__all__ = ["CASES_NAME", "HANDOUT_NAME", "HANDOUT_PDF", "LESSON_NAME", "PAGE_NAME", "Numbers", "cases_context",
           "cases_html", "core_context", "core_numbers", "escape", "fragment", "handout_html", "lesson_html",
           "page_html", "page_labels", "page_rules", "tree_counts", "write", "escalations", "guide_html", "same_band",
           "GUIDE_NAME", "TYPICAL_REPORT_NAME", "MATERIALS"]

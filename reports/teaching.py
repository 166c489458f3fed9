"""The teaching lesson and the interactive page (DESIGN §6, *Teaching*): presentation only.

The numbers come from :func:`palsy.model.teach.lesson`, :func:`palsy.model.teach.page_tables` and
:func:`palsy.model.teach.page_rules`; this module
draws figures (matplotlib) and writes two self-contained HTML files (jinja2 with autoescaping; CSS,
JavaScript, figures and posterior draws inline; no network resources):

- ``lesson.html``: the lesson, with figures, tables, natural-frequency trees and the source patients;
- ``interactive.html``: the clinician's calculator: controls for the prior, every finding of the schema, the
  causes weighed and the decision's thresholds; the differential, the decision and the actions that apply,
  computed in the browser from every posterior draw (``reports/static/teach.js``), with the decision's harms
  (``priors/decision.yaml``) and the actions (``priors/actions.yaml``) embedded as data.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from palsy.model import findings as F
from palsy.reports import wording as W
from palsy.reports.output import write_all

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
LESSON_NAME = "lesson.html"
PAGE_NAME = "interactive.html"
COLORS = ("#1a5fb4", "#c64600", "#26a269", "#813d9c", "#986a44", "#5e5c64", "#e01b24")
FINDING_LABELS = {
    "onset": "Onset", "laterality": "Facial palsy", "eighth_nerve": "VIII (hearing, tinnitus, vertigo)",
    "other_cranial_nerves": "Other cranial nerve(s)", "peripheral_nerves": "Peripheral nerve(s)",
    "vesicles": "Vesicles", "otoscopy": "Otoscopy", "csf_profile": "CSF cells/protein", "mri": "MRI", "csf": "LP",
    "lineage": "Leukemia", "remission": "Status", "age_group": "Age", "recent_vincristine": "Recent vincristine",
    "recent_hsct": "Recent HSCT",
}


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=jinja2.select_autoescape(["html"], default=True),
                              undefined=jinja2.StrictUndefined)


def _interval(s: dict[str, float]) -> str:
    return f"{W.percent(s['lower'])} to {W.percent(s['upper'])}"


def _p(s: dict[str, float], ci_pct: int, which: str = "mean") -> str:
    """'12.3% (90% CrI 4.1% to 30.2%)' for the mean or the median."""
    return f"{W.percent(s[which])} ({ci_pct}% CrI {_interval(s)})"


def _factor(s: dict[str, float]) -> tuple[str, str]:
    """The geometric-mean factor exp(mean log factor) and its interval."""
    return W.factor(s["mean"]), f"{W.factor(s['lower'])} to {W.factor(s['upper'])}"


CAUSE_NAMES = {"infiltration": "leukemic infiltration", "bell": "Bell's palsy", "zoster": "VZV (Ramsay Hunt)",
               "vincristine": "vincristine neuropathy", "gbs": "Guillain-Barré syndrome",
               "otomastoiditis": "otomastoiditis"}


def _cause(c: str) -> str:
    return CAUSE_NAMES.get(c, c.replace("_", " "))


def _value_label(finding: str, value: str) -> str:
    if finding == "csf":
        result, method = value.split(":")
        return f"LP {result} ({'flow cytometry' if method == 'flow' else 'cytology'})"
    return f"{FINDING_LABELS.get(finding, finding.replace('_', ' '))}: {value.replace('_', ' ')}"


# --- figures -------------------------------------------------------------------------------------

def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_curves(L: dict[str, Any], method: str) -> bytes:
    """P(infiltration) after 0..3 negative LPs by ``method`` (mean, with the CrI band) against pretest."""
    plt = _plt()
    c = L["curves"]
    x = c["pretest"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, b in enumerate(c["curves"][method]):
        col = COLORS[k]
        ax.fill_between(x, b["lower"], b["upper"], color=col, alpha=0.15 if k else 0.0, lw=0)
        label = "no LP (post-test = pretest)" if k == 0 else f"{k} negative LP{'s' if k > 1 else ''}"
        ax.plot(x, b["mean"], color=col, lw=2, ls="--" if k == 0 else "-", label=label + (" (mean)" if k else ""))
    for thr in (0.1, 0.05, 0.01):
        ax.axhline(thr, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("pretest P(infiltration) for who the patient is")
    ax.set_ylabel("P(infiltration) against the other causes")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Negative LPs by {_method_name(method)}: mean and {round(100 * c['ci'])}% CrI")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def figure_where(L: dict[str, Any]) -> bytes:
    """Every cause's mean probability after 0..3 negative LPs (typical patient), one panel per method."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(F.CSF_METHODS), figsize=(9.5, 3.4), sharey=True)
    causes = L["causes"]
    for ax, m in zip(axes, F.CSF_METHODS, strict=True):
        steps = L["where"][m]["steps"]
        for k, st in enumerate(steps):
            left = 0.0
            for j, c in enumerate(causes):
                v = st["causes"][c]["mean"]
                ax.barh(k, v, left=left, color=COLORS[j % len(COLORS)], edgecolor="white",
                        label=_cause(c) if k == 0 else None)
                if v >= 0.08:
                    ax.text(left + v / 2, k, W.percent(v), ha="center", va="center", fontsize=7, color="white")
                left += v
        ax.set_yticks(range(len(steps)))
        ax.set_yticklabels([f"{st['k']} negative LP{'s' if st['k'] != 1 else ''}" for st in steps], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(f"by {_method_name(m)}", fontsize=9)
        ax.set_xlabel("mean probability of each cause")
    axes[0].invert_yaxis()  # shared: once
    axes[0].legend(loc="upper center", bbox_to_anchor=(1.05, -0.22), ncol=len(causes), fontsize=7, frameon=False)
    fig.suptitle("Where the probability taken from infiltration goes (typical patient)", fontsize=10)
    return _png(fig)


def figure_repeat(L: dict[str, Any]) -> bytes:
    """Geometric-mean factor on the odds of k negative LPs: the model against naive multiplication."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.0), sharey=True)
    for ax, method in zip(axes, F.CSF_METHODS, strict=True):
        r = L["repeat"][method]
        ks = r["k"]
        for name, key, col, off in (("model", "joint", COLORS[0], -0.08),
                                    ("naive: the single-LP factor to the k-th power", "naive", COLORS[1], 0.08)):
            mid = [math.exp(s["mean"]) for s in r[key]]
            lo = [math.exp(s["lower"]) for s in r[key]]
            hi = [math.exp(s["upper"]) for s in r[key]]
            xs = [k + off for k in ks]
            err = [[max(m - a, 0) for m, a in zip(mid, lo, strict=True)], [max(b - m, 0) for m, b in zip(mid, hi, strict=True)]]
            ax.errorbar(xs, mid, yerr=err, fmt="o-", color=col, capsize=3, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("number of negative LPs")
        ax.set_title(f"by {_method_name(method)}")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"factor on the odds of infiltration (geometric mean, {round(100 * L['ci'])}% CrI)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Repeated negative LPs, {L['repeat_variant']} variant")
    return _png(fig)


def figure_findings(L: dict[str, Any]) -> bytes:
    """Geometric-mean factor on the odds of each finding alone (with its CrI), log scale."""
    plt = _plt()
    rows = L["findings"]
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(rows) + 1.2))
    for i, r in enumerate(rows):
        s = r["log_lr"]
        y = len(rows) - 1 - i
        col = COLORS[0] if s["mean"] >= 0 else COLORS[1]
        ax.plot([math.exp(s["lower"]), math.exp(s["upper"])], [y, y], color=col, lw=2)
        ax.plot(math.exp(s["mean"]), y, "o", color=col)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_value_label(r["finding"], r["value"]) for r in reversed(rows)], fontsize=7)
    ax.axvline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"factor on the odds of infiltration against the other causes (geometric mean, "
                  f"{round(100 * L['ci'])}% CrI); < 1 lowers, > 1 raises")
    ax.grid(alpha=0.3, which="both", axis="x")
    return _png(fig)


def figure_walks(L: dict[str, Any]) -> bytes | None:
    """P(infiltration) (mean and CrI) after each step for each source patient."""
    if not L["walkthroughs"]:
        return None
    plt = _plt()
    walks = L["walkthroughs"]
    fig, axes = plt.subplots(1, len(walks), figsize=(4.2 * len(walks), 4.0), sharey=True, squeeze=False)
    for ax, w in zip(axes[0], walks, strict=True):
        pts = [w["prior"]] + [s["probability_after"] for s in w["steps"]]
        labels = ["before any finding"] + [s["label"] for s in w["steps"]]
        xs = range(len(pts))
        ax.errorbar(xs, [p["mean"] for p in pts], yerr=[[p["mean"] - p["lower"] for p in pts],
                                                         [p["upper"] - p["mean"] for p in pts]],
                    fmt="o-", color=COLORS[0], capsize=3)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(w["id"], fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"P(infiltration): mean, {round(100 * L['ci'])}% CrI")
    return _png(fig)


def figures(L: dict[str, Any]) -> dict[str, bytes]:
    """Every figure of the lesson as PNG bytes, by file name."""
    out = {f"posttest_{m}.png": figure_curves(L, m) for m in F.CSF_METHODS}
    out["where.png"] = figure_where(L)
    if L["repeat"]:
        out["repeat_lps.png"] = figure_repeat(L)
    out["findings.png"] = figure_findings(L)
    walks = figure_walks(L)
    if walks:
        out["source_patients.png"] = walks
    return out


def _img(png: bytes, alt: str, caption: str) -> dict[str, str]:
    return {"src": "data:image/png;base64," + base64.b64encode(png).decode(), "alt": alt, "caption": caption}


# --- the lesson's context ------------------------------------------------------------------------

def _method_name(m: str) -> str:
    return "flow cytometry" if m == "flow" else "cytology"


def _tree(t: dict[str, Any], ci_pct: int) -> dict[str, Any]:
    c = t["counts"]
    m = _method_name(t["method"])

    def n(key: str) -> str:
        return f"{c[key]['mean']:,.0f}"

    def crI(key: str) -> str:
        s = c[key]
        return f"({ci_pct}% CrI {s['lower']:,.0f} to {s['upper']:,.0f})"

    by = t["by_cause"]
    others = [x for x in t["causes"] if x != "infiltration"]

    def each(step: str) -> str:
        return ", ".join(f"{by[x][step]['mean']:,.0f} {_cause(x)}" for x in others)

    root = {"count": f"{t['n']:,}", "text": f"patients with a new facial palsy (pretest P(infiltration) "
                                            f"{W.percent(t['pretest'])})",
            "children": [
                {"count": n("L"), "text": "have leukemic infiltration", "children": [
                    {"count": n("L_pos1"), "text": f"LP 1 positive {crI('L_pos1')}", "children": []},
                    {"count": n("L_neg1"), "text": f"LP 1 negative {crI('L_neg1')}: missed by the first LP", "children": [
                        {"count": n("L_neg1_pos2"), "text": f"LP 2 positive {crI('L_neg1_pos2')}", "children": []},
                        {"count": n("L_neg2"), "text": f"LP 2 negative too {crI('L_neg2')}", "children": []}]}]},
                {"count": n("O"), "text": f"have one of the other causes ({each('all')})", "children": [
                    {"count": n("O_pos1"), "text": f"LP 1 positive (false positive) {crI('O_pos1')}", "children": []},
                    {"count": n("O_neg1"), "text": f"LP 1 negative {crI('O_neg1')}", "children": [
                        {"count": n("O_neg1_pos2"), "text": f"LP 2 positive (false positive) {crI('O_neg1_pos2')}",
                         "children": []},
                        {"count": n("O_neg2"), "text": f"LP 2 negative too {crI('O_neg2')}: {each('neg2')}",
                         "children": []}]}]}]}
    s1, s2 = t["share_l"]["neg1"], t["share_l"]["neg2"]
    summary = (f"Of the {n('L_neg1')} + {n('O_neg1')} patients with a negative first LP, {n('L_neg1')} have infiltration: "
               f"{W.percent(s1['tree'])} (from the mean counts; per draw: mean {_p(s1, ci_pct)}). After two negative "
               f"LPs: {n('L_neg2')} of {n('L_neg2')} + {n('O_neg2')}, {W.percent(s2['tree'])} (per draw: mean "
               f"{_p(s2, ci_pct)}). The others are not all Bell's palsy: {each('neg2')}. Infiltration is less likely, "
               f"not gone.")
    return {"title": f"LPs by {m}, pretest P(infiltration) {W.percent(t['pretest'])}", "root": root, "summary": summary}


def _where(L: dict[str, Any], ci_pct: int) -> list[dict[str, Any]]:
    out = []
    causes = L["causes"]
    for m in F.CSF_METHODS:
        w = L["where"][m]
        rows = []
        for st in w["steps"]:
            rows.append([f"{st['k']} negative LP{'s' if st['k'] != 1 else ''}"] +
                        [f"{W.percent(st['causes'][c]['mean'])} ({_interval(st['causes'][c])})" for c in causes])
        gain = w["gain"][-1]
        top = sorted(gain, key=lambda c: -gain[c])
        text = (f"After {len(w['gain'])} negative LPs by {_method_name(m)}, of the probability infiltration lost, "
                + ", ".join(f"{W.percent(gain[c])} went to {_cause(c)}" for c in top) + ".")
        out.append({"caption": f"Every cause's probability (mean, {ci_pct}% CrI) after further negative LPs by "
                               f"{_method_name(m)}, typical patient",
                    "header": ["Negative LPs"] + [_cause(c) for c in causes], "rows": rows, "text": text})
    return out


def lesson_context(L: dict[str, Any], figs: dict[str, bytes]) -> dict[str, Any]:
    """The template context of ``lesson.html`` (every number formatted here, never 0% or 100%)."""
    ci_pct = W.ci_percent(L["ci"])
    typ = L["typical"]
    ctx: dict[str, Any] = {
        "L": L, "ci_pct": ci_pct, "page_name": PAGE_NAME, "max_lps": F.MAX_LPS,
        "others": ", ".join(_cause(c) for c in L["causes"] if c != "infiltration"),
        "not_modelled": ", ".join(L["not_modelled"]),
        "base_rate": _p(L["base_rate"], ci_pct),
        "base_causes": ", ".join(f"{_cause(c)} {W.percent(v)}" for c, v in L["base_causes"].items()),
        "typical": {"description": typ["description"], "prior": _p(typ["prior"], ci_pct),
                    "causes": ", ".join(f"{_cause(c)} {W.percent(v)}" for c, v in typ["prior_causes"].items())},
    }
    ctx["curve_figures"] = [
        _img(figs[f"posttest_{m}.png"],
             f"P(infiltration) against pretest after 0 to 3 negative LPs by {_method_name(m)}",
             f"P(infiltration) against the other causes (mean line, {ci_pct}% CrI band) after 0, 1, 2 and 3 negative "
             f"LPs by {_method_name(m)}, from a pretest P(infiltration) for who the patient is; the other causes keep "
             f"their shares for the typical patient. Dotted lines: 10%, 5%, 1%.") for m in F.CSF_METHODS]
    tables = []
    from palsy.model.teach import TYPICAL_PRETESTS
    fb = L["fall_below"]
    for m in F.CSF_METHODS:
        rows = []
        for p in TYPICAL_PRETESTS:
            row = next(r for r in fb if r["method"] == m and r["pretest"] == p)
            cells = [f"mean {_p(row['after'][k], ci_pct)}" for k in (1, 2, 3)]
            rows.append({"pretest": W.percent(p), "cells": cells})
        tables.append({"caption": f"P(infiltration) after negative LPs by {_method_name(m)}",
                       "header": ["after 1 negative LP", "after 2", "after 3"], "rows": rows})
    ctx["curve_tables"] = tables
    fall = []
    for m in F.CSF_METHODS:
        rows = []
        for p in TYPICAL_PRETESTS:
            cells = []
            for thr in sorted({r["threshold"] for r in fb}, reverse=True):
                row = next(r for r in fb if r["method"] == m and r["pretest"] == p and r["threshold"] == thr)

                def k(v: int | None) -> str:
                    return f"not within {F.MAX_LPS}" if v is None else str(v)
                cells.append(f"mean: {k(row['by_mean'])}; upper CrI limit: {k(row['by_upper'])}")
            rows.append({"pretest": W.percent(p), "cells": cells})
        fall.append({"caption": f"Negative LPs by {_method_name(m)} needed to fall below each threshold",
                     "header": [f"below {W.percent(t, 0)}" for t in sorted({r['threshold'] for r in fb}, reverse=True)],
                     "rows": rows})
    ctx["fall_tables"] = fall
    ctx["where_tables"] = _where(L, ci_pct)
    ctx["where_figure"] = _img(figs["where.png"], "Every cause's mean probability after 0 to 3 negative LPs",
                               "Where the probability goes: each bar splits the whole into the mean probability of every "
                               "modelled cause for the typical patient after 0 to 3 negative LPs.")
    ctx["trees"] = [_tree(L["trees"][m], ci_pct) for m in F.CSF_METHODS]
    ctx["repeat"] = _repeat_context(L, figs, ci_pct) if L["repeat"] else None
    ctx["findings_figure"] = _img(figs["findings.png"], "Factor on the odds of each finding alone",
                                  f"Each finding alone, typical patient: factor on the odds of infiltration against the "
                                  f"other causes (geometric mean, {ci_pct}% CrI), {L['variant']} variant.")
    frows = []
    for r in L["findings"]:
        f, fi = _factor(r["log_lr"])
        frows.append([_value_label(r["finding"], r["value"]), f, fi, f"mean {_p(r['after'], ci_pct)}",
                      _cause(r["leading"])])
    ctx["findings_table"] = {"caption": "Each finding alone for the typical patient, for comparison with a negative LP",
                             "header": ["Finding", "Factor (geometric mean)", "Factor CrI", "P(infiltration) after",
                                        "Leading cause after"],
                             "rows": frows}
    mrows = []
    for r in L["mri_after_lp"]:
        mrows.append([r["value"].replace("_", " "), *_factor(r["alone"]), _cause(r["leading_alone"]),
                      *_factor(r["after_negative_lp"]), _cause(r["leading_after"])])
    ctx["mri_table"] = {"caption": f"Each MRI pattern alone and after one negative cytology LP "
                                   f"({L['repeat_variant'] or L['variant']} variant)",
                        "header": ["MRI", "Factor alone (geometric mean)", "CrI", "Leading cause",
                                   "Factor after a negative LP (geometric mean)", "CrI", "Leading cause"],
                        "rows": mrows}
    ctx["walks"] = []
    for w in L["walkthroughs"]:
        rows = [["before any finding", "", "", W.percent(w["prior"]["mean"]), _interval(w["prior"]),
                 _cause(max(w["prior_causes"], key=w["prior_causes"].get))]]
        for s in w["steps"]:
            f, fi = _factor(s["log_lr"])
            pa = s["probability_after"]
            rows.append([_value_label(s["finding"], s["value"]) + (f" (LP {s['index']})" if s["index"] else ""),
                         f, fi, W.percent(pa["mean"]), _interval(pa), _cause(s["leading_after"])])
        note = " ".join(w["scope_notes"])
        if w["left_out"]:
            lo = w["left_out"]
            note += (f" This patient is library case {lo['case']}: answered with it left out (PSIS, Pareto k "
                     f"{lo['pareto_k']:.2f}{'' if lo['reliable'] else ', unreliable'}), as the CLI does.")
        diff = "; ".join(f"{_cause(c['cause'])} {W.percent(c['probability']['mean'])}" for c in w["causes"])
        ctx["walks"].append({"id": w["id"], "description": w["description"], "rows": rows, "note": note.strip(),
                             "differential": diff})
    ctx["walk_figure"] = (_img(figs["source_patients.png"], "P(infiltration) after each finding for the source patients",
                               f"P(infiltration) after each step (mean, {ci_pct}% CrI).")
                          if "source_patients.png" in figs else None)
    return ctx


def _repeat_context(L: dict[str, Any], figs: dict[str, bytes], ci_pct: int) -> dict[str, Any]:
    variant = L["repeat_variant"]
    intro = ("If LPs were independent given infiltration, a second negative LP would multiply the odds by the same "
             "factor as the first (the naive calculation: square the factor). In the subtype model, infiltration "
             "comes in forms: leptomeningeal disease sheds cells into the CSF, perineural infiltration and myeloid "
             "sarcoma mostly do not. A negative LP shifts the remaining suspicion towards the forms an LP misses, so "
             "each further negative LP is worth less than the one before. (Against the whole differential the other "
             "causes' mix moves a little too.)") if variant == "subtype" else (
             "In this variant LPs are independent given the cause, so within infiltration the model and the naive "
             "calculation agree; against the whole differential they differ only through the other causes' mix.")
    tables = []
    for m in F.CSF_METHODS:
        r = L["repeat"][m]
        rows = []
        for i, k in enumerate(r["k"]):
            rows.append([str(k), *_factor(r["joint"][i]), *_factor(r["naive"][i]), _factor(r["conditional"][i])[0]])
        tables.append({"caption": f"Negative LPs by {_method_name(m)}: factor on the odds of infiltration, typical "
                                  f"patient ({variant} variant)",
                       "header": ["Negative LPs", "Model (geometric mean)", "Model CrI", "Naive (geometric mean)",
                                  "Naive CrI", "This LP given those before (geometric mean)"], "rows": rows})
        pt = next((p for p in r["posttest"] if p["pretest"] == 0.3), r["posttest"][0])
        prow = [[str(k), f"mean {_p(pt['model'][k], ci_pct)}", f"mean {_p(pt['naive'][k], ci_pct)}"]
                for k in range(1, len(pt["model"]))]
        tables.append({"caption": f"From a pretest P(infiltration) of {W.percent(pt['pretest'])}: after k negative LPs "
                                  f"by {_method_name(m)}",
                       "header": ["Negative LPs", "Model", "Naive (the single-LP factor to the k-th power)"], "rows": prow})
    if L["form_shift"]:
        forms = list(L["form_shift"][0]["forms"])
        rows = [[str(s["k"])] + [f"mean {W.percent(s['forms'][f]['mean'])} ({ci_pct}% CrI {_interval(s['forms'][f])})"
                                 for f in forms] for s in L["form_shift"]]
        tables.append({"caption": "Among patients with infiltration: the share of each form after k negative cytology LPs",
                       "header": ["Negative LPs"] + [f.replace("_", " ") for f in forms], "rows": rows})
    figures_ = [_img(figs["repeat_lps.png"], "Factor on the odds of k negative LPs: model against naive",
                     f"Factor on the odds of infiltration after k negative LPs (geometric mean, {ci_pct}% CrI): the "
                     f"{variant} model against multiplying the single-LP factor k times.")]
    return {"intro": intro, "tables": tables, "figures": figures_}


# --- HTML ----------------------------------------------------------------------------------------

def _css() -> Markup:
    return Markup((STATIC / "teach.css").read_text(encoding="utf-8").replace("</", "<\\/"))


def lesson_html(L: dict[str, Any], figs: dict[str, bytes]) -> str:
    """The self-contained lesson page."""
    return _env().get_template("teach_lesson.html").render(css=_css(), **lesson_context(L, figs))


#: The findings the interactive page offers (besides the LPs), in clinical order: every finding of
#: the schema, with the levels ``palsy posterior`` accepts.
PAGE_FINDINGS = tuple(n for n in F.FINDINGS if n != "csf")


def _select(name: str) -> dict[str, Any]:
    label = F.DESCRIPTIONS[name]
    return {"name": name, "label": label[0].upper() + label[1:], "levels": F.allowed(name),
            "title": name.replace("_", " ")}


def page_data(rules: dict[str, Any], references: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the page's script needs besides the draws: the decision's harms and the actions
    (:func:`palsy.model.teach.page_rules`), the words for causes and tests, and each action's sources as
    short citations (from ``references``, the evidence's reference records by key)."""
    from palsy.reports.context import TEST_NAMES, short_citation

    refs = references or {}
    keys = sorted({k for a in rules["actions"] for k in a["refs"]})
    return {**rules, "findings": list(PAGE_FINDINGS), "at_diagnosis": F.AT_DIAGNOSIS,
            "names": {"causes": dict(CAUSE_NAMES), "tests": dict(TEST_NAMES)},
            "references": {k: short_citation(refs[k]) for k in keys if k in refs}}


def _json_script(x: Any) -> Markup:
    data = json.dumps(x, separators=(",", ":"), allow_nan=False)
    return Markup(data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def page_html(models: Sequence[dict[str, Any]], *, rules: dict[str, Any],
              references: dict[str, dict[str, Any]] | None = None, ci: float = 0.9,
              not_modelled: Sequence[str] = ()) -> str:
    """The self-contained interactive page.

    Parameters
    ----------
    models : sequence of dict
        :func:`palsy.model.teach.page_tables` of each variant (the first is the default).
    rules : dict
        :func:`palsy.model.teach.page_rules`: the decision's harms and the actions with their triggers.
    references : dict, optional
        The evidence's references by key, for the actions' sources.
    """
    js = (STATIC / "teach.js").read_text(encoding="utf-8")
    if "</script" in js.lower():
        raise ValueError("teach.js must not contain '</script'")
    selects = [_select(n) for n in PAGE_FINDINGS]
    first = models[0]
    causes = [{"cause": c, "name": _cause(c)} for c in first["causes"]]
    return _env().get_template("teach_page.html").render(
        css=_css(), js=Markup(js), data_json=_json_script(list(models)),
        rules_json=_json_script(page_data(rules, references)), models=models, ci=ci,
        context=[s for s in selects if s["name"] in F.CONTEXT],
        palsy=[s for s in selects if s["name"] not in F.CONTEXT],
        max_lps=F.MAX_LPS, draws=first["n"], evidence_hash=first.get("evidence_hash") or "",
        version=first.get("version") or "", causes=causes,
        others=", ".join(c["name"] for c in causes if c["cause"] != "infiltration"),
        not_modelled=", ".join(not_modelled or ()))


def write(out: Path, L: dict[str, Any], models: Sequence[dict[str, Any]], *, rules: dict[str, Any],
          references: dict[str, dict[str, Any]] | None = None, ci: float = 0.9) -> dict[str, Path]:
    """Write the figures, ``lesson.html``, ``interactive.html`` and ``lesson.json`` into ``out``.

    ``models``, ``rules`` and ``references`` are those of :func:`page_html`.

    All or nothing: everything is made in memory first, then written as one set
    (:func:`palsy.reports.output.write_all`), so a failure leaves no figures without their lesson.
    """
    figs = figures(L)
    files = {f"figures/{name}": png for name, png in figs.items()}
    files[LESSON_NAME] = lesson_html(L, figs).encode("utf-8")
    files[PAGE_NAME] = page_html(models, rules=rules, references=references, ci=ci,
                                 not_modelled=L["not_modelled"]).encode("utf-8")
    files["lesson.json"] = json.dumps(to_jsonable(L), indent=1).encode("utf-8")
    written = write_all(out, files)
    return {rel.removeprefix("figures/"): path for rel, path in written.items()}


def to_jsonable(x: Any) -> Any:
    """The lesson's numbers as plain JSON (arrays as lists; per-draw arrays dropped)."""
    import numpy as np

    if isinstance(x, dict):
        return {k: to_jsonable(v) for k, v in x.items() if not k.startswith("draws_")}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x

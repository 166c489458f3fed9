"""The statistician's report (``palsy check``): self-contained HTML from :func:`palsy.model.criticism.run_all`.

Figures are matplotlib PNGs inlined as base64 (the SBC plot, an SVG file written by
``scripts/sbc.py``, is inlined as a data URI); the template is rendered by jinja2 with autoescaping.
No network resources.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from palsy.reports import templating
from palsy.reports.wording import PAGE_SPELLING, percent, styled

TEMPLATES = Path(__file__).resolve().parent / "templates"
SECTIONS = ("diagnostics", "prior-posterior", "predictive", "cohorts", "heterogeneity", "selection", "loo", "psense",
            "rests-on", "sensitivity", "rates", "references", "sbc", "validation", "registry")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int = 80) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def rank_figure(arrays: dict[str, Any], scalars: list[dict[str, Any]], n: int = 6) -> str:
    """Rank histograms per chain of the ``n`` scalars with the highest R-hat (the worst mixed)."""
    plt = _plt()
    worst = sorted(scalars, key=lambda r: -r["r_hat"])[:n]
    chains = arrays["chains"]
    fig, axes = plt.subplots(1, len(worst), figsize=(2.4 * len(worst), 2.2), squeeze=False)
    for ax, row in zip(axes[0], worst, strict=True):
        x = arrays["posterior"][row["name"]][(slice(None), *row["index"])]
        x = x[:(x.size // chains) * chains]  # a whole number of draws per chain (see criticism.common.reshape_chains)
        ranks = np.argsort(np.argsort(x)).reshape(chains, -1)
        bins = np.linspace(0, x.size, 21)
        for c in range(chains):
            ax.hist(ranks[c], bins=bins, histtype="step", lw=1)
        ax.axhline(x.size / chains / 20, color="0.4", ls=":", lw=0.8)
        ax.set_title(f"{row['parameter']}\nR-hat {row['r_hat']:.3f}", fontsize=6)
        ax.set_yticks([])
        ax.tick_params(labelsize=5)
    fig.suptitle("Rank histograms by chain (uniform and overlapping when chains mix)", fontsize=8)
    return _png(fig)


def _short(label: str, n: int = 34) -> str:
    """A node label cut to ``n`` characters (the full name is in the table below the figure)."""
    return label if len(label) <= n else label[:n - 1] + "…"


def prior_posterior_figure(arrays: dict[str, Any], scalars: list[dict[str, Any]]) -> str:
    """Prior (grey) and posterior (blue) 90% intervals and means of every sampled scalar: one panel per
    component of the free node parameters theta_free (a row per node; "all causes" for the shared nodes),
    one for omega (a row per lineage and form) and one per other sampled parameter."""
    plt = _plt()
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in scalars:
        head, _, rest = row["parameter"].partition("[")
        # theta_free[component | node]: one panel per component ("all causes" for the shared nodes)
        key = f"{head}[{rest.split(' | ')[0]}]" if head == "theta_free" else head
        groups.setdefault(key, []).append(row)
    cols = 4
    rows_n = math.ceil(len(groups) / cols)
    height = max(len(g) for g in groups.values()) * 0.13 + 0.6
    fig, axes = plt.subplots(rows_n, cols, figsize=(cols * 3.6, rows_n * height), squeeze=False)
    for ax in axes.ravel()[len(groups):]:
        ax.axis("off")
    for ax, (key, rows) in zip(axes.ravel(), groups.items(), strict=False):
        y = np.arange(len(rows))[::-1]
        col = {k: np.array([r[k] for r in rows], float) for k in ("prior_lower", "prior_upper", "prior_mean",
                                                                 "lower", "upper", "mean")}
        # one collection per kind of mark (a line per row would cost a matplotlib artist each)
        ax.hlines(y + 0.15, col["prior_lower"], col["prior_upper"], color="0.65", lw=2)
        ax.plot(col["prior_mean"], y + 0.15, "|", color="0.4", ms=5, ls="none")
        ax.hlines(y - 0.15, col["lower"], col["upper"], color="C0", lw=2)
        ax.plot(col["mean"], y - 0.15, "|", color="C0", ms=5, ls="none")
        ax.set_yticks(y)
        labels = [r["parameter"].partition("[")[2].rstrip("]") for r in rows]
        if key.startswith("theta_free["):
            labels = [_short(lb.split(" | ", 1)[1]) for lb in labels]
        ax.set_yticklabels(labels, fontsize=5)
        if key.startswith(("theta_free", "omega")):  # probabilities; tau, re_z and gamma are on their own scales
            ax.set_xlim(0, 1)
        ax.set_title(key, fontsize=7)
        ax.tick_params(axis="x", labelsize=5)
    fig.subplots_adjust(left=0.1, right=0.99, wspace=0.75, hspace=0.35)
    fig.suptitle("90% intervals and means: prior (grey, above) and posterior (blue, below)", fontsize=8)
    return _png(fig, dpi=110)


def ppc_figure(rows: list[dict[str, Any]], title: str) -> str:
    """Observed counts (dots) against the predictive 90% intervals and means of each statistic."""
    plt = _plt()
    rows = [r for r in rows if r["observed"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(rows) + 0.8))
    y = np.arange(len(rows))[::-1]
    frac = np.array([max(r["cases"], 1) for r in rows], float)
    ax.hlines(y, np.array([r["lower"] for r in rows]) / frac, np.array([r["upper"] for r in rows]) / frac,
              color="C0", lw=3, alpha=0.5)
    ax.plot(np.array([r["mean"] for r in rows]) / frac, y, "|", color="C0", ms=8, ls="none")
    bad = np.array([r["p_value"] is not None and r["p_value"] < 0.05 for r in rows])
    obs = np.array([r["observed"] for r in rows], float) / frac
    ax.plot(obs[~bad], y[~bad], "o", color="k", ms=4, ls="none")
    ax.plot(obs[bad], y[bad], "o", color="C3", ms=4, ls="none")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['statistic']} (n={r['cases']})" for r in rows], fontsize=6)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("share of cases where determined: observed (dot; red if p < 0.05) vs predictive 90% interval")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def tornado_figure(pid: str, rec: dict[str, Any]) -> str:
    """How each plausible alternative (a judgment moved, a source removed) moves one patient's mean
    P(infiltration): the largest changes, each with its Monte Carlo error (2 standard errors)."""
    plt = _plt()
    rows = rec["tornado"][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * max(len(rows), 1) + 1.0))
    y = np.arange(len(rows))
    ax.barh(y, [100 * r["delta"] for r in rows], color=["C3" if r["delta"] < 0 else "C2" for r in rows],
            xerr=[200 * (r.get("mc_error") or 0.0) for r in rows], error_kw={"lw": 0.8, "capsize": 2})
    ax.set_yticks(y)
    ax.set_yticklabels([f"{_short(r['source'], 48)}: {r.get('alternative', 'removed')} ({r['method'].split(' ')[0]})"
                        for r in rows], fontsize=6)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("change in mean P(infiltration), percentage points (bars: 2 Monte Carlo standard errors)")
    ax.set_title(f"{pid}: baseline {percent(rec['baseline'])}", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def density_figure(draws: np.ndarray, prior_pdf, name: str, xlim: tuple[float, float], title: str) -> str:
    """Prior density (line) against a histogram of the posterior draws of one scalar."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 2.4))
    ax.hist(draws, bins=50, range=xlim, density=True, color="C0", alpha=0.5, label="posterior draws")
    x = np.linspace(*xlim, 400)
    ax.plot(x, prior_pdf(x), color="0.3", lw=1.5, label="prior density")
    ax.set_xlim(*xlim)
    ax.set_xlabel(name)
    ax.set_yticks([])
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def tau_figure(tau: np.ndarray, sigma: float) -> str:
    from scipy.stats import halfnorm

    hi = float(max(np.quantile(tau, 0.995), 3 * sigma))
    return density_figure(tau, lambda x: halfnorm.pdf(x, scale=sigma), "tau (between-study spread, log-odds)",
                          (0.0, hi), f"Spread tau: prior HalfNormal({sigma:g}) against the posterior")


def gamma_figure(gamma: np.ndarray, mu: float, sigma: float) -> str:
    from scipy.stats import norm

    lo, hi = min(mu - 3.5 * sigma, float(gamma.min())), max(mu + 3.5 * sigma, float(gamma.max()))
    return density_figure(gamma, lambda x: norm.pdf(x, mu, sigma), "gamma (log odds multiplier of a striking feature)",
                          (lo, hi), f"Selection gamma: prior Normal({mu:g}, {sigma:g}) against the posterior")


def forest_figure(het: dict[str, Any]) -> str:
    """Per pooled quantity: each study's x/n (dot) and fitted rate (bar), the centre and the new setting."""
    plt = _plt()
    rows = []
    for q in het["quantities"]:
        for st in q["studies"]:
            rows.append((st["entry"], st["observed_rate"], st["fitted"], "C0"))
        rows.append((f"centre: {_short(q['quantity'], 60)}", None, q["centre"], "k"))
        rows.append(("new setting (answers)", None, q["new_setting"], "C3"))
    fig, ax = plt.subplots(figsize=(7, 0.2 * len(rows) + 0.8))
    y = np.arange(len(rows))[::-1]
    for yi, (_, obs, summ, col) in zip(y, rows, strict=True):
        ax.plot([summ["lower"], summ["upper"]], [yi, yi], color=col, lw=2.5, alpha=0.6)
        ax.plot(summ["mean"], yi, "|", color=col, ms=7)
        if obs is not None:
            ax.plot(obs, yi, "o", color="k", ms=3)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=5.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("rate: study x/n (dot), fitted study rate, pooled centre (black), new setting (red); 90% intervals")
    ax.set_title("Pooled quantities", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def reliability_figure(val: dict[str, Any]) -> str:
    """Predicted probability against the observed share of true causes per bin (every case x cause pair)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    for r in val["reliability"]:
        if r["pairs"]:
            ax.plot(r["mean_predicted"], r["observed"], "o", color="C0", ms=3 + 2 * np.sqrt(r["pairs"]))
            ax.annotate(str(r["pairs"]), (r["mean_predicted"], r["observed"]), fontsize=6, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted P(cause)", fontsize=7)
    ax.set_ylabel("share that was the true cause", fontsize=7)
    ax.set_title(f"Reliability, {val['n']} cases: too few to judge" if val["too_small"] else "Reliability", fontsize=8)
    ax.tick_params(labelsize=6)
    fig.tight_layout()
    return _png(fig)


def rates_figure(rates: dict[str, Any]) -> str:
    """Each implied quantity's prior mean (dot) and 90% interval (bar) against its target range (band)."""
    plt = _plt()
    rows = [("cumulative CNS/neural relapse", r) for r in rates["cumulative"] if r["quantity"] == "cumulative_relapse"]
    rows += [("cumulative leukaemic facial palsy", r) for r in rates["cumulative"] if r["quantity"] == "cumulative_palsy"]
    rows += [("share among new palsies", r) for r in rates["shares"]]
    fig, ax = plt.subplots(figsize=(7, 0.26 * len(rows) + 0.9))
    y = np.arange(len(rows))[::-1]
    for yi, (_, r) in zip(y, rows, strict=True):
        if r["target"]:
            ax.fill_betweenx([yi - 0.35, yi + 0.35], *(100 * np.array(r["target"])), color="C2", alpha=0.25, lw=0)
        ax.plot([100 * r["lower"], 100 * r["upper"]], [yi, yi], color="C0", lw=2, alpha=0.6)
        bad = r["in_range"] is False
        ax.plot(100 * r["mean"], yi, "o", color="C3" if bad else "k", ms=4)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{what}: {r.get('lineage', r['cause'])}" for what, r in rows], fontsize=6)
    ax.set_xlabel("percent (log scale): mean (dot; red if outside the target), 90% interval (bar), target (green)")
    ax.set_title("What the rate model implies, against the targets of rates.yaml", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _sbc(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {"run": False, "path": str(path) if path else None}
    res = json.loads(path.read_text())
    fig = path.parent / "sbc_ecdf.svg"
    img = "data:image/svg+xml;base64," + base64.b64encode(fig.read_bytes()).decode() if fig.exists() else None
    worst = sorted(res["per_parameter"], key=lambda r: r["p_value"])[:10]
    return {"run": True, "path": str(path), "results": res, "figure": img, "worst": worst,
            "band_exits": [r["parameter"] for r in res["per_parameter"] if r.get("outside_ecdf_band")]}


def context(results: dict[str, Any], *, sbc_path: Path | list[Path] | None = None) -> dict[str, Any]:
    """The template's context: numbers from ``results`` and inline figures."""
    variants = {}
    for name, v in results["variants"].items():
        arr = results["_arrays"][name]
        flagged = [r for r in v["psense"] if r["label"] not in ("ok", "prior-only by design")]
        variants[name] = {
            **v,
            "rank_figure": rank_figure(arr, v["scalars"]),
            "prior_posterior_figure": prior_posterior_figure(arr, v["scalars"]),
            "ppc_figure": ppc_figure(v["ppc_posterior"], f"{name}: posterior predictive check on the case library"),
            "ppc_prior_figure": ppc_figure(v["ppc_prior"], f"{name}: PRIOR predictive check (prior-only)"),
            "psense_flagged": flagged,
            "psense_prior_only": [r for r in v["psense"] if r["label"] == "prior-only by design"],
            "worst_scalars": sorted(v["scalars"], key=lambda r: -r["r_hat"])[:8],
        }
        het, sel = v.get("heterogeneity") or {}, v.get("selection") or {}
        d = arr.get("design")
        variants[name]["tau_figure"] = tau_figure(arr["_tau_draws"], het["tau_sigma"]) \
            if het.get("pooled") and "_tau_draws" in arr else None
        variants[name]["forest_figure"] = forest_figure(het) if het.get("quantities") else None
        variants[name]["gamma_figure"] = gamma_figure(arr["_gamma_draws"], d.gamma_mu, d.gamma_sigma) \
            if sel.get("modelled") and "_gamma_draws" in arr and d is not None else None
    sens = results.get("sensitivity")
    tornados = {}
    if sens:
        for pid, rec in sens["patients"].items():
            tornados[pid] = tornado_figure(pid, rec)
    rates = results.get("rates")
    return {"variants": variants, "loo": results.get("loo"), "sensitivity": sens, "tornados": tornados,
            "rests_on": results.get("rests_on"), "variant_comparison": results.get("variant_comparison"),
            "references": results.get("references"), "runner": results.get("runner"),
            "rates": rates, "rates_figure": rates_figure(rates) if rates else None,
            "validation": results.get("validation"), "causes": results.get("causes", []),
            "validation_figure": reliability_figure(results["validation"]) if results.get("validation") else None,
            "sbc_runs": [_sbc(p) for p in (sbc_path if isinstance(sbc_path, list) else [sbc_path])],
            "evidence_hash": results["evidence_hash"], "percent": percent,
            "sections": SECTIONS, "registry": results.get("registry")}


def dropped_lines(sens: dict[str, Any]) -> list[str]:
    """What a quick sensitivity run left out, and why: one line per reason, with the rows it dropped per
    patient (the same for every patient for a screening rule, the range otherwise)."""
    by_reason: dict[str, list[int]] = {}
    pats = sens.get("patients") or {}
    for rec in pats.values():
        for reason, n in (rec.get("dropped") or {}).items():
            by_reason.setdefault(reason, []).append(n)
    out = []
    for reason, ns in by_reason.items():
        lo, hi = min(ns), max(ns)
        count = f"{lo}" if lo == hi else f"{lo}-{hi}"
        out.append(f"check --quick dropped {count} sensitivity row(s) per patient ({len(ns)} of {len(pats)} patients): "
                   f"{reason}")
    if not out:
        out.append("check --quick dropped no sensitivity row")
    return out


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "–"
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def _rate_percent(x: Any) -> str:
    """A small probability as a percentage with 3 significant digits (cumulative risks of a few per 1,000)."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{100 * x:.3g}%"


def render(results: dict[str, Any], *, sbc_path: Path | list[Path] | None = None) -> str:
    """The report as one self-contained HTML string."""
    env = templating.with_filters(strict=False, fmt=_fmt, pct=percent, rpct=_rate_percent)
    # one spelling on the page (wording.PAGE_SPELLING), the references' fields as they were read
    return env.get_template("check.html").render(**styled(context(results, sbc_path=sbc_path), PAGE_SPELLING["check"]))


def write(results: dict[str, Any], out: Path, *, sbc_path: Path | list[Path] | None = None) -> tuple[Path, Path]:
    """Write ``check.html`` and ``check.json`` (the numbers) into ``out`` as one set: both or neither
    (:func:`palsy.reports.output.write_all`; two separate renames had left a new page beside the numbers of
    an older run when stopped between them)."""
    from palsy.model.criticism import to_json
    from palsy.reports.output import write_all

    paths = write_all(out, {"check.html": render(results, sbc_path=sbc_path).encode("utf-8"),
                            "check.json": to_json(results).encode("utf-8")})
    return paths["check.html"], paths["check.json"]

"""Recovery of known parameters from simulated hospital registries (issue 23 item 3, docs/registry.md).

    python -m palsy.scripts.simulate_registry [--variant subtype] [--rows 0 50 200 1000] [--sites 1 5 20]
                                              [--reps 1] [--reps-for 50=4] [--draws 200] [--tune 200]
                                              [--max-minutes M] [--quick] [--scheduler serial] [--out DIR]
    python -m palsy.scripts.simulate_registry --redraw      # the figure and tables again from the results

(``python scripts/simulate_registry.py`` works too.)

What is simulated
-----------------
Each *fit* of the study is one simulation, with its own truth. A truth is one draw of the cached posterior of
the variant (:func:`palsy.model.api.posterior_draws`: theta, omega and a rate block, which without a
registry is an exact draw from its prior), so truths are spread as the tool's own uncertainty is before any
registry; the spread of the true site effects is drawn from the fit's own prior for it (half-normal with
``priors/registry.yaml``'s scale), and each site's effect on each cause's log rate from Normal(0, spread).
A registry of ``rows`` rows from ``sites`` sites is simulated from the truth
(:func:`palsy.model.registry_simulate.simulate`: rows recorded incompletely, a few causes undetermined)
and fitted with NUTS (:func:`palsy.model.fit.posterior` with ``registry=``, small sampler settings, no
cache entry written). Zero rows is the cached posterior itself (no fit).

What is recorded, per fit: for every cause, whether the 90% equal-tailed interval of its share before any
finding (:func:`palsy.model.registry_fit.cause_shares`; infiltration's is the base rate) covers the true
share; for each source patient, whether the 90% interval of P(infiltration | findings)
(:func:`palsy.model.answer.answer`, no Shapley values, next tests or rests-on; the patient not left out
of the library, since the truth was drawn from the posterior with it in) covers the truth's
P(infiltration), and the interval's width. The truth's P(infiltration) is the answer under the true
parameters at the typical site (site effect 0, as the answers are given). Two readings of the interval:

``answer``
    as the tool gives it: its node probabilities are the predictive for a new setting (``theta_new``: a new
    study effect where studies disagree, docs/design.md §3), wider than the setting the registry was
    simulated in;
``same_setting``
    the same posterior with the pooled node probabilities (``theta``), the setting the registry's rows
    were drawn from: the reading whose coverage should be 90%.

Results: ``registry_simulation.json`` (every fit, per-cell and pooled summaries, Monte Carlo errors of the
coverages, timing), ``registry_width.svg`` (the width of P(infiltration)'s interval against rows and
sites) and ``registry_simulation.md`` (the tables docs/registry.md shows).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

if __package__ in (None, ""):  # run as a file: its folder holds palsy.py, which must not hide the palsy package
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "registry"
RESULTS = "registry_simulation.json"
FIGURE = "registry_width.svg"
TABLE = "registry_simulation.md"
SOURCE_PATIENTS = ("source-000-vignette.yaml", "source-001.yaml", "source-002.yaml")
CI = 0.9
#: The study's grid and sampler settings (defaults of the flags): docs/registry.md reports this run, one
#: simulation per cell with registry rows (about 40 minutes on 2 shared cores) and 100 per cell without.
ROWS = (0, 50, 200, 1000)
SITES = (1, 5, 20)
REPS = 1
REPS_FOR = {0: 100}
DRAWS = TUNE = 200
CHAINS = 2
#: ``--quick``: the smallest run that goes through every step (one small fit).
QUICK = {"rows": (0, 24), "sites": (2,), "reps": 1, "reps_for": {0: 5}, "draws": 60, "tune": 60}
READINGS = ("answer", "same_setting")


# --- bookkeeping ---------------------------------------------------------------------------------------

def interval(x: np.ndarray, ci: float = CI) -> tuple[float, float]:
    """The equal-tailed ``ci`` interval of draws ``x``."""
    lo, hi = np.quantile(np.asarray(x, float), [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def check(truth: float, mean: float, lower: float, upper: float) -> dict[str, Any]:
    """One interval against its true value: the numbers, whether it covers the truth, and its width.

    Parameters
    ----------
    truth : float
        The true value.
    mean, lower, upper : float
        The posterior mean and the interval's ends.

    Returns
    -------
    dict
        ``truth``, ``mean``, ``lower``, ``upper``, ``covered`` (``lower <= truth <= upper``) and ``width``.
    """
    if not lower <= upper:
        raise ValueError(f"an interval from {lower} to {upper}: its lower end is above its upper end")
    return {"truth": float(truth), "mean": float(mean), "lower": float(lower), "upper": float(upper),
            "covered": bool(lower <= truth <= upper), "width": float(upper - lower)}


def coverage(hits: list[bool] | np.ndarray, clusters: list[Any] | None = None, nominal: float = CI) -> dict[str, Any]:
    """The share of intervals that cover their truth, with its Monte Carlo error.

    Parameters
    ----------
    hits : sequence of bool
        Whether each interval covered its truth.
    clusters : sequence, optional
        The fit each interval comes from. Intervals of one fit share its truth and its registry, so they are
        not independent; with ``clusters`` the standard error is the cluster (between-fit) one,
        sqrt(sum_f (h_f - p m_f)^2) / N over fits f with h_f hits of m_f intervals, N intervals in all,
        and never below the binomial one.
    nominal : float
        The intervals' nominal mass: the binomial standard error at it, sqrt(nominal (1 - nominal) / n),
        is given too (the error the coverage would have if the intervals were calibrated and independent).

    Returns
    -------
    dict
        ``n``, ``covered``, ``coverage`` (None without intervals), ``se`` (the binomial standard error of
        the observed share, or the cluster one with ``clusters``), ``se_nominal`` and ``fits``.
    """
    h = np.asarray(hits, bool)
    n = int(h.size)
    if n == 0:
        return {"n": 0, "covered": 0, "coverage": None, "se": None, "se_nominal": None, "fits": 0}
    p = float(h.mean())
    se = math.sqrt(p * (1 - p) / n)
    fits = n
    if clusters is not None:
        keys = [json.dumps(c) if not isinstance(c, str) else c for c in clusters]
        groups: dict[str, list[bool]] = {}
        for k, x in zip(keys, h, strict=True):
            groups.setdefault(k, []).append(bool(x))
        fits = len(groups)
        resid = [sum(g) - p * len(g) for g in groups.values()]
        se_cluster = math.sqrt(sum(r * r for r in resid)) / n * math.sqrt(fits / max(fits - 1, 1))
        se = max(se, se_cluster)
    return {"n": n, "covered": int(h.sum()), "coverage": p, "se": se,
            "se_nominal": math.sqrt(nominal * (1 - nominal) / n), "fits": fits}


def record(truth_draws, posterior_draws, patients: dict[str, Any], causes: tuple[str, ...]) -> dict[str, Any]:
    """One fit's intervals against the truth: every cause's share and each source patient's P(infiltration)
    (both readings: the tool's ``answer`` and the ``same_setting``).

    Parameters
    ----------
    truth_draws : palsy.model.draws.Draws
        The true parameters (any number of identical draws; ``theta_new`` equal to ``theta``).
    posterior_draws : palsy.model.draws.Draws
        The fit's posterior.
    patients : dict
        Patient id -> :class:`palsy.model.findings.Patient` (parsed with the posterior's schema).
    causes : tuple of str
        The model's causes.
    """
    from palsy.model import registry_fit as RF

    true_shares = RF.cause_shares(truth_draws.params, truth_draws.rate_arrays).mean(axis=0)
    post_shares = RF.cause_shares(posterior_draws.params, posterior_draws.rate_arrays)
    out: dict[str, Any] = {"causes": {}, "patients": {}}
    for j, c in enumerate(causes):
        out["causes"][c] = check(true_shares[j], post_shares[:, j].mean(), *interval(post_shares[:, j]))
    same = same_setting(posterior_draws)
    for pid, patient in patients.items():
        truth = p_infiltration(patient, truth_draws)
        out["patients"][pid] = {}
        for reading, draws in zip(READINGS, (posterior_draws, same), strict=True):
            p = p_infiltration(patient, draws)
            lo, hi = interval(p)
            out["patients"][pid][reading] = check(float(truth.mean()), float(p.mean()), lo, hi)
    return out


def same_setting(draws):
    """The posterior with the pooled node probabilities in place of the new-setting predictive."""
    return dataclasses.replace(draws, params={**draws.params, "theta_new": draws.params["theta"]})


def p_infiltration(patient, draws) -> np.ndarray:
    """P(infiltration | the patient's findings) per draw, as the answer computes it (no Shapley values, next
    tests or rests-on; the patient not left out of the case library)."""
    from palsy.model import answer as A

    a = A.answer(patient, draws, ci=CI, shapley=False, next_tests=False, rests_on=False, leave_out=False)
    return a.probability_draws


def truth_draws(posterior, index: int):
    """Draw ``index`` of ``posterior`` as the truth (two identical draws; ``theta_new`` the pooled ``theta``:
    the simulated registry's own setting)."""
    from palsy.model.draws import Draws

    params = {k: np.repeat(np.asarray(v)[index:index + 1], 2, axis=0) for k, v in posterior.params.items()}
    params["theta_new"] = params["theta"]
    return Draws(params, posterior.meta, np.zeros((posterior.case_loglik.shape[0], 2)), posterior.rates)


# --- the simulations -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Task:
    """One simulation: the cell (rows, sites), the repetition and everything drawn for it."""

    rows: int
    sites: int
    rep: int
    truth_index: int
    site_sd: float
    seed: int  # the simulation's and the sampler's randomness

    @property
    def cell(self) -> str:
        return f"{self.rows}x{self.sites}"


def tasks(rows: list[int], sites: list[int], reps: dict[int, int], n_draws: int, site_sigma: float,
          seed: int) -> list[Task]:
    """Every simulation of the grid, repetition by repetition (so that a run stopped by ``--max-minutes``
    leaves the cells balanced). Each task's randomness comes from (``seed``, rows, sites, repetition), so a
    cell's simulations do not depend on the rest of the grid."""
    out = []
    for rep in range(max(reps[r] for r in rows)):
        for r in rows:
            if rep >= reps[r]:
                continue
            for s in sites:
                rng = np.random.default_rng([seed, r, s, rep])
                out.append(Task(r, s, rep, int(rng.integers(n_draws)), float(abs(rng.normal(0.0, site_sigma))),
                                int(rng.integers(1, 2**31 - 1))))
    return out


def site_names(n: int) -> list[str]:
    return [f"S{i + 1:02d}" for i in range(n)]


def simulation(task: Task, evidence, variant: str, truth_params: dict[str, np.ndarray], meta: dict[str, Any],
               rates: dict[str, np.ndarray], n_cases: int, patients: dict[str, dict[str, Any]], settings,
               site_sigma: float) -> dict[str, Any]:
    """One simulation with registry rows (a task): simulate, fit, record (see the module's docstring).
    Everything random comes from ``task.seed``, so it gives the same record wherever it runs."""
    from palsy.model import api, fit
    from palsy.model import registry_fit as RF
    from palsy.model import registry_simulate as SIM
    from palsy.model.draws import Draws

    t0 = time.perf_counter()
    truth = Draws({k: np.repeat(v[None], 2, axis=0) for k, v in truth_params.items()}, meta, np.zeros((n_cases, 2)),
                  rates)
    rng = np.random.default_rng(task.seed)
    reg = SIM.simulate(SIM.one_draw(truth.params, 0), truth.rate_arrays, evidence.schema, evidence.causes,
                       tuple(meta["components"]), tuple(meta["component_causes"]), task.rows, site_names(task.sites),
                       task.site_sd, rng)
    inp = RF.from_registry(reg, site_sigma)
    st = dataclasses.replace(settings, seed=int(rng.integers(1, 2**31 - 1)))
    post = fit.posterior(variant, evidence, st, use_cache=False, registry=inp)
    parsed = {pid: api.as_patient(p, post.draws.schema) for pid, p in patients.items()}
    out = {**dataclasses.asdict(task), "registry": {"cells": len(inp.cells), **inp.counts},
           **record(truth, post.draws, parsed, evidence.causes),
           "diagnostics": {k: post.diagnostics[k] for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences")},
           "fit_seconds": post.seconds, "seconds": time.perf_counter() - t0}
    return out


def zero_rows(posterior, patients: dict[str, Any], task_list: list[Task], causes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The simulations without a registry: the posterior is the cached one for every truth (no fit), so its
    answers are computed once and each task only draws its truth."""
    from palsy.model import registry_fit as RF

    if not task_list:
        return []
    shares = RF.cause_shares(posterior.params, posterior.rate_arrays)
    cause_iv = {c: (float(shares[:, j].mean()), *interval(shares[:, j])) for j, c in enumerate(causes)}
    same = same_setting(posterior)
    pat_iv = {}
    for pid, patient in patients.items():
        pat_iv[pid] = {}
        for reading, draws in zip(READINGS, (posterior, same), strict=True):
            p = p_infiltration(patient, draws)
            pat_iv[pid][reading] = (float(p.mean()), *interval(p))
    diag = {k: posterior.meta["diagnostics"][k] for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences")}
    out = []
    for task in task_list:
        t0 = time.perf_counter()
        truth = truth_draws(posterior, task.truth_index)
        true_shares = RF.cause_shares(truth.params, truth.rate_arrays).mean(axis=0)
        rec: dict[str, Any] = {**dataclasses.asdict(task), "registry": {"cells": 0},
                               "causes": {c: check(true_shares[j], *cause_iv[c]) for j, c in enumerate(causes)},
                               "patients": {}}
        for pid, patient in patients.items():
            t = float(p_infiltration(patient, truth).mean())
            rec["patients"][pid] = {reading: check(t, *pat_iv[pid][reading]) for reading in READINGS}
        out.append({**rec, "diagnostics": diag, "fit_seconds": 0.0, "seconds": time.perf_counter() - t0})
    return out


# --- summaries -------------------------------------------------------------------------------------------

def intervals(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every interval of ``records`` as a flat list: fit (rows, sites, rep), kind (``cause`` or a reading of
    ``patient``), quantity, covered, width."""
    out = []
    for r in records:
        fit_id = [r["rows"], r["sites"], r["rep"]]
        for c, v in r["causes"].items():
            out.append({"fit": fit_id, "kind": "cause", "quantity": c, "covered": v["covered"], "width": v["width"]})
        for pid, by in r["patients"].items():
            for reading, v in by.items():
                out.append({"fit": fit_id, "kind": reading, "quantity": pid, "covered": v["covered"],
                            "width": v["width"]})
    return out


def summarise(records: list[dict[str, Any]], rows: list[int], sites: list[int]) -> dict[str, Any]:
    """Per cell: fits, the mean (and range) of each source patient's interval width and of the base rate's,
    and the coverage of the cell's intervals; pooled over the registry fits (rows > 0) and over the zero-row
    simulations: coverage by kind and by quantity, with Monte Carlo errors (cluster by fit)."""
    cells = {}
    for r in rows:
        for s in sites:
            mine = [x for x in records if x["rows"] == r and x["sites"] == s]
            widths: dict[str, Any] = {}
            if mine:
                inf = [x["causes"]["infiltration"] for x in mine if "infiltration" in x["causes"]]
                if inf:
                    widths["base_rate"] = _spread([v["width"] for v in inf])
                    widths["base_rate:log_odds"] = _spread([log_odds_width(v) for v in inf])
                for pid in mine[0]["patients"]:
                    for reading in READINGS:
                        ivs = [x["patients"][pid][reading] for x in mine]
                        widths[f"{pid}:{reading}"] = _spread([v["width"] for v in ivs])
                        widths[f"{pid}:{reading}:log_odds"] = _spread([log_odds_width(v) for v in ivs])
            iv = intervals(mine)
            cells[f"{r}x{s}"] = {
                "rows": r, "sites": s, "fits": len(mine), "widths": widths,
                "coverage": {kind: coverage([i["covered"] for i in iv if i["kind"] == kind],
                                            [i["fit"] for i in iv if i["kind"] == kind])
                             for kind in ("cause", *READINGS)},
                "seconds": float(sum(x["seconds"] for x in mine)),
                "max_r_hat": max((x["diagnostics"]["r_hat_max"] for x in mine), default=None),
                "min_ess_bulk": min((x["diagnostics"]["ess_bulk_min"] for x in mine), default=None),
                "divergences": int(sum(x["diagnostics"]["divergences"] for x in mine))}
    pooled = {}
    for name, sel in (("registry", [x for x in records if x["rows"] > 0]), ("no_registry", [x for x in records if x["rows"] == 0])):
        iv = intervals(sel)
        by_kind = {kind: coverage([i["covered"] for i in iv if i["kind"] == kind], [i["fit"] for i in iv if i["kind"] == kind])
                   for kind in ("cause", *READINGS)}
        by_quantity = {}
        for kind in ("cause", *READINGS):
            for q in dict.fromkeys(i["quantity"] for i in iv if i["kind"] == kind):
                hits = [i["covered"] for i in iv if i["kind"] == kind and i["quantity"] == q]
                by_quantity[f"{q}:{kind}" if kind != "cause" else q] = coverage(hits)
        pooled[name] = {"fits": len(sel), "by_kind": by_kind, "by_quantity": by_quantity}
    return {"cells": cells, "pooled": pooled}


def log_odds_width(iv: dict[str, Any]) -> float:
    """The width of an interval of a probability on the log-odds scale, logit(upper) - logit(lower): less
    dependent than the width on where the truth lies (an interval near 0 or 1 is narrow in probability)."""
    lo, hi = (min(max(float(iv[k]), 1e-12), 1 - 1e-12) for k in ("lower", "upper"))
    return math.log(hi / (1 - hi)) - math.log(lo / (1 - lo))


def _spread(x: list[float]) -> dict[str, float]:
    a = np.asarray(x, float)
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


# --- the run -----------------------------------------------------------------------------------------------

def run(evidence, variant: str, *, rows: list[int], sites: list[int], reps: dict[int, int], draws: int = DRAWS,
        tune: int = TUNE, chains: int = CHAINS, seed: int = 1, priors: Path | None = None,
        scheduler: str = "serial", max_minutes: float | None = None, progress: bool = True,
        partial: Path | None = None) -> dict[str, Any]:
    """Run the study and return its results (see the module's docstring).

    Parameters
    ----------
    evidence : palsy.model.evidence.Evidence
        The evidence fitted (its ``registry.yaml`` gives the site effect's prior scale).
    variant : str
        ``subtype`` or ``independent``.
    rows, sites : list of int
        The grid: registries of each number of rows from each number of sites (0 rows: no registry).
    reps : dict
        Simulations per cell, by number of rows.
    draws, tune, chains : int
        The registry fits' sampler settings (per chain).
    seed : int
        Every simulation's randomness derives from it and its cell.
    scheduler : str
        ``serial`` (this process, the default: a fit's two chains already use two cores), ``local`` (a Dask
        LocalCluster) or a Dask scheduler's address (docs/heavy_checks.md).
    max_minutes : float, optional
        Serial runs only: start no simulation after this many minutes (the cells are filled repetition by
        repetition, so a stopped run's cells stay balanced; the results say how many ran).
    partial : path, optional
        Serial runs only: rewrite the results there after each simulation.
    """
    from palsy.model import api
    from palsy.model import cache as C
    from palsy.model import registry as RG
    from palsy.model.criticism import heavy

    t_start = time.perf_counter()
    pdir = Path(priors) if priors is not None else Path(evidence.directory)
    posterior = api.posterior_draws(variant, pdir)
    site_sigma = RG.settings(pdir).site_sigma
    patients_raw = {Path(f).stem: api.read_patient_file(REPO / "patients" / f) for f in SOURCE_PATIENTS}
    patients = {pid: api.as_patient(p, posterior.schema) for pid, p in patients_raw.items()}
    settings = C.Settings(draws=draws, tune=tune, chains=chains, seed=seed)
    todo = tasks(rows, sites, reps, posterior.n, site_sigma, seed)
    records = zero_rows(posterior, patients, [t for t in todo if t.rows == 0], evidence.causes)
    fits = [t for t in todo if t.rows > 0]
    header = {"variant": variant, "evidence_hash": evidence.hash, "grid": {"rows": rows, "sites": sites,
              "reps": {str(k): v for k, v in reps.items()}},
              "settings": {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "ci": CI,
                           "sampler": settings.sampler, "thin": settings.thin, "site_sigma": site_sigma},
              "truth_posterior": {"draws": posterior.n, "settings": posterior.meta["settings"]},
              "patients": list(patients), "causes": list(evidence.causes), "what": _what()}

    def args(t: Task) -> tuple[tuple, dict]:
        return ((t, evidence, variant, {k: np.asarray(v)[t.truth_index] for k, v in posterior.params.items()},
                 posterior.meta, posterior.rates, posterior.case_loglik.shape[0], patients_raw, settings, site_sigma), {})

    skipped = 0
    with heavy.runner(scheduler) as run_:
        where = run_.describe
        if run_.client is None:
            for i, t in enumerate(fits):
                minutes = (time.perf_counter() - t_start) / 60
                if max_minutes is not None and minutes > max_minutes:
                    skipped = len(fits) - i
                    if progress:
                        print(f"simulate_registry: {minutes:.1f} min > --max-minutes {max_minutes}: {skipped} "
                              "simulations not run", file=sys.stderr)
                    break
                rec = simulation(*args(t)[0])
                records.append(rec)
                if progress:
                    _say(rec, i + 1, len(fits), time.perf_counter() - t_start)
                if partial is not None:
                    _write_json(partial, {**header, "partial": True, "records": records})
        else:
            records += run_.map(simulation, [args(t) for t in fits])
    seconds = time.perf_counter() - t_start
    return {**header, "runner": where, "seconds": seconds, "simulations": len(records),
            "registry_fits": sum(r["rows"] > 0 for r in records), "not_run": skipped,
            **summarise(records, rows, sites), "records": records}


def _what() -> str:
    return ("each fit its own simulation: a truth drawn from the cached posterior (theta, omega, the rate block "
            "from its prior), the spread of the true site effects from the fit's half-normal prior; a registry "
            "simulated from it (model.registry_simulate) and fitted by NUTS; the 90% intervals of every cause's "
            "share and of each source patient's P(infiltration) against the truth's. Zero rows: the cached "
            "posterior itself (no fit)")


def _say(rec: dict[str, Any], i: int, n: int, elapsed: float) -> None:
    d = rec["diagnostics"]
    cov = [v["covered"] for v in rec["causes"].values()] + [v["answer"]["covered"] for v in rec["patients"].values()]
    print(f"simulate_registry: {i}/{n} rows {rec['rows']} sites {rec['sites']} rep {rec['rep']}: "
          f"{rec['seconds']:.0f} s (elapsed {elapsed / 60:.1f} min); r-hat {d['r_hat_max']:.3f}, "
          f"ess {d['ess_bulk_min']:.0f}, divergences {d['divergences']}; covered {sum(cov)}/{len(cov)}",
          file=sys.stderr, flush=True)


# --- outputs -----------------------------------------------------------------------------------------------

def _write_json(path: Path, data: dict[str, Any]) -> None:
    from palsy.model.draws import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1)))


def figure(results: dict[str, Any], path: Path | BinaryIO) -> None:
    """The width of the 90% interval of the base rate and of each source patient's P(infiltration) (as the
    tool answers) against the registry's rows, one line per number of sites (each fit a dot); below, the same
    widths in log odds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, sites = results["grid"]["rows"], results["grid"]["sites"]
    ivs = [("base rate (P(infiltration) before any finding)", lambda r: r["causes"]["infiltration"])]
    for pid in results["patients"]:
        ivs.append((f"{pid}: P(infiltration | findings)", lambda r, pid=pid: r["patients"][pid]["answer"]))
    scales = (("width of the 90% interval", lambda v: v["width"]),
              ("its width in log odds", log_odds_width))
    fig, axes = plt.subplots(2, len(ivs), figsize=(3.2 * len(ivs), 6.4), sharey=False, squeeze=False)
    xpos = {r: i for i, r in enumerate(rows)}
    panels = [(i, title if i == 0 else "", lambda r, g=g, f=f: f(g(r))) for i, (_, f) in enumerate(scales)
              for title, g in ivs]
    for ax, (row, title, get) in zip(axes.ravel(), panels, strict=True):
        for k, s in enumerate(sites):
            off = (k - (len(sites) - 1) / 2) * 0.08
            means = []
            for r in rows:
                w = [get(x) for x in results["records"] if x["rows"] == r and x["sites"] == s]
                ax.plot([xpos[r] + off] * len(w), w, "o", ms=2.5, color=f"C{k}", alpha=0.35)
                means.append(np.mean(w) if w else np.nan)
            ax.plot([xpos[r] + off for r in rows], means, "-o", ms=4, lw=1.4, color=f"C{k}",
                    label=f"{s} site{'s' if s != 1 else ''}")
        ax.set_xticks(range(len(rows)), [str(r) for r in rows])
        ax.set_xlabel("registry rows" if row == len(scales) - 1 else "")
        ax.set_title(title, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="0.9")
    for row, (label, _) in enumerate(scales):
        axes[row][0].set_ylabel(label)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Registry simulation ({results['variant']} variant): interval width against rows and sites; "
                 f"lines: mean over fits, dots: each fit", fontsize=9)
    fig.tight_layout()
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=(path.suffix.lstrip(".") if isinstance(path, Path) else "") or "svg")
    plt.close(fig)


def table(results: dict[str, Any]) -> str:
    """The markdown tables of docs/registry.md: widths by rows and sites, and coverage."""
    rows, sites = results["grid"]["rows"], results["grid"]["sites"]
    pids = results["patients"]
    cells = results["cells"]
    not_run = results.get("not_run", 0)
    out = [f"Variant `{results['variant']}`; registry fits: {results['settings']['chains']} chains x "
           f"{results['settings']['draws']} draws ({results['settings']['tune']} tuning steps); "
           f"{results['simulations']} simulations ({results['registry_fits']} registry fits), "
           f"{results['seconds'] / 60:.0f} min ({results['runner']})"
           + (f"; {not_run} more simulations were planned but not run (--max-minutes)." if not_run else "."), "",
           "Mean width of the 90% interval: the base rate, and each source patient's P(infiltration) as the tool "
           "answers it. Zero rows is the cached posterior (no fit; one width, many truths).", ""]
    head = "| rows | sites | simulations | base rate | " + " | ".join(pids) + " |"
    out += [head, "|" + "---|" * (4 + len(pids))]
    for r in rows:
        for s in sites:
            c = cells[f"{r}x{s}"]
            w = c["widths"]
            if not c["fits"]:
                out.append(f"| {r} | {s} | 0 | " + " | ".join(["-"] * (1 + len(pids))) + " |")
                continue
            vals = [w["base_rate"]["mean"]] + [w[f"{p}:answer"]["mean"] for p in pids]
            out.append(f"| {r} | {s} | {c['fits']} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    out += ["", "The same intervals' mean width in log odds (logit(upper) - logit(lower)), which depends less on "
            "where the truth lies:", "", head, "|" + "---|" * (4 + len(pids))]
    for r in rows:
        for s in sites:
            c = cells[f"{r}x{s}"]
            if c["fits"]:
                w = c["widths"]
                vals = [w["base_rate:log_odds"]["mean"]] + [w[f"{p}:answer:log_odds"]["mean"] for p in pids]
                out.append(f"| {r} | {s} | {c['fits']} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    out += ["", "Coverage of the 90% intervals: the share covering the truth +- its Monte Carlo standard error (the "
            "larger of the between-fit error, since intervals of one fit share its truth, and the binomial error "
            "at 90%), and the count:", "",
            "| intervals | registry fits (rows > 0) | no registry (rows 0) |", "|---|---|---|"]
    labels = {"cause": "cause shares", "answer": "P(infiltration), as the tool answers",
              "same_setting": "P(infiltration), same setting"}
    for kind, label in labels.items():
        vals = [results["pooled"][k]["by_kind"][kind] for k in ("registry", "no_registry")]
        out.append(f"| {label} | " + " | ".join(_cov(v) for v in vals) + " |")
    out += ["", "By quantity (each interval from a different fit):", "",
            "| quantity | registry fits | no registry |", "|---|---|---|"]
    reg, no = results["pooled"]["registry"]["by_quantity"], results["pooled"]["no_registry"]["by_quantity"]
    for q in dict.fromkeys([*reg, *no]):
        out.append(f"| {q} | {_cov(reg.get(q))} | {_cov(no.get(q))} |")
    return "\n".join(out) + "\n"


def _cov(c: dict[str, Any] | None) -> str:
    """A coverage as the tables show it: the share, +- the larger of its standard error and the binomial error at
    the nominal 90% (a share of 9/9 is not exact), and the count."""
    if not c or not c["n"]:
        return "-"
    return f"{100 * c['coverage']:.0f}% +- {100 * max(c['se'], c['se_nominal']):.0f} ({c['covered']}/{c['n']})"


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path, Path]:
    """Write the results JSON, the figure and the tables into ``out`` as one set: all or none
    (:func:`palsy.reports.output.write_all`; its files are readable by all, as documentation is)."""
    from palsy.reports.output import write_all

    svg = io.BytesIO()
    figure(results, svg)
    paths = write_all(out, {RESULTS: json.dumps(results, indent=1).encode("utf-8"), FIGURE: svg.getvalue(),
                            TABLE: table(results).encode("utf-8")})
    return paths[RESULTS], paths[FIGURE], paths[TABLE]


def _reps_for(text: str) -> tuple[int, int]:
    try:
        rows, n = text.split("=")
        out = int(rows), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give ROWS=N, e.g. 1000=1") from None
    if out[0] < 0 or out[1] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: rows must be >= 0 and N >= 1")
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line (see ``--help``)."""
    p = argparse.ArgumentParser(prog="python -m palsy.scripts.simulate_registry", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--variant", default="subtype", choices=("subtype", "independent"),
                   help="the variant whose cached posterior gives the truths and which is fitted")
    p.add_argument("--rows", type=int, nargs="+", default=list(ROWS), help="registry sizes (0: no registry)")
    p.add_argument("--sites", type=int, nargs="+", default=list(SITES), help="numbers of sites")
    p.add_argument("--reps", type=int, default=REPS, help="simulations per cell (of the sizes --reps-for does not name)")
    p.add_argument("--reps-for", type=_reps_for, action="append", metavar="ROWS=N",
                   help=f"simulations per cell for one registry size (repeatable; default "
                        f"{' '.join(f'{k}={v}' for k, v in REPS_FOR.items())}: zero rows costs no fit)")
    p.add_argument("--draws", type=int, default=DRAWS, help="posterior draws per chain of each registry fit")
    p.add_argument("--tune", type=int, default=TUNE, help="tuning steps per chain")
    p.add_argument("--chains", type=int, default=CHAINS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help=f"the smallest run (rows {QUICK['rows']}, sites {QUICK['sites']}, 1 simulation each, "
                        f"{QUICK['draws']} draws): a smoke test of every step")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="serial runs: start no simulation after this many minutes (cells stay balanced)")
    p.add_argument("--priors", default=str(REPO / "priors"), help="evidence folder")
    p.add_argument("--scheduler", default="serial",
                   help="where the fits run: serial (this process; a fit's chains use the cores), local (a Dask "
                        "LocalCluster) or a Dask scheduler address such as tcp://host:8786 (docs/heavy_checks.md)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    p.add_argument("--redraw", action="store_true",
                   help=f"no simulation: redraw the figure and the tables from the folder's {RESULTS}")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.redraw:  # the summaries again from the records, then the figure and the tables
        res = json.loads((out / RESULTS).read_text())
        res.update(summarise(res["records"], res["grid"]["rows"], res["grid"]["sites"]))
        paths = write(res, out)
        print("wrote " + ", ".join(str(x) for x in paths))
        return 0
    if args.quick:
        rows, sites, reps, reps_for = list(QUICK["rows"]), list(QUICK["sites"]), QUICK["reps"], dict(QUICK["reps_for"])
        draws, tune = QUICK["draws"], QUICK["tune"]
    else:
        rows, sites, reps, draws, tune = args.rows, args.sites, args.reps, args.draws, args.tune
        reps_for = dict(REPS_FOR)
    reps_for.update(dict(args.reps_for or []))
    if min(rows) < 0 or min(sites) < 1 or reps < 1 or min(draws, tune, args.chains) < 1:
        p.error("rows must be >= 0; sites, reps, draws, tune and chains >= 1")
    rows, sites = sorted(set(rows)), sorted(set(sites))
    per_rows = {r: reps_for.get(r, reps) for r in rows}
    from palsy.model import evidence as E

    ev = E.load(args.priors)
    res = run(ev, args.variant, rows=rows, sites=sites, reps=per_rows, draws=draws, tune=tune, chains=args.chains,
              seed=args.seed, priors=Path(args.priors), scheduler=args.scheduler, max_minutes=args.max_minutes,
              progress=True, partial=out / RESULTS)
    paths = write(res, out)
    reg = res["pooled"]["registry"]["by_kind"]
    print(f"simulate_registry {args.variant}: {res['simulations']} simulations ({res['registry_fits']} registry fits) "
          f"in {res['seconds'] / 60:.1f} min; coverage of the 90% intervals over the registry fits: cause shares "
          f"{_cov(reg['cause'])}, P(infiltration) {_cov(reg['answer'])} (same setting {_cov(reg['same_setting'])})")
    print("wrote " + ", ".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

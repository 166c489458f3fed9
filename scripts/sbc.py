"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023) of a palsy variant.

    python -m palsy.scripts.sbc [--variant independent] [--simulations 200] [--priors DIR] [--out DIR]
                                [--scheduler serial|local|tcp://host:8786]

What is simulated
-----------------
Every likelihood weight is 1 (``weights_one``): a power prior is not a generative model. For each
simulation, one set of the sampled parameters is drawn from the model's priors
(:func:`palsy.model.prior.draws`: theta_free's base and expert-judgment Betas, omega's Dirichlets, the shared
spread tau and one study effect re_z per entry of a pooled quantity, the selection parameter gamma;
the rate block has no likelihood and is not refitted, so it is not part of SBC), and from it:

- every cohort count, x ~ Binomial(n, rate) with the entry's own n and the rate of its cause (and
  form) as the fit uses it, with the entry's study effect (expit(logit(rate) + tau z_j));
- every published case's findings through the selection model (the odds of each striking feature
  times exp(gamma), :func:`palsy.model.likelihood.case_theta`);
- the case library: every library case keeps what was observed of it (which findings, its context and
  its stated form), and its findings are drawn from the model. Its form, when the library does not
  state it, is drawn from P(form | case context) = sum_lineage P(lineage | context, infiltration)
  omega[lineage, form] and is then *stated* in the simulated library. Cases carry no LP result in the
  likelihood (they do not inform CSF sensitivity), so the CSF profile is drawn given the case's own
  first LP's class, as the fit reads it.

The sampled parameters are the free node parameters ``theta_free`` (theta is assembled from them:
shared nodes, including the CSF model's laboratory nodes, repeat one value; structural zeros stay 0),
omega, tau, re_z and gamma. LP cohort entries (result patterns under the CSF model of
:mod:`palsy.model.lp`) and CSF-node entries are simulated like any count: x ~ Binomial(n, rate).

Refits reuse one model and change its ``pm.Data`` (nutpie: ``compiled.with_data``). Case findings are
observation masks in the graph, not ``pm.Data``; what makes them swappable is that, given the form, a case's
log-likelihood is a sum over its findings. So the compiled library is *one pseudo-case per
(infiltration component, item, level)* (:func:`pseudo_library`), and the simulated library enters as
the pseudo-cases' weights ``case_w``: the number of simulated findings at that level. That is exactly
the likelihood of the simulated cases with their forms stated. (A stated form carries no information
on omega in this model, so omega is informed by the cohort entries on infiltration as a whole.)

For each sampled scalar, the rank of the true value among ``L`` thinned posterior draws (evenly
spaced over the chains) is recorded; ranks are uniform on 0..L when the sampler and the model's
code agree. Results: ``sbc_results.json`` (ranks, per-parameter chi-square p-values over ``bins``
bins, a pooled chi-square, simultaneous ECDF-band exits, sampler diagnostics) and ``sbc_ecdf.svg``
(the ECDF of each parameter's PIT minus the uniform CDF, with the 95% simultaneous band of
``arviz_stats.ecdf_utils.ecdf_pit``).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

if __package__ in (None, ""):  # run as a file: its folder holds palsy.py, which must not hide the palsy package
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "sbc"
RESULTS = "sbc_results.json"
FIGURE = "sbc_ecdf.svg"


def _labels(params: dict[str, np.ndarray], d) -> list[tuple[str, str, tuple[int, ...]]]:
    from palsy.model.criticism.common import element_labels, sampled

    out = []
    for name, arr in sampled(params).items():
        for idx, label in element_labels(name, arr.shape[1:], d):
            out.append((label, name, idx))
    return out


@dataclasses.dataclass(frozen=True)
class Library:
    """The real library's structure and the compiled pseudo-library that carries simulated cases.

    ``slots[i]`` lists the tree items case i observes, in order (a tree finding, or the CSF profile's
    item given the real first LP's class: cases carry no LP result in the likelihood, so the class is
    the case's own and only the profile is simulated).
    """

    evidence: Any  # the evidence with the pseudo-library as its cases
    slots: tuple[tuple[str, ...], ...]
    forms: np.ndarray  # (case, infiltration component) 0/1: allowed forms of each real case
    lineage: np.ndarray  # (case, lineage) P(lineage | case context, infiltration)
    index: dict[tuple[int, str, str], int]  # (infiltration component position, item, level) -> pseudo-case


def pseudo_library(evidence, variant) -> Library:
    """The pseudo-library of ``variant`` (one case per infiltration component, tree item and level) and
    the structure of ``evidence``'s real case library."""
    from palsy.model import design as D
    from palsy.model.evidence import Case

    st = evidence.structure
    real = D.build(evidence, variant, weights_one=True)
    comps = variant.infiltration_components
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    slots = []
    for case in evidence.cases:
        skip = {f for (cid, f) in tabulated if cid == case.id}
        slots.append(tuple(st.level_keys[int(np.flatnonzero(mask)[0])][0]
                           for mask in D.case_observations(case, st, skip=skip)))
    method = st.methods[0]
    pseudo, index = [], {}
    for pos, k in enumerate(comps):
        form = variant.components[k] if variant.is_mixture else None
        for item, levels in st.items.items():
            for lv in levels:
                cid = f"sbc:{variant.components[k]}:{item}:{lv}"
                if item in st.tree_findings:
                    values, csf = {item: lv}, None
                else:  # the profile given the first LP's class (csf_profile_negative / _positive)
                    first = next(r for r in st.results if st.profile_item(r) == item)
                    values, csf = {st.profile_finding: lv}, ((first, method),)
                index[(pos, item, lv)] = len(pseudo)
                pseudo.append(Case(cid, "sbc", "after_diagnosis", form, values, csf, ()))
    ev = dataclasses.replace(evidence, cases=tuple(pseudo), hash=f"{evidence.hash}:sbc-pseudo-library")
    return Library(ev, tuple(slots), real.case_forms, real.case_lineage, index)


def simulate_cases(lib: Library, truth: dict[str, np.ndarray], d, rng: np.random.Generator) -> np.ndarray:
    """The simulated library as weights of the pseudo-cases (counts of simulated findings per level)."""
    from palsy.model import likelihood as LK

    st = d.structure
    comps = list(d.variant.infiltration_components)
    # a published case is drawn from theta as selection shows it (the model's case likelihood)
    level_p = np.exp(LK.level_logp(LK.NUMPY, np.asarray(LK.case_theta(LK.NUMPY, truth, d))[0], st))[comps]
    counts = np.zeros(len(lib.index))
    for i, slots in enumerate(lib.slots):
        w = lib.forms[i].astype(float)
        if "omega" in truth:
            w = w * (lib.lineage[i] @ truth["omega"][0])
        pos = int(rng.choice(len(w), p=w / w.sum()))
        for item in slots:
            levels = st.items[item]
            p = level_p[pos, [st.level_index[(item, lv)] for lv in levels]]
            lv = levels[int(rng.choice(len(levels), p=p / p.sum()))]
            counts[lib.index[(pos, item, lv)]] += 1
    return counts


def simulate_data(d, truth: dict[str, np.ndarray], rng: np.random.Generator, lib: Library | None = None) -> dict[str, np.ndarray]:
    """Cohort counts (and, with ``lib``, the case library as pseudo-case weights) simulated from one
    parameter set (leading sample dim of size 1). Without ``lib`` every case weight is 0."""
    from palsy.model import likelihood as LK

    rate = np.asarray(LK.entry_rate(LK.NUMPY, truth, d)).reshape(1, -1)[0]
    n = np.round(d.entry_n).astype(int)
    return {
        "entry_x": rng.binomial(n, np.clip(rate, 0, 1)).astype(float), "entry_n": n.astype(float),
        "entry_w": np.ones(len(n)),
        "case_w": simulate_cases(lib, truth, d, rng) if lib is not None else np.zeros(len(d.case_ids)),
    }


def simulation(evidence, variant: str, settings, seed: int, thin_to: int, lib: Library | None = None) -> dict[str, Any]:
    """One simulation (a task): parameters from the priors, data from them, a refit, and the rank of every
    sampled scalar's true value among ``thin_to`` thinned posterior draws. Everything random comes from
    ``seed``, so the task gives the same ranks wherever it runs."""
    from palsy.model import design as D
    from palsy.model import fit, prior

    v = evidence.variant(variant)
    lib = lib or pseudo_library(evidence, v)
    d = D.build(lib.evidence, v, weights_one=True)
    rng = np.random.default_rng(seed)
    truth = prior.draws(d, 1, rng)
    data = simulate_data(d, truth, rng, lib)
    st = dataclasses.replace(settings, seed=int(rng.integers(1, 2**31 - 1)))
    dt, _ = fit.sample(variant, lib.evidence, st, data=data, weights_one=True)
    post = fit.flat_params(dt)
    labels = _labels(post, d)
    n = next(iter(post.values())).shape[0]
    idx = np.round(np.linspace(0, n - 1, thin_to)).astype(int)
    return {"labels": [lb for lb, _, _ in labels],
            "ranks": [int(np.sum(post[name][(idx, *ix)] < truth[name][(0, *ix)])) for _, name, ix in labels],
            "divergences": int(dt["sample_stats"]["diverging"].values.sum()), "findings": int(data["case_w"].sum())}


def run(evidence, variant: str, simulations: int, *, draws: int = 400, tune: int = 400, chains: int = 2,
        thin_to: int = 99, bins: int = 10, seed: int = 1, progress: bool = False,
        sampler: str | None = None, scheduler: str | None = "local") -> dict[str, Any]:
    """Run SBC and return the results (see the module docstring).

    Parameters
    ----------
    thin_to : int
        L, the number of posterior draws each true value is ranked among (ranks 0..L).
    bins : int
        Bins of the rank histograms for the chi-square statistics (L + 1 must be divisible by it).
    scheduler : str, optional
        Where the simulations run (each one a task): ``"serial"`` (this process), ``None``/``"local"``
        (a Dask LocalCluster) or a Dask scheduler's address. Each simulation's seed is spawned from
        ``seed`` (``numpy.random.SeedSequence``), so the ranks do not depend on where it ran.
    """
    from palsy.model import cache as C
    from palsy.model import nuts
    from palsy.model.criticism import heavy

    if (thin_to + 1) % bins:
        raise ValueError(f"thin_to + 1 ({thin_to + 1}) must be divisible by bins ({bins})")
    v = evidence.variant(variant)
    lib = pseudo_library(evidence, v)
    from palsy.model import design as D

    d = D.build(lib.evidence, v, weights_one=True)
    settings = C.Settings(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler or C.SAMPLERS[0])
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(simulations)]
    t0 = time.perf_counter()
    with heavy.runner(scheduler) as run_:
        if settings.sampler == "nutpie" and run_.client is None:  # compile outside the timed loop
            nuts.nutpie_model((variant, lib.evidence.hash, settings.synthesis), d)
        t_compiled = time.perf_counter() - t0
        t0 = time.perf_counter()
        outs = run_.map(simulation, [((evidence, variant, settings, s, thin_to), {}) for s in seeds])
        where = run_.describe
    if progress:
        print(f"sbc: {simulations} simulations ({time.perf_counter() - t0:.0f} s, {where})", file=sys.stderr)
    seconds = time.perf_counter() - t0
    labels = outs[0]["labels"] if outs else []
    out = summarise(np.array([o["ranks"] for o in outs]), labels, thin_to=thin_to, bins=bins)
    return {
        "variant": variant, "evidence_hash": evidence.hash, "simulations": simulations,
        "settings": {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "thin_to": thin_to, "bins": bins,
                     "sampler": settings.sampler, "thin": settings.thin},
        "what": ("sampled parameters (theta_free, omega, the spread tau and study effects re_z, the selection "
                 "parameter gamma) from the prior; cohort counts simulated with their study effects and the case "
                 "library's findings through the selection model (forms drawn and stated); weights 1. "
                 "A code check: data simulated from the model itself"),
        "random_effect_quantities": list(d.re_groups), "selected_features": int(d.sel_mask.sum()),
        "library": {"cases": len(lib.slots),
                    "findings_per_simulation": float(np.mean([o["findings"] for o in outs])) if outs else 0.0,
                    "pseudo_cases": len(lib.index)},
        **out,
        "divergences": int(sum(o["divergences"] for o in outs)),
        "seconds": seconds, "compile_seconds": t_compiled, "runner": where,
    }


def summarise(r: np.ndarray, labels: list[str], *, thin_to: int, bins: int = 10) -> dict[str, Any]:
    """Rank statistics of ranks ``r`` (simulation, parameter) in 0..``thin_to``: per-parameter and
    pooled chi-square tests of uniformity over ``bins`` bins, and simultaneous ECDF-band exits."""
    from scipy import stats

    width = (thin_to + 1) // bins
    per = []
    for j, label in enumerate(labels):
        counts = np.bincount(r[:, j] // width, minlength=bins)
        chi2 = stats.chisquare(counts)
        per.append({"parameter": label, "chi2": float(chi2.statistic), "p_value": float(chi2.pvalue),
                    "mean_rank": float(r[:, j].mean() / thin_to)})
    pooled_counts = np.bincount((r // width).ravel(), minlength=bins)
    pooled = stats.chisquare(pooled_counts)
    band_exits = _band_exits(r, thin_to)
    for row, e in zip(per, band_exits, strict=True):
        row["outside_ecdf_band"] = e
    return {
        "parameters": list(labels), "ranks": r.tolist(), "per_parameter": per,
        "pooled": {"counts": pooled_counts.tolist(), "chi2": float(pooled.statistic), "p_value": float(pooled.pvalue)},
        "min_p_value": float(min(p["p_value"] for p in per)),
        "bonferroni_failures": [p["parameter"] for p in per if p["p_value"] < 0.01 / len(per)],
    }


def _band_exits(ranks: np.ndarray, thin_to: int, prob: float = 0.95) -> list[bool]:
    """Whether each parameter's PIT ECDF leaves the simultaneous ``prob`` band."""
    from arviz_stats.ecdf_utils import ecdf_pit

    out = []
    for j in range(ranks.shape[1]):
        pit = (ranks[:, j] + 0.5) / (thin_to + 1)
        _, ecdf, lower, upper = ecdf_pit(pit, prob, 500, rng=np.random.default_rng(j))
        out.append(bool(np.any((ecdf < lower - 1e-12) | (ecdf > upper + 1e-12))))
    return out


def figure(results: dict[str, Any], path: Path | BinaryIO) -> None:
    """The ECDF-difference plot of every parameter's PIT, with the 95% simultaneous band (SVG, to a file or
    a binary stream)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from arviz_stats.ecdf_utils import ecdf_pit

    r = np.array(results["ranks"])
    L = results["settings"]["thin_to"]
    fig, ax = plt.subplots(figsize=(7, 4))
    band = None
    for j, label in enumerate(results["parameters"]):
        pit = (r[:, j] + 0.5) / (L + 1)
        x, ecdf, lower, upper = ecdf_pit(pit, 0.95, 500, rng=np.random.default_rng(j))
        band = band or (x, lower - x, upper - x)
        bad = results["per_parameter"][j]["outside_ecdf_band"]
        ax.step(x, ecdf - x, where="post", lw=1.2 if bad else 0.6, alpha=0.9 if bad else 0.35,
                color="C3" if bad else "C0", label=label if bad else None)
    if band:
        ax.fill_between(band[0], band[1], band[2], step="post", color="0.85", zorder=0, label="95% simultaneous band")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlabel("PIT of the true value among posterior draws")
    ax.set_ylabel("ECDF - uniform CDF")
    ax.set_title(f"SBC, {results['variant']} variant: {results['simulations']} simulations, "
                 f"{len(results['parameters'])} parameters")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``sbc_results.json`` and ``sbc_ecdf.svg`` into ``out`` as one set: both or neither
    (:func:`palsy.reports.output.write_all`)."""
    from palsy.reports.output import write_all

    svg = io.BytesIO()
    figure(results, svg)
    paths = write_all(out, {RESULTS: json.dumps(results, indent=1).encode("utf-8"), FIGURE: svg.getvalue()})
    return paths[RESULTS], paths[FIGURE]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m palsy.scripts.sbc", description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="independent", choices=("independent", "subtype"))
    p.add_argument("--simulations", type=int, default=200, help="number of simulations (default 200)")
    p.add_argument("--draws", type=int, default=400, help="posterior draws per chain and simulation")
    p.add_argument("--tune", type=int, default=400)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--thin-to", type=int, default=99, help="L: ranks among L thinned draws (0..L)")
    p.add_argument("--seed", type=int, default=1)
    from palsy.model import cache as C

    p.add_argument("--sampler", default=C.SAMPLERS[0], choices=C.SAMPLERS, help=f"NUTS backend (default {C.SAMPLERS[0]})")
    p.add_argument("--priors", default=str(REPO / "priors"), help="evidence folder (default priors/)")
    p.add_argument("--scheduler", default="local",
                   help="where the simulations run: local (a Dask LocalCluster of worker processes, default), serial "
                        "(this process) or a Dask scheduler address such as tcp://host:8786 (docs/heavy_checks.md)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if args.simulations < 1:
        p.error("--simulations must be >= 1")
    from palsy.model import evidence as E

    ev = E.load(args.priors)
    res = run(ev, args.variant, args.simulations, draws=args.draws, tune=args.tune, chains=args.chains,
              thin_to=args.thin_to, seed=args.seed, progress=sys.stderr.isatty(), sampler=args.sampler,
              scheduler=args.scheduler)
    paths = write(res, Path(args.out))
    print(f"sbc {args.variant}: {res['simulations']} simulations in {res['seconds']:.0f} s; pooled chi-square "
          f"p = {res['pooled']['p_value']:.3f}; min per-parameter p = {res['min_p_value']:.4f}; "
          f"outside the ECDF band: {sum(x['outside_ecdf_band'] for x in res['per_parameter'])}; "
          f"divergences {res['divergences']}")
    print("wrote " + ", ".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

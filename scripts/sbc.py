"""Simulation-based calibration (Talts et al. 2018; Modrák et al. 2023) of a palsy variant.

    python -m scripts.sbc [--variant independent] [--simulations 200] [--priors DIR] [--out DIR]

What is simulated (and what is not)
-----------------------------------
Every likelihood weight is set to 1 (``weights_one``): a power prior is not a generative model. (The
lineage-share Dirichlet of ``pretest.yaml`` is a prior, compiled into the model: it is simulated from as
compiled, with its stated weight.) For each
simulation, one parameter set is drawn from the model's priors (:func:`model.prior.draws`:
base Betas, expert-judgment Betas, the Dirichlet/log-normal pretest priors, the form weights), the
cohort counts are simulated from it, x ~ Binomial(n, rate) for every tree entry (``entry_x``) and
every lineage/remission entry (``sentry_x``), with the evidence's own n, and the model is refitted on
them by reusing the one nutpie-compiled model (``compiled.with_data``). The case library is *not*
simulated: its findings are observation masks built into the model's graph, not ``pm.Data``, so they
cannot be swapped without recompiling; SBC sets every case weight to 0 (``case_w`` zeros). The
calibration therefore covers the cohort likelihood, the trees, the mixture weights' prior and the
pretest priors, not the case likelihood.

For each scalar parameter, the rank of the true value among ``L`` thinned posterior draws (evenly
spaced over the chains) is recorded; ranks are uniform on 0..L when the sampler and the model's
code agree. Results: ``sbc_results.json`` (ranks, per-parameter chi-square p-values over ``bins``
bins, a pooled chi-square, simultaneous ECDF-band exits, sampler diagnostics) and ``sbc_ecdf.svg``
(the ECDF of each parameter's PIT minus the uniform CDF, with the 95% simultaneous band of
``arviz_stats.ecdf_utils.ecdf_pit``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "sbc"
RESULTS = "sbc_results.json"
FIGURE = "sbc_ecdf.svg"


def _labels(params: dict[str, np.ndarray], d) -> list[tuple[str, str, tuple[int, ...]]]:
    from model import criticism as K

    out = []
    for name, arr in params.items():
        for idx, label in K._element_labels(name, arr.shape[1:], d):
            out.append((label, name, idx))
    return out


def simulate_data(d, truth: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cohort counts simulated from one parameter set (leading sample dim of size 1); cases off."""
    from model import criticism as K

    r, rs = K.entry_rates(truth, d)
    n = np.round(d.entry_n).astype(int)
    sn = np.round(d.sentry_n).astype(int)
    return {
        "entry_x": rng.binomial(n, np.clip(r[0], 0, 1)).astype(float), "entry_n": n.astype(float),
        "sentry_x": rng.binomial(sn, np.clip(rs[0], 0, 1)).astype(float), "sentry_n": sn.astype(float),
        "entry_w": np.ones(len(n)), "sentry_w": np.ones(len(sn)),
        "case_w": np.zeros(len(d.case_ids)),
    }


def run(evidence, variant: str, simulations: int, *, draws: int = 400, tune: int = 400, chains: int = 2,
        thin_to: int = 99, bins: int = 10, seed: int = 1, progress: bool = False) -> dict[str, Any]:
    """Run SBC and return the results (see the module docstring).

    Parameters
    ----------
    thin_to : int
        L, the number of posterior draws each true value is ranked among (ranks 0..L).
    bins : int
        Bins of the rank histograms for the chi-square statistics (L + 1 must be divisible by it).
    """
    from model import cache as C
    from model import criticism as K
    from model import design as D
    from model import fit, variants

    if (thin_to + 1) % bins:
        raise ValueError(f"thin_to + 1 ({thin_to + 1}) must be divisible by bins ({bins})")
    v = variants.get(variant, evidence.forms)
    # Weights 1 for every likelihood term (the data below); priors, including the lineage-share
    # Dirichlet built from counts, are as compiled.
    d = D.build(evidence, v, weights_one=True)
    rng = np.random.default_rng(seed)
    settings = C.Settings(draws=draws, tune=tune, chains=chains, seed=seed)
    labels = None
    ranks, diags = [], []
    t0 = time.perf_counter()
    fit.compiled_model(variant, evidence)  # compile once, outside the timed loop
    t_compiled = time.perf_counter() - t0
    for s in range(simulations):
        truth = K.prior_draws(d, 1, rng)
        data = simulate_data(d, truth, rng)
        st = dataclasses.replace(settings, seed=int(rng.integers(1, 2**31 - 1)))
        dt, _ = fit.sample(variant, evidence, st, data=data, weights_one=True)
        post = fit.flat_params(dt)
        labels = labels or _labels(post, d)
        n = next(iter(post.values())).shape[0]
        idx = np.round(np.linspace(0, n - 1, thin_to)).astype(int)
        ranks.append([int(np.sum(post[name][(idx, *ix)] < truth[name][(0, *ix)])) for _, name, ix in labels])
        diags.append({"divergences": int(dt["sample_stats"]["diverging"].values.sum())})
        if progress:
            print(f"sbc: {s + 1}/{simulations} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    seconds = time.perf_counter() - t0
    out = summarise(np.array(ranks), [lb for lb, _, _ in labels], thin_to=thin_to, bins=bins)
    return {
        "variant": variant, "evidence_hash": evidence.hash, "simulations": simulations,
        "settings": {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "thin_to": thin_to, "bins": bins},
        "what": "cohort counts (entry_x, sentry_x) simulated from the prior, weights 1, case weights 0",
        **out,
        "divergences": int(sum(x["divergences"] for x in diags)),
        "seconds": seconds, "compile_seconds": t_compiled,
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


def figure(results: dict[str, Any], path: Path) -> None:
    """The ECDF-difference plot of every parameter's PIT, with the 95% simultaneous band."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``sbc_results.json`` and ``sbc_ecdf.svg`` into ``out`` (atomically)."""
    from model.draws import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    res = out / RESULTS
    atomic_write(res, lambda tmp: tmp.write_text(json.dumps(results, indent=1)))
    fig = out / FIGURE
    figure(results, fig)
    return res, fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.sbc", description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="independent", choices=("independent", "subtype"))
    p.add_argument("--simulations", type=int, default=200, help="number of simulations (default 200)")
    p.add_argument("--draws", type=int, default=400, help="posterior draws per chain and simulation")
    p.add_argument("--tune", type=int, default=400)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--thin-to", type=int, default=99, help="L: ranks among L thinned draws (0..L)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--priors", default=str(REPO / "priors"), help="evidence folder (default priors/)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if args.simulations < 1:
        p.error("--simulations must be >= 1")
    from model import evidence as E

    ev = E.load(args.priors)
    res = run(ev, args.variant, args.simulations, draws=args.draws, tune=args.tune, chains=args.chains,
              thin_to=args.thin_to, seed=args.seed, progress=True)
    paths = write(res, Path(args.out))
    print(f"sbc {args.variant}: {res['simulations']} simulations in {res['seconds']:.0f} s; pooled chi-square "
          f"p = {res['pooled']['p_value']:.3f}; min per-parameter p = {res['min_p_value']:.4f}; "
          f"outside the ECDF band: {sum(x['outside_ecdf_band'] for x in res['per_parameter'])}; "
          f"divergences {res['divergences']}")
    print("wrote " + ", ".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

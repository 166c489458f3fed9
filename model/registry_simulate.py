"""Registries simulated from known parameters (docs/registry.md): the recovery study of
``scripts/simulate_registry.py``, the tests' recovery check and the site-level check's detection test.

:func:`simulate` draws patients from one parameter set (a draw of a posterior or of the prior: theta,
omega and the rate block), as the registry's likelihood describes them: at each site the cause and the
context stratum jointly from P(c, s | site), proportional to pi_s lambda_c,s exp(u_site,c); the component
given the cause (a form of infiltration by its lineage's weights); every finding given the component (the
LPs through the CSF model with the stratum's circulating blasts and a traumatic tap drawn at the
``traumatic`` node's rate; the CSF profile given the first LP's class). Each finding is then recorded
(known) with a probability, so rows have unknowns, and a share of the causes is left ``undetermined``.
``miscode`` makes one site record one finding's levels in another order (a site that codes it
differently: the site-level predictive check should find it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import registry as RG
from palsy.model import structure as ST
from palsy.model.schema import Schema


@dataclasses.dataclass(frozen=True)
class Recording:
    """How completely rows are recorded: the chance that each context finding and each other finding is
    known, the share of causes left undetermined, and how many LPs a patient has (0, 1, 2: probabilities)."""

    context_known: float = 0.9
    finding_known: float = 0.7
    undetermined: float = 0.05
    lps: tuple[float, float, float] = (0.3, 0.5, 0.2)


def one_draw(params: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Parameter set ``i`` of a dict of draws (the leading axis dropped)."""
    return {k: np.asarray(v)[i] for k, v in params.items()}


def simulate(params: dict[str, np.ndarray], rates, schema: Schema, causes: tuple[str, ...],
             components: tuple[str, ...], component_causes: tuple[str, ...], n_rows: int, sites: list[str],
             site_sd: float, rng: np.random.Generator, recording: Recording = Recording(),
             miscode: tuple[str, str] | None = None, period: str = "2025-01") -> RG.Registry:
    """A simulated registry of ``n_rows`` rows from one parameter set ``params`` (no leading axis).

    Parameters
    ----------
    params : dict
        ``theta`` (component, node), ``omega`` (lineage, form) for the subtype variant, and the rate block.
    site_sd : float
        The spread of the true site effects on each cause's log rate.
    miscode : (site, finding), optional
        That site records the finding's levels reversed (e.g. bilateral as unilateral).
    """
    st = ST.of(schema)
    ix = LP.Index.of(st)
    p1 = {k: v[None] for k, v in params.items()}
    log_prior, log_sk = LK.component_strata(LK.NUMPY, p1, rates)  # (1, C), (1, K, N)
    _, log_sc = LK.cause_strata(LK.NUMPY, p1, rates)  # (1, C, N)
    joint = (log_prior[0][:, None] + log_sc[0])  # (C, N): log P(c, s)
    theta = params["theta"]
    level_lp = LK.level_logp(LK.NUMPY, theta, st)  # (K, L)
    comp_cause = np.array([causes.index(c) for c in component_causes])
    u = rng.normal(0.0, site_sd, (len(sites), len(causes)))
    blasts_f, blasts_lv = schema.lp.contamination
    blasts_axis = st.context.index(blasts_f)
    rows = []
    for n in range(n_rows):
        s_i = int(rng.integers(len(sites)))
        lj = joint + u[s_i][:, None]
        p = np.exp(lj - lj.max())
        p = (p / p.sum()).ravel()
        cs = int(rng.choice(p.size, p=p))
        c, s = divmod(cs, st.n_strata)
        comps = np.flatnonzero(comp_cause == c)
        pk = np.exp(log_sk[0][comps, s] - log_sc[0][c, s])  # P(k | c, s)
        k = int(comps[rng.choice(len(comps), p=pk / pk.sum())])
        levels = st.strata[s]
        row: dict[str, Any] = {}
        for f, lv in zip(st.context, levels, strict=True):
            if rng.random() < recording.context_known:
                row[f] = lv
        for item in st.tree_findings:
            lvs = st.items[item]
            pl = np.exp([level_lp[k, st.level_index[(item, lv)]] for lv in lvs])
            lv = lvs[int(rng.choice(len(lvs), p=pl / pl.sum()))]
            if miscode is not None and sites[s_i] == miscode[0] and item == miscode[1]:
                lv = lvs[len(lvs) - 1 - lvs.index(lv)]
            if rng.random() < recording.finding_known:
                row[item] = lv
        n_lp = int(rng.choice(3, p=np.array(recording.lps) / sum(recording.lps)))
        blasts = float(levels[blasts_axis] == blasts_lv)
        lps = []
        for _ in range(n_lp):
            traumatic = rng.random() < theta[k, ix.traumatic]
            kap = theta[k, ix.contamination] * blasts * float(traumatic)
            pat = LP.patterns(LK.NUMPY, theta[None], ix, np.array([[kap]]))[0, k]
            q = int(rng.choice(LP.N_PATTERNS, p=pat / pat.sum()))
            res = {ix.methods[0]: ("negative", "positive")[q >> 1], ix.methods[1]: ("negative", "positive")[q & 1]}
            done = rng.choice(3, p=[0.6, 0.2, 0.2])  # both methods, first only, second only
            if done == 1:
                res.pop(ix.methods[1])
            elif done == 2:
                res.pop(ix.methods[0])
            lp = {**res}
            if rng.random() < recording.finding_known:
                lp["traumatic"] = "yes" if traumatic else "no"
            lps.append((lp, q))
        if lps:
            row[schema.lp.name] = [lp for lp, _ in lps]
            first = lps[0][0]
            cls = "positive" if any(v == "positive" for m, v in first.items() if m != "traumatic") else "negative"
            item = st.profile_item(cls)
            lvs = st.items[item]
            pl = np.exp([level_lp[k, st.level_index[(item, lv)]] for lv in lvs])
            if rng.random() < recording.finding_known:
                row[schema.profile] = lvs[int(rng.choice(len(lvs), p=pl / pl.sum()))]
        cause = causes[c] if rng.random() >= recording.undetermined else RG.UNDETERMINED
        row.update(site=sites[s_i], period=period, final_cause=cause)
        if cause != RG.UNDETERMINED:
            row["established_by"] = ["follow_up"]
        rows.append((f"row {n + 1}", row))
    return RG.from_mappings(rows, schema, causes, source="simulated")

"""Shared pieces of model criticism: the fit's likelihood terms in numpy, labels of scalar
parameters, :class:`~palsy.model.draws.Draws` from a refit, and JSON output."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import likelihood as LK
from palsy.model.draws import Draws
from palsy.model.evidence import Evidence
from palsy.model.prior import SAMPLED

CI = 0.9
PRIOR_ONLY = "prior-only by design"


def reshape_chains(a: np.ndarray, chains: int) -> np.ndarray:
    """(sample, ...) -> (chain, draw, ...).

    Version 3 drops no draw (the orderings hold by construction, :mod:`palsy.model.lp`), so the count
    divides by ``chains``; a count that does not (draws subset by a caller) loses its last
    ``n mod chains`` draws and the rest is split evenly in chain order.
    """
    n = (a.shape[0] // chains) * chains
    return a[:n].reshape(chains, n // chains, *a.shape[1:])


def sampled(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The parameters NUTS samples (``theta_free``, omega, tau, re_z, gamma), without the rate block
    drawn from its prior and without ``theta``, which is assembled from ``theta_free``."""
    return {k: params[k] for k in SAMPLED if k in params}


def with_theta(params: dict[str, np.ndarray], d: D.Design) -> dict[str, np.ndarray]:
    """``params`` with ``theta`` (component, node) assembled from ``theta_free`` (after a change of it)."""
    return {**params, "theta": d.theta(params["theta_free"])}


def free_of_theta(theta: np.ndarray, d: D.Design) -> np.ndarray:
    """The free node parameters (..., free) that ``theta`` (..., component, node) was assembled from
    (each free parameter's copies are equal: its first copy is it, exactly)."""
    first = np.argmax(d.assembly > 0, axis=0)  # (free,): the first (component * node) row of each column
    return theta.reshape(*theta.shape[:-2], -1)[..., first]


def element_labels(name: str, shape: tuple[int, ...], d: D.Design) -> list[tuple[tuple[int, ...], str]]:
    """(index, label) of every scalar element of a sampled parameter, e.g.
    ``theta_free[bell | laterality: bilateral]`` or ``theta[bell, laterality: bilateral]``."""
    st = d.structure
    coords = {"theta_free": (list(d.free_names),),
              "theta": (list(d.variant.components), list(st.node_names)),
              "omega": (list(st.levels_of("lineage")), list(d.variant.forms)),
              "re_z": ([d.entry_ids[int(np.argmax(d.re_member[:, k]))] for k in range(d.re_member.shape[1])],)}
    names = coords.get(name, ())
    out = []
    for idx in np.ndindex(*shape):
        # a parameter without named coordinates here (a later addition) is labelled by its indices
        parts = [names[k][i] if k < len(names) and len(names[k]) == shape[k] else str(i) for k, i in enumerate(idx)]
        out.append((idx, name if not idx else f"{name}[{', '.join(parts)}]"))
    return out


def loglik_terms(params: dict[str, np.ndarray], d: D.Design) -> dict[str, np.ndarray]:
    """The likelihood terms of the fit per draw: ``entries`` (S, E) weighted as in the fit;
    ``cases`` (S, C) unweighted and ``cases_weighted`` (S, C) = w_case x l."""
    cases = np.asarray(LK.case_loglik(LK.NUMPY, params, d))
    n = cases.shape[0]
    if len(d.entry_ids):
        entries = np.asarray(LK.entry_loglik(LK.NUMPY, params, d)).reshape(n, -1)
    else:
        entries = np.zeros((n, 0))
    return {"entries": entries, "cases": cases, "cases_weighted": d.w_case * cases}


def total_loglik(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    """The fit's whole weighted log-likelihood per draw."""
    t = loglik_terms(params, d)
    return t["entries"].sum(-1) + t["cases_weighted"].sum(-1)


def case_loglik_marginal(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    """Unweighted per-case log-likelihood (S, C) with every case's form marginalised (LOO target)."""
    dm = dataclasses.replace(d, case_forms=np.ones_like(d.case_forms))
    return np.asarray(LK.case_loglik(LK.NUMPY, params, dm))


def draws_from_fit(dt, d: D.Design, evidence: Evidence, settings, *, like: Draws | None = None) -> Draws:
    """:class:`Draws` (with everything :func:`palsy.model.answer.answer` reads) from a ``fit.sample`` result
    (see :func:`draws_from_params`)."""
    from palsy.model import fit

    return draws_from_params(fit.flat_params(dt), fit.diagnostics(dt), d, evidence, settings, like=like)


def draws_from_params(params: dict[str, np.ndarray], diagnostics: dict[str, Any], d: D.Design, evidence: Evidence,
                      settings, *, like: Draws | None = None) -> Draws:
    """:class:`Draws` from a refit's flat draws (:func:`palsy.model.criticism.heavy.refit`'s result).

    The rate block is drawn from its prior with the settings' seed (as :func:`palsy.model.fit.posterior`
    does), so refits with the same settings share it exactly: differences between them are the
    sampled parameters' only. ``theta_new`` (the new-setting predictive the answers use) is drawn as
    the fit draws it; no draw is dropped (the orderings hold by construction), and the share of draws
    where the first LP's ordering with its profile holds is measured (``lp_profile_ordering``).
    """
    from palsy.model import __version__, fit
    from palsy.model import draws as draws_io

    params = dict(params)
    params.update(fit.rate_block(d, len(params["theta"]), settings.seed))
    ll = np.asarray(LK.case_loglik(LK.NUMPY, params, d)).T
    v = d.variant
    params["theta_new"] = fit.predictive_theta(params, d, settings.seed)
    ordering = fit.lp_profile_ordering(params["theta_new"], d)
    meta = {
        "variant": v.name, "components": list(v.components), "component_causes": list(v.component_causes),
        "causes": list(v.causes), "forms": list(v.forms), "answer_settings": fit.answer_settings(evidence),
        "evidence_hash": evidence.hash, "version": __version__, "settings": dataclasses.asdict(settings),
        "w_case": d.w_case, "case_ids": list(d.case_ids),
        "case_aliases": [list(c.also_known_as) for c in evidence.cases],
        "diagnostics": diagnostics, "schema": evidence.schema.to_json(), "dropped_draws": 0,
        "lp_profile_ordering": {"holds_share": float(ordering.mean()), "draws": int(len(ordering))},
        "random_effect_quantities": list(d.re_groups),
    }
    if like is not None:  # keep the baseline's provenance, but the refit's own settings and diagnostics
        meta = {**like.meta, **{k: meta[k] for k in ("settings", "diagnostics", "w_case", "lp_profile_ordering")}}
    return Draws(params, meta, d.w_case * ll, draws_io.rate_arrays_to_dict(d.rates))


def plain(v: Any) -> Any:
    """A JSON-ready scalar."""
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    return str(v)


def to_json(results: dict[str, Any]) -> str:
    """The results without the private (``_``) keys, as JSON (non-finite numbers as null)."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items() if not str(k).startswith("_")}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        if isinstance(x, (float, np.floating, np.integer, np.bool_)):
            return plain(x)
        return x

    return json.dumps(clean(results), indent=1)

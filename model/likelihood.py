"""The model's probability formulas, written once for numpy (draws) and PyTensor (the PyMC model).

Every function takes ``ops`` (:data:`NUMPY` or the PyTensor namespace built in :mod:`model.build`)
and parameters with any leading batch dims (draws in numpy, none in PyTensor). Imports only numpy,
so the patient-answer path can use it.

Parameters (``p``): ``theta`` (component, node); ``lineage_share`` (lineage);
``remission_share`` (lineage, remission); ``relapse_hazard`` (lineage); ``remission_multiplier``
(the non-reference remission levels); ``p_facial``; ``bell_incidence``; ``omega`` (form; subtype).
"""

from __future__ import annotations

import types

import numpy as np

from model import structure as S


def _np_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


NUMPY = types.SimpleNamespace(
    exp=np.exp, log=np.log, log1p=np.log1p, logsumexp=_np_logsumexp,
    concatenate=np.concatenate, ones_like=np.ones_like,
)


def remission_multiplier_full(ops, m):
    """Insert the reference level (multiplier 1) among the remission multipliers."""
    parts, j = [], 0
    for r in S.REMISSIONS:
        if r == S.REFERENCE_REMISSION:
            parts.append(ops.ones_like(m[..., :1]))
        else:
            parts.append(m[..., j:j + 1])
            j += 1
    return ops.concatenate(parts, axis=-1)


def strata(ops, p):
    """Log P(stratum | L), log P(stratum | B) (..., lineage, remission) and logit P(L) (...).

    pi_s = lineage share x remission share; lambda_L,s = hazard x multiplier x P(facial | relapse);
    lambda_B = Bell's incidence. P(s | L) is proportional to pi_s lambda_L,s, P(s | B) to pi_s, and
    the prior odds are sum_s pi_s lambda_L,s / lambda_B (DESIGN §4).
    """
    pi = p["lineage_share"][..., :, None] * p["remission_share"]
    mult = remission_multiplier_full(ops, p["remission_multiplier"])
    lam = p["relapse_hazard"][..., :, None] * mult[..., None, :] * p["p_facial"][..., None, None]
    a = (pi * lam).sum(axis=(-2, -1))
    log_l = ops.log(pi * lam) - ops.log(a)[..., None, None]
    log_b = ops.log(pi)
    logit_prior = ops.log(a) - ops.log(p["bell_incidence"])
    return log_l, log_b, logit_prior


def level_logp(ops, theta):
    """Log P(level | component) for every item level (..., component, level) from the tree nodes."""
    return ops.log(theta) @ S.A_SUCCESS.T + ops.log1p(-theta) @ S.A_FAILURE.T


def group_logp(ops, theta, masks):
    """Log P(level group | component) (..., component, group) for 0/1 ``masks`` (group, level)."""
    return ops.log(ops.exp(level_logp(ops, theta)) @ masks.T)


def form_strata(ops, p):
    """Log P(stratum, form | L) (..., form, lineage, remission) of the subtype variant.

    The forms' weights depend on the lineage: omega (..., lineage, form), so that
    P(s, k | L) = P(s | L) omega[lineage(s), k] (myeloid sarcoma is mostly AML).
    """
    log_l, _, _ = strata(ops, p)
    return log_l[..., None, :, :] + ops.log(p["omega"]).swapaxes(-1, -2)[..., :, :, None]


def component_logw(ops, p, n_components: int):
    """Marginal log mixture weight of each component within its hypothesis (..., component):
    log sum_lineage P(lineage | L) omega[lineage, k] for the forms, 0 for B; None if no mixture."""
    if "omega" not in p:
        return None
    log_l, _, _ = strata(ops, p)
    p_lin = ops.exp(log_l).sum(axis=-1)  # (..., lineage)
    wbar = (p_lin[..., :, None] * p["omega"]).sum(axis=-2)  # (..., form)
    return ops.concatenate([ops.log(wbar), ops.log(ops.ones_like(wbar[..., :1]))], axis=-1)


def stratum_sum(pl, masks):
    """Sum of P(stratum) over each mask's strata: (..., lineage, remission) x (m, 12) -> (..., m)."""
    m = masks.reshape(-1, len(S.LINEAGES), len(S.REMISSIONS))
    return (pl[..., None, :, :] * m).sum(axis=(-2, -1))


def _binomial(ops, r, x, n, w):
    return w * (x * ops.log(r) + (n - x) * ops.log1p(-r))


def entry_rate(ops, p, d):
    """The rate x/n each cohort entry on a tree item estimates, P(level | of, hypothesis) (..., entry)."""
    theta = p["theta"]
    lw = component_logw(ops, p, d.prior_a.shape[0])
    wts = d.entry_members.T if lw is None else ops.exp(lw)[..., :, None] * d.entry_members.T
    num = (ops.exp(group_logp(ops, theta, d.entry_level)) * wts).sum(axis=-2)
    den = (ops.exp(group_logp(ops, theta, d.entry_of)) * wts).sum(axis=-2)
    return num / den


def stratum_entry_rate(ops, p, d):
    """The rate each lineage/remission cohort entry estimates under L (..., entry)."""
    log_l, _, _ = strata(ops, p)
    pl = ops.exp(log_l)
    return stratum_sum(pl, d.sentry_level) / stratum_sum(pl, d.sentry_of)


def entry_loglik(ops, p, d):
    """Weighted log-likelihood of each cohort entry on a tree item (..., entry)."""
    return _binomial(ops, entry_rate(ops, p, d), d.entry_x, d.entry_n, d.entry_w)


def stratum_entry_loglik(ops, p, d):
    """Weighted log-likelihood of each lineage/remission cohort entry under L (..., entry)."""
    return _binomial(ops, stratum_entry_rate(ops, p, d), d.sentry_x, d.sentry_n, d.sentry_w)


def case_loglik(ops, p, d):
    """Unweighted log-likelihood of each case under L (..., case): its findings and its stratum.

    Under the subtype variant the case's findings share one (possibly unknown) form, so the
    mixture over forms is taken per case:
    log sum_k sum_s P(s, k | L) prod_j p(x_j | k), over the case's compatible strata s.
    """
    theta = p["theta"]
    obs = group_logp(ops, theta, d.obs_mask)  # (..., K, obs)
    per = obs @ d.obs_case.T  # (..., K, case)
    per_l = per[..., :-1, :]  # L components
    log_l, _, _ = strata(ops, p)
    # log sum over the case's compatible strata of P(s | L); a case outside the population
    # (palsy at diagnosis) is conditioned on its lineage instead of informing P(s | L).
    stratum = ops.log(stratum_sum(ops.exp(log_l), d.case_strata))
    if "omega" not in p:
        return per_l[..., 0, :] + stratum * (1 - d.case_condition)
    joint = ops.log(stratum_sum(ops.exp(form_strata(ops, p)), d.case_strata))  # (..., form, case)
    mask = np.where(d.case_forms.T > 0, 0.0, -np.inf)  # (L component, case)
    return ops.logsumexp(per_l + joint + mask, axis=-2) - stratum * d.case_condition

"""The model's probability formulas, written once for numpy (draws) and PyTensor (the PyMC model).

Every function takes ``ops`` (:data:`NUMPY` or the PyTensor namespace built in :mod:`palsy.model.build`)
and parameters with any leading batch dims (draws in numpy, none in PyTensor). Imports only numpy,
so the patient-answer path can use it.

Parameters (``p``): ``theta`` (component, node); the patient-time shares ``share_lineage``
(lineage), ``share_remission`` (lineage, remission), ``share_adult`` (lineage),
``share_vincristine`` and ``share_hsct`` (lineage, remission); the rate factors ``rate_lognormal``
and ``rate_beta`` (one entry per free factor or multiplier of ``priors/rates.yaml``); ``omega``
(lineage, form) in the subtype variant. ``r`` is the rate model's constant arrays
(:class:`palsy.model.rates.RateArrays`).

The rate model (DESIGN §3-4): for cause c and stratum s of the context findings,

    pi_s       = share(lineage) share(remission | lineage) share(age | lineage)
                 share(vincristine | lineage, remission) share(hsct | lineage, remission)
    lambda_c,s = product of the cause's factors and of its multipliers for the levels of s
    P(c) is proportional to sum_s pi_s lambda_c,s;  P(s | c) to pi_s lambda_c,s.
"""

from __future__ import annotations

import types

import numpy as np

from palsy.model import structure as S


def _np_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _np_flat(x: np.ndarray, k: int) -> np.ndarray:
    return x.reshape(*x.shape[:x.ndim - k], -1)


def _np_unflat(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return x.reshape(*x.shape[:-1], *shape)


NUMPY = types.SimpleNamespace(
    exp=np.exp, log=np.log, log1p=np.log1p, logsumexp=_np_logsumexp,
    concatenate=np.concatenate, ones_like=np.ones_like, stack=np.stack, flat=_np_flat, unflat=_np_unflat,
    where=np.where,
)


def log_shares(ops, p):
    """Log share of patient-time of every stratum (..., stratum)."""
    lin = ops.log(p["share_lineage"])[..., :, None, None, None, None]
    rem = ops.log(p["share_remission"])[..., :, :, None, None, None]
    adult = p["share_adult"]
    age = ops.log(ops.stack([1 - adult, adult], axis=-1))[..., :, None, :, None, None]
    v = p["share_vincristine"]
    vin = ops.log(ops.stack([1 - v, v], axis=-1))[..., :, :, None, :, None]
    h = p["share_hsct"]
    hsc = ops.log(ops.stack([1 - h, h], axis=-1))[..., :, :, None, None, :]
    return ops.flat(lin + rem + age + vin + hsc, len(S.CONTEXT))


def log_rates(ops, p, r):
    """Log rate of a new facial palsy from each cause in each stratum (..., cause, stratum)."""
    out = r.fixed_log
    if r.lognormal_incidence.shape[0]:
        out = out + ops.log(p["rate_lognormal"]) @ r.lognormal_incidence
    if r.beta_incidence.shape[0]:
        out = out + ops.log(p["rate_beta"]) @ r.beta_incidence
    return ops.unflat(out, (r.n_causes, S.N_STRATA))


def cause_strata(ops, p, r):
    """Log P(cause) (..., cause) and log P(stratum | cause) (..., cause, stratum)."""
    joint = log_shares(ops, p)[..., None, :] + log_rates(ops, p, r)
    total = ops.logsumexp(joint, axis=-1)  # (..., cause)
    log_prior = total - ops.logsumexp(total, axis=-1)[..., None]
    return log_prior, joint - total[..., None]


def component_strata(ops, p, r):
    """Log P(stratum, component | cause of the component) (..., component, stratum).

    A form of infiltration (subtype variant) carries its weight omega[lineage(s), form], which
    depends on the lineage (myeloid sarcoma is mostly AML); every other component is its cause.
    """
    log_prior, log_sc = cause_strata(ops, p, r)
    out = r.component_cause @ log_sc
    if "omega" in p:
        # (..., form, stratum): log omega of each stratum's lineage
        log_w = ops.log(p["omega"]).swapaxes(-1, -2) @ r.lineage_of_stratum.T
        out = out + r.component_form @ log_w
    return log_prior, out


def level_logp(ops, theta):
    """Log P(level | component) for every item level (..., component, level) from the tree nodes."""
    return ops.log(theta) @ S.A_SUCCESS.T + ops.log1p(-theta) @ S.A_FAILURE.T


def group_logp(ops, theta, masks):
    """Log P(level group | component) (..., component, group) for 0/1 ``masks`` (group, level)."""
    return ops.log(ops.exp(level_logp(ops, theta)) @ masks.T)


def component_weights(ops, p, d):
    """Weight of each component within its cause as the fit uses it (..., component): 1 but for
    the forms, sum_lineage P(lineage | infiltration) omega[lineage, form], with P(lineage |
    infiltration) the rate model's prior mean (a constant of the design)."""
    r = d.rates
    if "omega" not in p:
        return np.ones(r.component_cause.shape[0])
    w_forms = d.lineage_weight @ p["omega"]  # (..., form)
    return w_forms @ r.component_form.T + (1.0 - r.component_form.sum(axis=1))


def _binomial(ops, rate, x, n, w):
    return w * (x * ops.log(rate) + (n - x) * ops.log1p(-rate))


def logit(ops, x):
    return ops.log(x) - ops.log1p(-x)


def expit(ops, x):
    return 1.0 / (1.0 + ops.exp(-x))


def entry_rate(ops, p, d):
    """The rate x/n each cohort entry estimates, P(level | of, cause or form) (..., entry).

    With random effects, an entry of a quantity that several studies measure estimates its own
    study's rate: expit(logit(rate) + tau z_study).
    """
    wts = component_weights(ops, p, d)[..., :, None] * d.entry_members.T
    num = (ops.exp(group_logp(ops, p["theta"], d.entry_level)) * wts).sum(axis=-2)
    den = (ops.exp(group_logp(ops, p["theta"], d.entry_of)) * wts).sum(axis=-2)
    rate = num / den
    if "re_z" in p:
        rate = expit(ops, logit(ops, rate) + p["tau"][..., None] * (p["re_z"] @ d.re_member.T))
    return rate


def case_theta(ops, p, d):
    """The node probabilities a published case is drawn from: the odds of each striking feature
    (``d.sel_mask``) multiplied by exp(gamma), publication's selection (DESIGN §3)."""
    if "gamma" not in p:
        return p["theta"]
    return expit(ops, logit(ops, p["theta"]) + p["gamma"][..., None, None] * d.sel_mask)


def entry_loglik(ops, p, d):
    """Weighted log-likelihood of each cohort entry (..., entry)."""
    return _binomial(ops, entry_rate(ops, p, d), d.entry_x, d.entry_n, d.entry_w)


def case_loglik(ops, p, d):
    """Unweighted log-likelihood of each case's findings under infiltration (..., case).

    Case reports are selected: they inform the findings given the form, not the rate model, so each
    case is conditioned on its context, and their striking features are read through the selection
    model (:func:`case_theta`). Under the subtype variant the case's findings share one
    (possibly unknown) form: log sum_k P(k | case context) prod_j p(x_j | k), with
    P(k | context) = sum_lineage P(lineage | context, infiltration) omega[lineage, k].
    """
    obs = group_logp(ops, case_theta(ops, p, d), d.obs_mask)  # (..., K, obs)
    per = d.infiltration_select @ (obs @ d.obs_case.T)  # (..., Ki, case)
    if "omega" not in p:
        return per[..., 0, :]
    mask = ops.where(d.case_forms.T > 0, 0.0, -np.inf)  # (Ki, case): the case's stated form
    lw = ops.log(d.case_lineage @ p["omega"]).swapaxes(-1, -2) + mask  # (..., Ki, case)
    lw = lw - ops.logsumexp(lw, axis=-2)[..., None, :]
    return ops.logsumexp(per + lw, axis=-2)

"""The model's probability formulas, written once for numpy (draws) and PyTensor (the PyMC model).

Every function takes ``ops`` (:data:`NUMPY` or the PyTensor namespace built in :mod:`palsy.model.build`)
and parameters with any leading batch dims (draws in numpy, none in PyTensor). Imports only numpy,
so the patient-answer path can use it.

Parameters (``p``): ``theta`` (component, node), assembled from the free node parameters
``theta_free`` (:func:`theta_from_free`); the patient-time share of every context finding given its
parents ``share_<finding>`` (*parent levels, levels); the rate factors ``rate_lognormal`` and
``rate_beta`` (one entry per free factor, multiplier or interaction of ``priors/rates.yaml``);
``omega`` (lineage, form) in the subtype variant. ``r`` is the rate model's constant arrays
(:class:`palsy.model.rates.RateArrays`), ``st`` the schema's :class:`~palsy.model.structure.Structure`.

The rate model (docs/design.md §3-4): for cause c and stratum s of the context findings,

    pi_s       = product over the context findings f of share_f(level of f | levels of f's parents)
    lambda_c,s = product of the cause's factors, of its multipliers for the levels of s and of its
                 interactions all of whose levels are those of s
    P(c) is proportional to sum_s pi_s lambda_c,s;  P(s | c) to pi_s lambda_c,s.

Each free factor, multiplier or interaction is one row of the incidence matrices of
:class:`~palsy.model.rates.RateArrays` (1 at its cause's strata that it multiplies; a fixed ``value`` is in
``fixed_log``), so :func:`log_rates` is one matrix product of the log factors with those rows, whatever
their kind.
"""

from __future__ import annotations

import types

import numpy as np

from palsy.model import lp as LP


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


# --- the rate model --------------------------------------------------------------------------------

def log_shares(ops, p, r):
    """Log share of patient-time of every stratum (..., stratum): the sum over the context findings of
    each one's log share given its parents, placed on its axes of the strata grid."""
    n_axes = len(r.context)
    total = 0.0
    for f in r.context:
        axes = [int(a) for a in r.share_axes[f]]
        index = tuple(slice(None) if a in axes else None for a in range(n_axes))
        total = total + ops.log(p[f"share_{f}"])[(Ellipsis, *index)]
    return ops.flat(total, n_axes)


def log_rates(ops, p, r):
    """Log rate of a new facial palsy from each cause in each stratum (..., cause, stratum)."""
    out = r.fixed_log
    if r.lognormal_incidence.shape[0]:
        out = out + ops.log(p["rate_lognormal"]) @ r.lognormal_incidence
    if r.beta_incidence.shape[0]:
        out = out + ops.log(p["rate_beta"]) @ r.beta_incidence
    return ops.unflat(out, (r.n_causes, r.n_strata))


def cause_strata(ops, p, r):
    """Log P(cause) (..., cause) and log P(stratum | cause) (..., cause, stratum)."""
    joint = log_shares(ops, p, r)[..., None, :] + log_rates(ops, p, r)
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


def strata_tables(p: dict[str, np.ndarray], r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rate model's tables per draw: log P(cause) (S, C), P(stratum, component | cause of the
    component) (S, K, N) and the patient-time share of each stratum (S, N).

    The same quantities as :func:`component_strata` (its log-sum-exps, shifted by each draw's and cause's
    largest term, so nothing underflows), with one exponential over the (draw, cause, stratum) grid instead
    of three. Numpy only. The warm answer's largest single cost, so the cache stores them with the draws
    (:mod:`palsy.model.draws`); this module is under the cache key's code hash, so a change here refits.
    """
    log_share = log_shares(NUMPY, p, r)  # (S, N)
    joint = log_share[:, None, :] + log_rates(NUMPY, p, r)  # (S, C, N)
    top = joint.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(joint - top)  # (S, C, N), largest term 1 per draw and cause
    total = e.sum(axis=-1)  # (S, C)
    log_total = top[..., 0] + np.log(total)
    log_prior = log_total - NUMPY.logsumexp(log_total, axis=-1)[:, None]
    p_sc = e / total[..., None]  # P(stratum | cause)
    p_sk = p_sc[:, np.argmax(r.component_cause, axis=1), :]  # (S, K, N)
    if "omega" in p:  # a form of infiltration carries its weight omega[lineage(stratum), form]
        w = p["omega"].swapaxes(-1, -2) @ r.lineage_of_stratum.T  # (S, form, N)
        forms = np.flatnonzero(r.component_form.sum(axis=1))
        p_sk[:, forms, :] *= w[:, np.argmax(r.component_form[forms], axis=1), :]
    return log_prior, p_sk, np.exp(log_share)


# --- nodes and levels ------------------------------------------------------------------------------

def theta_from_free(ops, free, assembly, shape):
    """theta (..., component, node) from the free node parameters (..., free): a node shared by every
    component repeats its one parameter; a structural zero stays 0 (``assembly``: (K*N, free) 0/1)."""
    return ops.unflat(free @ assembly.T, shape)


def level_logp(ops, theta, st):
    """Log P(level | component) for every item level (..., component, level) from the tree nodes."""
    tree = theta[..., :st.n_tree_nodes]
    return ops.log(tree) @ st.a_success.T + ops.log1p(-tree) @ st.a_failure.T


def group_logp(ops, theta, masks, st):
    """Log P(level group | component) (..., component, group) for 0/1 ``masks`` (group, level)."""
    return ops.log(ops.exp(level_logp(ops, theta, st)) @ masks.T)


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
    """The rate x/n each cohort entry estimates, under its cause or form (..., entry). An entry is
    one of three kinds (0/1 rows of ``d.entry_kind``): a level group of a tree item, P(level | of);
    a set of LP result patterns under the CSF model of :mod:`palsy.model.lp`, P(level | of) (with
    contamination where the entry's population had it); or one node of the CSF model itself.

    With random effects, an entry of a quantity that several studies measure estimates its own
    study's rate: expit(logit(rate) + tau z_study).
    """
    theta = p["theta"]
    members = component_weights(ops, p, d)[..., :, None] * d.entry_members.T  # (..., K, E)
    den = members.sum(axis=-2)
    tree = (ops.exp(group_logp(ops, theta, d.entry_level, d.structure)) * members).sum(axis=-2) \
        / (ops.exp(group_logp(ops, theta, d.entry_of, d.structure)) * members).sum(axis=-2)
    ix = d.lp_index
    kap = theta[..., ix.contamination][..., :, None] * d.entry_kappa  # (..., K, E): contamination where present
    pat = LP.patterns(ops, theta[..., :, None, :], ix, kap)  # (..., K, E, 4)
    lp_rate = ((pat * d.entry_pattern).sum(axis=-1) * members).sum(axis=-2) \
        / ((pat * d.entry_pattern_of).sum(axis=-1) * members).sum(axis=-2)
    node = ((theta @ d.entry_node.T) * members).sum(axis=-2) / den  # (..., E)
    rate = d.entry_kind[:, 0] * tree + d.entry_kind[:, 1] * lp_rate + d.entry_kind[:, 2] * node
    if "re_z" in p:
        rate = expit(ops, logit(ops, rate) + p["tau"][..., None] * (p["re_z"] @ d.re_member.T))
    return rate


def case_theta(ops, p, d):
    """The tree nodes a published case is drawn from (..., component, tree node): the odds of each
    striking feature (``d.sel_mask``) multiplied by exp(gamma), publication's selection (docs/design.md §3)."""
    tree = p["theta"][..., :d.structure.n_tree_nodes]
    if "gamma" not in p:
        return tree
    return expit(ops, logit(ops, tree) + p["gamma"][..., None, None] * d.sel_mask)


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
    tree = case_theta(ops, p, d)
    lv = ops.log(tree) @ d.structure.a_success.T + ops.log1p(-tree) @ d.structure.a_failure.T
    obs = ops.log(ops.exp(lv) @ d.obs_mask.T)  # (..., K, obs)
    per = d.infiltration_select @ (obs @ d.obs_case.T)  # (..., Ki, case)
    if "omega" not in p:
        return per[..., 0, :]
    mask = ops.where(d.case_forms.T > 0, 0.0, -np.inf)  # (Ki, case): the case's stated form
    lw = ops.log(d.case_lineage @ p["omega"]).swapaxes(-1, -2) + mask  # (..., Ki, case)
    lw = lw - ops.logsumexp(lw, axis=-2)[..., None, :]
    return ops.logsumexp(per + lw, axis=-2)

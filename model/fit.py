"""Sampling, diagnostics, provenance and the cache: ``posterior(variant, evidence, ...)``.

NUTS runs through :mod:`palsy.model.nuts` (BlackJAX on JAX by default, nutpie on numba when asked for) on
a model built once per (variant, evidence); refits with other counts or weights change its
``pm.Data``. The fit is stored as netCDF (ArviZ) and as the ``draws.npz`` the answer reads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import __version__, nuts, prior
from palsy.model import cache as C
from palsy.model import design as D
from palsy.model import draws as draws_io
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import rates as R
from palsy.model import registry_fit as RF
from palsy.model import rests_on as RO
from palsy.model.draws import CorruptDraws, Draws
from palsy.model.evidence import Evidence

log = logging.getLogger("palsy")

#: Keys of ``model.yaml`` the answer uses.
ANSWER_SETTINGS = ("unknown_csf_method", "variants", "atypicality", "hallmarks", "scope", "not_modelled", "cause_labels")


@dataclasses.dataclass(frozen=True)
class Posterior:
    """A fitted posterior: the draws, where it is cached, and how the fit went."""

    draws: Draws
    folder: Path | None
    from_cache: bool
    seconds: float

    @property
    def diagnostics(self) -> dict[str, Any]:
        return self.draws.meta["diagnostics"]

    def datatree(self):
        """The full posterior as an ``xarray.DataTree`` (read from the cached netCDF, checked first
        against its SHA-256 sidecar: :class:`~palsy.model.draws.CorruptDraws` if it does not match)."""
        import arviz as az

        path = self.folder / "posterior.nc"
        draws_io.verify(path)
        return az.from_netcdf(path)


def sample(variant: str, evidence: Evidence, settings: C.Settings = C.Settings(), *,
           data: dict[str, np.ndarray] | None = None, weights_one: bool = False,
           progress: Callable[[str], None] | None = None, registry=None):
    """Run NUTS with ``settings.sampler`` (:mod:`palsy.model.nuts`); return (DataTree, Design). ``data``
    replaces counts/weights (a refit: the same model, its ``pm.Data`` changed). ``registry`` (a
    :class:`palsy.model.registry_fit.RegistryInput`) adds a hospital registry's likelihood, and with it the
    rate block to what NUTS samples; another registry of the same padded shapes reuses the compiled sampler.

    ``progress``, when given, is told what the fit is doing (building, sampling); nutpie also draws
    its own progress bar there (the command line passes it on a terminal only, never under ``--json``).
    """
    d = D.build(evidence, evidence.variant(variant), weights_one=weights_one, synthesis=settings.synthesis)
    key = (variant, evidence.hash, settings.synthesis)
    if registry is not None:
        d = dataclasses.replace(d, registry=registry.design(d.structure, d.variant.causes))
        key = (*key, d.registry.signature)
    if progress and not nuts.is_compiled(key, settings.sampler):
        progress(f"building the {variant} model for {settings.sampler} (once per process"
                 + ("; a few minutes on a new machine)" if settings.sampler == "nutpie" else ")"))
    if progress:
        progress(f"sampling {settings.chains} chains x {settings.draws} draws"
                 + (f", each the last of {settings.thin} transitions" if settings.thin > 1 else "")
                 + f" ({settings.tune} tuning steps) "
                 f"with {settings.sampler}")
    updates = dict(d.data()) if weights_one else {}
    updates.update(data or {})
    dt = nuts.run(key, d, settings, updates, progress)
    if updates:
        case_w = np.asarray(updates.pop("case_w", np.full(len(d.case_ids), d.w_case)), float)
        d = dataclasses.replace(d, **updates)
        if case_w.size and np.all(case_w == case_w[0]):  # per-case weights live in the model's data
            d = dataclasses.replace(d, w_case=float(case_w[0]))
    return dt, d


def e_bfmi(dt) -> list[float]:
    """E-BFMI per chain (the energy's Bayesian fraction of missing information; below about 0.3 the momentum
    resampling explores the energy poorly), from every NUTS transition's energy: a thinned fit keeps them as
    ``energy_transitions`` (chain, draw, transition), since the kept draws' energies are not consecutive.
    Empty when the fit recorded no energy."""
    stats = dt["sample_stats"].dataset if "sample_stats" in dt.children else {}
    if "energy_transitions" in stats:
        e = stats["energy_transitions"].transpose("chain", "draw", "transition").values
        e = e.reshape(e.shape[0], -1)
    elif "energy" in stats:
        e = stats["energy"].transpose("chain", "draw").values
    else:
        return []
    return [float(np.sum(np.diff(row) ** 2) / np.sum((row - row.mean()) ** 2)) for row in e]


def diagnostics(dt) -> dict[str, Any]:
    """Max R-hat (rank), min bulk and tail ESS over every free parameter, and divergences."""
    import arviz as az

    names = (*prior.SAMPLED, *(n for n in dt["posterior"].dataset if n.startswith("share_")), *RF.SITE_PARAMETERS[:1],
             *R.RATE_FACTORS)  # the rate block and the site spread are sampled only with a registry
    post = dt["posterior"].to_dataset()[[n for n in names if n in dt["posterior"].dataset]]
    rhat = az.rhat(post, method="rank")
    ess_b = az.ess(post, method="bulk")
    ess_t = az.ess(post, method="tail")
    per = {}
    for name in post.data_vars:
        per[name] = {"r_hat": float(np.nanmax(rhat[name].values)),
                     "ess_bulk": float(np.nanmin(ess_b[name].values)),
                     "ess_tail": float(np.nanmin(ess_t[name].values))}
    div = int(dt["sample_stats"]["diverging"].values.sum())
    out = {
        "r_hat_max": max(p["r_hat"] for p in per.values()),
        "ess_bulk_min": min(p["ess_bulk"] for p in per.values()),
        "ess_tail_min": min(p["ess_tail"] for p in per.values()),
        "divergences": div,
        "per_parameter": per,
    }
    bfmi = e_bfmi(dt)
    out["e_bfmi_min"] = min(bfmi) if bfmi else None  # reported, not part of the bar
    out["ok"] = bool(out["r_hat_max"] <= 1.01 and out["ess_bulk_min"] >= 1000 and div == 0)
    return out


def answer_settings(evidence: Evidence) -> dict[str, Any]:
    """What the answer needs from ``priors/model.yaml`` (stored with the draws: the warm path reads no YAML)."""
    st = evidence.settings
    return {key: st[key] for key in ANSWER_SETTINGS}


def rate_block(d: D.Design, n: int, seed: int) -> dict[str, np.ndarray]:
    """The rate block's draws: exact and independent from its prior (no likelihood informs it)."""
    return R.sample_prior(d.rates, n, np.random.default_rng([seed, 1]))


def predictive_theta(params: dict[str, np.ndarray], d: D.Design, seed: int) -> np.ndarray:
    """The node probabilities for a new setting, the draws the answers use (docs/design.md §3): each free
    node parameter that several studies measure gets a new study effect, expit(logit(theta) + tau
    z_new); theta (draw, component, node) is assembled from them."""
    free = params["theta_free"]
    if "tau" in params and d.re_free_mask.any():
        rng = np.random.default_rng([seed, 2])
        z = rng.normal(size=free.shape)
        new = LK.expit(LK.NUMPY, LK.logit(LK.NUMPY, free) + params["tau"][:, None] * z)
        free = np.where(d.re_free_mask > 0, np.clip(new, 1e-12, 1 - 1e-12), free)
    return d.theta(free)


def lp_profile_ordering(theta: np.ndarray, d: D.Design) -> np.ndarray:
    """Per draw: with the CSF profile of the first LP known before its result, a positive first LP still
    raises (and a negative lowers) P(infiltration), for each profile level and set of methods done,
    without contamination (docs/design.md §4).

    Every LP's result read before its profile has this by construction (:mod:`palsy.model.lp`), and the
    profile after a positive LP says nothing about the cause. With the profile read first, the result's
    reading also depends on how each cause's CSF looks without malignant cells, which no model whose
    CSF profiles differ by cause can order for every level: it is measured (the share of draws where it
    holds, in the fit's metadata and ``palsy check``), not enforced by discarding draws."""
    st, ix = d.structure, d.lp_index
    level_lp = LK.level_logp(LK.NUMPY, theta, st)
    inf = list(d.infiltration_components)
    other = [k for k in range(theta.shape[1]) if k not in inf]
    ok = np.ones(len(theta), bool)
    if not inf or not other:
        return ok
    done_sets = [(m,) for m in ix.methods] + [ix.methods]
    for kap in (0.0,):
        pat = LP.patterns(LK.NUMPY, theta, ix, kap)  # (S, K, 4)
        for done in done_sets:
            p_pos = pat @ LP.positive_mask(done, ix.methods)  # (S, K)
            for level in st.items[st.profile_item("positive")]:
                after_pos = np.exp(level_lp[:, :, st.level_index[(st.profile_item("positive"), level)]])
                after_neg = np.exp(level_lp[:, :, st.level_index[(st.profile_item("negative"), level)]])
                r = p_pos * after_pos / (p_pos * after_pos + (1 - p_pos) * after_neg)  # P(LP1 positive | k, profile)
                ok &= r[:, inf].min(axis=1) >= r[:, other].max(axis=1)
    return ok


def flat_params(dt) -> dict[str, np.ndarray]:
    """Posterior draws with chain and draw flattened into one leading ``sample`` dim."""
    post = dt["posterior"].to_dataset()
    out = {}
    # theta: the (component, node) array assembled from theta_free; the rate block and the site effects are
    # in the posterior only when a registry informed them
    for name in (*prior.SAMPLED, "theta", *R.RATE_FACTORS, *RF.SITE_PARAMETERS,
                 *(n for n in post if n.startswith("share_"))):
        if name in post:
            a = post[name].values
            out[name] = a.reshape(-1, *a.shape[2:])
    return out


def case_loglik(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    """Unweighted log-likelihood of each case per draw (case, sample)."""
    return np.asarray(LK.case_loglik(LK.NUMPY, params, d)).T


#: ``posterior``'s default registry: the one the evidence folder's ``registry.yaml`` names, if any.
FROM_PRIORS = "priors/registry.yaml"


def posterior(variant: str, evidence: Evidence, settings: C.Settings = C.Settings(), *,
              use_cache: bool = True, refresh: bool = False,
              progress: Callable[[str], None] | None = None, registry=FROM_PRIORS) -> Posterior:
    """The posterior of ``variant``: from the cache when valid, otherwise fitted and cached.

    ``registry``: a :class:`palsy.model.registry_fit.RegistryInput` to fit with, None for none, or (the
    default) the one the evidence folder's ``registry.yaml`` names; its hash is part of the cache key.

    Every file of a cache entry is verified before it is trusted (:func:`palsy.model.draws.verify_entry`:
    checksums, and the variant and key the draws record); a corrupt or partial entry (including a
    ``draws.npz`` that is not a file, or another entry's draws copied in) is reported with one warning,
    removed and refitted, and so is a JAX compilation-cache entry that cannot be read back. A cache
    folder that cannot be written is a :class:`~palsy.model.cache.CacheError` raised before sampling; a
    cache write that fails after sampling (a full disk) is a warning naming the path, and the posterior
    is returned uncached (``folder`` None).
    """
    if isinstance(registry, str):
        registry = RF.from_settings(evidence)
    folder = C.folder(evidence.hash, variant, settings, registry.hash if registry is not None else None)
    cached = _cached(folder) if use_cache and not refresh else None
    if cached is not None:
        return cached
    if not use_cache:
        C.clean_jax_cache()
        return _fit(variant, evidence, settings, None, progress, registry)
    C.check_root()
    with C.fitting(folder):  # another process may be fitting the same entry: wait, then read it
        cached = None if refresh else _cached(folder, quiet=True, remove=True)
        if cached is not None:
            return cached
        draws_io.remove_entry(folder)  # a refit (or a corrupt entry): readers wait on the lock meanwhile
        C.clean_jax_cache()
        draws_io.failed_writes.pop(folder, None)
        try:
            fitted = _fit(variant, evidence, settings, folder, progress, registry)
        except BaseException:  # an error, Ctrl-C or SIGTERM: no part of the entry stays
            draws_io.remove_entry(folder)
            raise
        if draws_io.failed_writes.pop(folder, None) is None:
            return fitted
        draws_io.remove_entry(folder)  # what was written of it cannot be used
        return dataclasses.replace(fitted, folder=None)


def _cached(folder: Path, quiet: bool = False, remove: bool = False) -> Posterior | None:
    """The cached posterior in ``folder``, or None. An entry that fails verification is warned about
    (unless ``quiet``: the second look, under the entry's lock) and, with ``remove`` (under the lock: no
    fit of it is being written), removed."""
    if not os.path.lexists(folder / "draws.npz"):
        return None
    try:
        return Posterior(draws_io.verify_entry(folder), folder, True, 0.0)
    except CorruptDraws as exc:
        if not quiet:
            warnings.warn(f"palsy: cached posterior is corrupt, refitting: {exc}", stacklevel=3)
        if remove:
            draws_io.remove_entry(folder)
        return None


def _fit(variant: str, evidence: Evidence, settings: C.Settings, folder: Path | None,
         progress: Callable[[str], None] | None, registry=None) -> Posterior:
    """Sample, add the rate block and the new-setting predictive; measure how often the first LP's ordering
    with its profile holds (no draw is dropped: the orderings hold by construction); record where each
    parameter's information comes from; cache in ``folder`` unless None."""
    use_cache = folder is not None
    t0 = time.perf_counter()
    dt, d = sample(variant, evidence, settings, progress=progress, registry=registry)
    seconds = time.perf_counter() - t0
    params = flat_params(dt)
    # without a registry the rate block has no likelihood: exact draws from its prior
    params.update({k: v for k, v in rate_block(d, len(params["theta"]), settings.seed).items() if k not in params})
    params["theta_new"] = predictive_theta(params, d, settings.seed)
    ordering = lp_profile_ordering(params["theta_new"], d)
    ll = case_loglik(params, d)
    meta = {
        "variant": variant,
        "components": list(d.variant.components),
        "component_causes": list(d.variant.component_causes),
        "causes": list(d.variant.causes),
        "forms": list(d.variant.forms),
        "answer_settings": answer_settings(evidence),
        "evidence_hash": evidence.hash,
        "version": __version__,
        "environment": C.environment(),  # the library versions of the cache key, for provenance
        "settings": dataclasses.asdict(settings),
        "w_case": d.w_case,
        "rate_block": "drawn from its prior (no likelihood informs it)" if registry is None else
                      "sampled by NUTS, informed by the hospital registry's likelihood",
        "registry": (RF.report(registry, params, d.rates, d.variant.causes, settings.seed)
                     if registry is not None else {"used": False}),
        "dropped_draws": 0,  # the orderings hold by construction (model/lp.py): no draw is discarded
        "lp_profile_ordering": {"holds_share": float(ordering.mean()), "draws": int(len(ordering)),
                                "what": "share of draws in which, with the first LP's CSF profile known before its "
                                        "result, a positive result still raises P(infiltration) for every profile "
                                        "level and method, without contamination (docs/design.md §4)"},
        "schema": evidence.schema.to_json(),
        "random_effect_quantities": list(d.re_groups),
        "case_ids": list(d.case_ids),
        "case_aliases": [list(c.also_known_as) for c in evidence.cases],
        "diagnostics": diagnostics(dt),
        "fit_seconds": seconds,
        # where each parameter's information comes from (judgment or data), so that every answer can say
        # what it rests on without reading priors/ (model/rests_on.py)
        "rests_on": RO.provenance(evidence, d),
    }
    dr = Draws(params, meta, d.w_case * ll, draws_io.rate_arrays_to_dict(d.rates))
    if use_cache:
        _store(folder, dt, dr, ll, d)  # the netCDF keeps every kept draw (and every transition's energy)
    if use_cache:
        draws_io.save(folder / "draws.npz", dr)
    return Posterior(dr, folder if use_cache else None, False, seconds)


def _store(folder: Path, dt, dr: Draws, ll: np.ndarray, d: D.Design) -> None:
    """Write the netCDF (posterior, sample_stats, log_likelihood, log_prior): :func:`_write_netcdf`."""
    import xarray as xr

    chains, n = dt["posterior"].dataset.sizes["chain"], dt["posterior"].dataset.sizes["draw"]
    cases = dr.meta["case_ids"]
    shape = (len(cases), chains, n)
    dt["log_likelihood"] = xr.Dataset({
        "cases": (("chain", "draw", "case"), ll.reshape(shape).transpose(1, 2, 0)),
        "cases_weighted": (("chain", "draw", "case"), (dr.case_loglik).reshape(shape).transpose(1, 2, 0)),
    }, coords={"chain": np.arange(chains), "draw": np.arange(n), "case": cases})
    post = dt["posterior"].dataset
    extra = {name: ([*("chain", "draw"), *(f"{name}_dim_{j}" for j in range(dr.params[name].ndim - 1))],
                    dr.params[name].reshape(chains, n, *dr.params[name].shape[1:]))
             for name in (*R.rate_parameters(d.rates.context), "theta_new")}
    dt["posterior"] = post.assign(**extra)
    post = dt["posterior"].dataset
    lp = {}
    for name, a in prior.log_density(dr.params, d).items():
        a = a.reshape(chains, n, *a.shape[1:])
        dims = list(post[name].dims) if a.shape == post[name].shape else \
            ["chain", "draw", *list(post[name].dims[2:2 + a.ndim - 2])]
        lp[name] = (dims, a)
    dt["log_prior"] = xr.Dataset(lp, coords={"chain": np.arange(chains), "draw": np.arange(n)})
    for group in list(dt.children):
        if group.startswith("warmup"):
            del dt[group]
    _write_netcdf(folder, dt)


def _write_netcdf(folder: Path, dt) -> None:
    """``posterior.nc`` and its checksum. The netCDF is made in memory and written as bytes, so a disk that
    fails mid-write meets Python's file writing, never HDF5's (a failed HDF5 write left the library in a
    state that crashed the process at exit, issue 21); a failure is warned about and recorded
    (:func:`palsy.model.draws.cache_write_failed`), and the rest of the entry is not written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        draws_io.clean_stale(folder)  # temporary files of writes that were killed
        data = dt.to_netcdf(None, engine="h5netcdf")
        # draws.npz (with its checksum) is written last: it is what marks the entry complete
        draws_io.write_bytes(folder / "posterior.nc", data)
        draws_io.write_checksum(folder / "posterior.nc")
    except OSError as exc:
        draws_io.cache_write_failed(folder, exc if exc.filename else
                                    OSError(exc.errno, exc.strerror or str(exc), str(folder / "posterior.nc")))

"""The rate model of ``priors/rates.yaml`` (DESIGN §3): validation and its constant arrays.

``parse(doc, causes, refs, err)`` checks the file and returns a :class:`RateSpec`;
``arrays(spec, variant)`` turns it into the numeric arrays the likelihood uses
(:func:`palsy.model.likelihood.cause_strata`). A cause's rate in stratum s is the product of its
``factors`` and of its ``multipliers`` for the levels of s: each is a log-normal (free), a Beta
(free) or a fixed ``value``. Nothing numeric about the clinical world is written here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from palsy.model import structure as S
from palsy.model.safe_yaml import brief

Z90 = 1.6448536269514722  # standard normal 95% quantile: a 90% interval is median */ factor90
SHARE_BLOCKS = ("lineage", "remission", "age_group", "recent_vincristine", "recent_hsct")
TARGETS = ("cumulative_relapse", "cumulative_palsy", "cause_share")


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclasses.dataclass(frozen=True)
class Factor:
    """One free or fixed factor of a cause's rate, and the strata it multiplies."""

    name: str  # "cause: factor" or "cause: finding=level"
    cause: str
    kind: str  # lognormal | beta | value
    params: tuple[float, ...]  # (mu, sigma) | (a, b) | (value,)
    strata: np.ndarray  # (stratum,) 0/1


@dataclasses.dataclass(frozen=True)
class RateSpec:
    """The validated content of ``rates.yaml``."""

    causes: tuple[str, ...]
    factors: tuple[Factor, ...]
    lineage_alpha: np.ndarray  # (lineage,)
    remission_alpha: np.ndarray  # (lineage, remission)
    adult_ab: np.ndarray  # (lineage, 2)
    vincristine_ab: np.ndarray  # (lineage, remission, 2)
    hsct_ab: np.ndarray  # (lineage, remission, 2)
    window_years: np.ndarray  # (lineage,)
    targets: dict[str, Any]
    doc: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RateArrays:
    """Constant arrays of the rate model for one variant (see :mod:`palsy.model.likelihood`)."""

    n_causes: int
    lognormal_names: tuple[str, ...]
    lognormal_mu: np.ndarray
    lognormal_sigma: np.ndarray
    lognormal_incidence: np.ndarray  # (lognormal, cause * stratum)
    beta_names: tuple[str, ...]
    beta_a: np.ndarray
    beta_b: np.ndarray
    beta_incidence: np.ndarray  # (beta, cause * stratum)
    fixed_log: np.ndarray  # (cause * stratum,)
    component_cause: np.ndarray  # (component, cause) 0/1
    component_form: np.ndarray  # (component, form) 0/1
    lineage_of_stratum: np.ndarray  # (stratum, lineage) 0/1
    # priors of the patient-time shares
    lineage_alpha: np.ndarray  # (lineage,) Dirichlet
    remission_alpha: np.ndarray  # (lineage, remission) Dirichlet per lineage
    adult_ab: np.ndarray  # (lineage, 2) Beta of P(adult)
    vincristine_ab: np.ndarray  # (lineage, remission, 2) Beta of P(recent vincristine)
    hsct_ab: np.ndarray  # (lineage, remission, 2) Beta of P(recent HSCT)


def arrays(spec: RateSpec, components: tuple[str, ...], component_causes: tuple[str, ...],
           forms: tuple[str, ...]) -> RateArrays:
    """The arrays of ``spec`` for a variant's components (each with its cause; forms by name)."""
    C, N = len(spec.causes), S.N_STRATA

    def incidence(f: Factor) -> np.ndarray:
        row = np.zeros((C, N))
        row[spec.causes.index(f.cause)] = f.strata
        return row.ravel()

    ln = [f for f in spec.factors if f.kind == "lognormal"]
    be = [f for f in spec.factors if f.kind == "beta"]
    fixed = np.zeros(C * N)
    for f in spec.factors:
        if f.kind == "value":
            fixed += math.log(f.params[0]) * incidence(f)
    cc = np.array([[1.0 if c == cause else 0.0 for cause in spec.causes] for c in component_causes]).reshape(-1, C)
    cf = np.array([[1.0 if k == form else 0.0 for form in forms] for k in components]).reshape(len(components), len(forms))
    return RateArrays(
        n_causes=C,
        lognormal_names=tuple(f.name for f in ln),
        lognormal_mu=np.array([f.params[0] for f in ln]), lognormal_sigma=np.array([f.params[1] for f in ln]),
        lognormal_incidence=np.array([incidence(f) for f in ln]).reshape(len(ln), C * N),
        beta_names=tuple(f.name for f in be),
        beta_a=np.array([f.params[0] for f in be]), beta_b=np.array([f.params[1] for f in be]),
        beta_incidence=np.array([incidence(f) for f in be]).reshape(len(be), C * N),
        fixed_log=fixed, component_cause=cc, component_form=cf,
        lineage_of_stratum=S.level_indicator("lineage"),
        lineage_alpha=spec.lineage_alpha, remission_alpha=spec.remission_alpha, adult_ab=spec.adult_ab,
        vincristine_ab=spec.vincristine_ab, hsct_ab=spec.hsct_ab,
    )


#: The rate block's parameters: no likelihood informs them, so they are drawn from their priors.
RATE_PARAMETERS = ("share_lineage", "share_remission", "share_adult", "share_vincristine", "share_hsct",
                   "rate_lognormal", "rate_beta")


def sample_prior(r: RateArrays, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` independent draws of the rate block (shares and rate factors) from its priors."""
    out = {
        "share_lineage": rng.dirichlet(r.lineage_alpha, n),
        "share_remission": np.stack([rng.dirichlet(a, n) for a in r.remission_alpha], axis=1),
        "share_adult": rng.beta(r.adult_ab[:, 0], r.adult_ab[:, 1], size=(n, len(r.adult_ab))),
        "share_vincristine": rng.beta(r.vincristine_ab[..., 0], r.vincristine_ab[..., 1],
                                      size=(n, *r.vincristine_ab.shape[:-1])),
        "share_hsct": rng.beta(r.hsct_ab[..., 0], r.hsct_ab[..., 1], size=(n, *r.hsct_ab.shape[:-1])),
        "rate_lognormal": np.exp(rng.normal(r.lognormal_mu, r.lognormal_sigma, (n, len(r.lognormal_mu)))),
        "rate_beta": rng.beta(r.beta_a, r.beta_b, size=(n, len(r.beta_a))),
    }
    # keep Beta draws strictly inside (0, 1): log(0) would poison every downstream sum
    for name in ("share_adult", "share_vincristine", "share_hsct", "rate_beta"):
        out[name] = np.clip(out[name], 1e-12, 1 - 1e-12)
    return out


Err = Callable[[str, str, str], None]


def parse(doc: Any, causes: tuple[str, ...], refs: dict[str, Any], err: Err) -> RateSpec | None:
    """Validate ``rates.yaml`` (``doc``); report each problem through ``err(entry, field, message)``."""
    if not isinstance(doc, dict):
        err("-", "-", "must be a mapping with window_years, reference, shares, rates, targets")
        return None
    for block in ("window_years", "reference", "shares", "rates", "targets"):
        if block not in doc:
            err(block, "-", "missing block")
    if any(b not in doc for b in ("window_years", "reference", "shares", "rates", "targets")):
        return None
    p = _Parser(refs, err)
    ref_levels = p.reference("reference", doc["reference"], full=True)
    shares = p.shares(doc["shares"])
    windows = p.windows(doc["window_years"])
    rates = doc["rates"]
    factors: list[Factor] = []
    if not isinstance(rates, dict) or set(rates) != set(causes):
        err("rates", "-", f"give one block for each cause of model.yaml: {', '.join(causes)} "
                          f"(got {', '.join(map(brief, rates)) if isinstance(rates, dict) else brief(rates)})")
    else:
        for cause in causes:
            factors += p.cause(cause, rates[cause], ref_levels)
    p.targets(doc["targets"], causes)
    if p.failed or shares is None or windows is None:
        return None
    return RateSpec(tuple(causes), tuple(factors), *shares, windows, doc["targets"], doc)


class _Parser:
    def __init__(self, refs: dict[str, Any], err: Err) -> None:
        self.refs = refs
        self._err = err
        self.failed = False

    def err(self, entry: str, field: str, msg: str) -> None:
        self.failed = True
        self._err(entry, field, msg)

    def sourced(self, name: str, b: dict) -> None:
        """A block needs a reference key or, for expert judgment, its reasoning."""
        ref = b.get("ref")
        keys = [] if ref is None else [ref] if isinstance(ref, str) else ref
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            self.err(name, "ref", f"{brief(ref)} must be a key or a list of keys of references.yaml")
            return
        if not keys and not b.get("reasoning"):  # no reference (null or an empty list) and no reasoning
            self.err(name, "ref", "give a reference key or, for expert judgment, its reasoning")
            return
        for k in keys:
            if k not in self.refs:
                self.err(name, "ref", f"{brief(k)} is not a key of references.yaml")
        if b.get("kind") == "expert_judgment" and not b.get("reasoning"):
            self.err(name, "reasoning", "expert judgment needs its reasoning")

    def beta(self, name: str, b: Any) -> tuple[float, float] | None:
        if not (isinstance(b, dict) and _is_num(b.get("a")) and _is_num(b.get("b")) and b["a"] > 0 and b["b"] > 0):
            self.err(name, "beta", f"{brief(b)}: give {{a: > 0, b: > 0}}")
            return None
        return float(b["a"]), float(b["b"])

    def reference(self, name: str, ref: Any, full: bool) -> dict[str, str]:
        if not isinstance(ref, dict):
            self.err(name, "-", f"{brief(ref)}: give a level for each context finding")
            return {}
        out = {}
        for finding, value in ref.items():
            value = _yes_no(value)
            if finding not in S.CONTEXT:
                self.err(name, str(finding), f"not a context finding; allowed: {', '.join(S.CONTEXT)}")
            elif value not in S.CONTEXT_LEVELS[finding]:
                self.err(name, finding, f"{brief(value)}; allowed: {', '.join(S.CONTEXT_LEVELS[finding])}")
            else:
                out[finding] = value
        if full and set(out) != set(S.CONTEXT):
            self.err(name, "-", f"give a reference level for each of {', '.join(S.CONTEXT)}")
        return out

    def windows(self, doc: Any) -> np.ndarray | None:
        if not isinstance(doc, dict):
            self.err("window_years", "-", "give {value, reasoning} for each lineage")
            return None
        out = []
        for lin in S.LINEAGES:
            b = doc.get(lin)
            if not (isinstance(b, dict) and _is_num(b.get("value")) and b["value"] > 0):
                self.err(f"window_years.{lin}", "value", f"{brief(b)}: give {{value: years > 0, reasoning}}")
                out.append(1.0)
                continue
            self.sourced(f"window_years.{lin}", b)
            out.append(float(b["value"]))
        return np.array(out)

    def shares(self, doc: Any):
        if not isinstance(doc, dict) or set(doc) != set(SHARE_BLOCKS):
            self.err("shares", "-", f"give exactly the blocks {', '.join(SHARE_BLOCKS)}")
            return None
        lin = doc["lineage"]
        counts = lin.get("counts") if isinstance(lin, dict) else None
        lineage_alpha = np.ones(len(S.LINEAGES))
        if not (isinstance(counts, dict) and set(counts) == set(S.LINEAGES)
                and all(_is_num(v) and v >= 0 for v in counts.values())):
            self.err("shares.lineage", "counts", f"{brief(counts)}: give counts >= 0 for {', '.join(S.LINEAGES)}")
        elif not (_is_num(lin.get("weight")) and 0 < lin["weight"] <= 1):
            self.err("shares.lineage", "weight", f"{brief(lin.get('weight'))} is not in (0, 1]")
        else:
            lineage_alpha = np.array([1.0 + lin["weight"] * counts[lv] for lv in S.LINEAGES])
            self.sourced("shares.lineage", lin)
        remission = np.ones((len(S.LINEAGES), len(S.REMISSIONS)))
        adult = np.ones((len(S.LINEAGES), 2))
        vin = np.ones((len(S.LINEAGES), len(S.REMISSIONS), 2))
        hsct = np.ones((len(S.LINEAGES), len(S.REMISSIONS), 2))
        for i, lv in enumerate(S.LINEAGES):
            name = f"shares.remission.{lv}"
            b = doc["remission"].get(lv) if isinstance(doc["remission"], dict) else None
            mean = b.get("mean") if isinstance(b, dict) else None
            if not (isinstance(mean, dict) and set(mean) == set(S.REMISSIONS)
                    and all(_is_num(v) and v > 0 for v in mean.values()) and abs(sum(mean.values()) - 1) < 1e-6):
                self.err(name, "mean", f"{brief(mean)}: give shares > 0 summing to 1 for {', '.join(S.REMISSIONS)}")
            elif not (_is_num(b.get("concentration")) and b["concentration"] > 0):
                self.err(name, "concentration", f"{brief(b.get('concentration'))} must be > 0")
            else:
                remission[i] = [b["concentration"] * mean[r] for r in S.REMISSIONS]
                self.sourced(name, b)
            name = f"shares.age_group.{lv}"
            b = doc["age_group"].get(lv) if isinstance(doc["age_group"], dict) else None
            ab = self.beta(name, b.get("adult") if isinstance(b, dict) else b)
            if ab:
                adult[i] = ab
                self.sourced(name, b)
            for block, arr in (("recent_vincristine", vin), ("recent_hsct", hsct)):
                name = f"shares.{block}.{lv}"
                b = doc[block].get(lv) if isinstance(doc[block], dict) else None
                if not isinstance(b, dict):
                    self.err(name, "-", f"give a Beta {{a, b}} of P(yes) for each of {', '.join(S.REMISSIONS)}")
                    continue
                for j, r in enumerate(S.REMISSIONS):
                    ab = self.beta(f"{name}.{r}", b.get(r))
                    if ab:
                        arr[i, j] = ab
                self.sourced(name, b)
        return lineage_alpha, remission, adult, vin, hsct

    def cause(self, cause: str, b: Any, global_ref: dict[str, str]) -> list[Factor]:
        name = f"rates.{cause}"
        if not isinstance(b, dict):
            self.err(name, "-", "give factors (and multipliers, reference where needed)")
            return []
        for key in set(b) - {"factors", "multipliers", "reference", "reasoning", "ref"}:
            self.err(name, str(key), "unknown field; allowed: factors, multipliers, reference, reasoning, ref")
        ref = {**global_ref, **self.reference(f"{name}.reference", b.get("reference") or {}, full=False)}
        out = []
        factors = b.get("factors")
        if not isinstance(factors, dict) or not factors:
            self.err(name, "factors", "give at least one factor (the rate at the reference levels)")
            factors = {}
        for fname, fb in factors.items():
            f = self.factor(f"{name}.factors.{fname}", f"{cause}: {fname}", cause, fb, np.ones(S.N_STRATA))
            if f:
                out.append(f)
        mult = b.get("multipliers") or {}
        if not isinstance(mult, dict):
            self.err(name, "multipliers", "give a mapping finding -> level -> multiplier")
            mult = {}
        for finding, levels in mult.items():
            if finding not in S.CONTEXT:
                self.err(f"{name}.multipliers", str(finding), f"not a context finding; allowed: {', '.join(S.CONTEXT)}")
                continue
            if not isinstance(levels, dict):
                self.err(f"{name}.multipliers.{finding}", "-", "give a mapping level -> multiplier")
                continue
            for level, mb in levels.items():
                level = _yes_no(level)
                where = f"{name}.multipliers.{finding}.{level}"
                if level not in S.CONTEXT_LEVELS[finding]:
                    self.err(where, "-", f"{brief(level)} is not a level of {finding}; allowed: {', '.join(S.CONTEXT_LEVELS[finding])}")
                    continue
                if level == ref.get(finding):
                    self.err(where, "-", f"{brief(level)} is the reference level of {finding} for {cause} (multiplier 1)")
                    continue
                strata = S.stratum_mask({finding: level})
                f = self.factor(where, f"{cause}: {finding}={level}", cause, mb, strata, allow_beta=False)
                if f:
                    out.append(f)
        return out

    def factor(self, where: str, name: str, cause: str, b: Any, strata: np.ndarray,
               allow_beta: bool = True) -> Factor | None:
        if not isinstance(b, dict):
            self.err(where, "-", "give lognormal: {median, factor90}, beta: {a, b} or value: x, with ref or reasoning")
            return None
        kinds = [k for k in ("lognormal", "beta", "value") if k in b]
        if len(kinds) != 1 or (kinds[0] == "beta" and not allow_beta):
            allowed = "lognormal or value" if not allow_beta else "lognormal, beta or value"
            self.err(where, "-", f"give exactly one of {allowed}")
            return None
        self.sourced(where, b)
        kind = kinds[0]
        if kind == "lognormal":
            ln = b["lognormal"]
            if not (isinstance(ln, dict) and _is_num(ln.get("median")) and ln["median"] > 0
                    and _is_num(ln.get("factor90")) and ln["factor90"] > 1):
                self.err(where, "lognormal", f"{brief(ln)}: give {{median: > 0, factor90: > 1}}")
                return None
            return Factor(name, cause, kind, (math.log(ln["median"]), math.log(ln["factor90"]) / Z90), strata)
        if kind == "beta":
            ab = self.beta(where, b["beta"])
            return Factor(name, cause, kind, ab, strata) if ab else None
        if not (_is_num(b["value"]) and b["value"] > 0):
            self.err(where, "value", f"{brief(b['value'])} must be a number > 0 (a leak, not an exact zero)")
            return None
        return Factor(name, cause, kind, (float(b["value"]),), strata)

    def targets(self, doc: Any, causes: tuple[str, ...]) -> None:
        if not isinstance(doc, dict):
            self.err("targets", "-", f"give {', '.join(TARGETS)}")
            return
        for t in TARGETS:
            block = doc.get(t)
            if not isinstance(block, dict):
                self.err(f"targets.{t}", "-", "missing")
                continue
            keys = causes if t == "cause_share" else S.LINEAGES[:3]
            if t != "cause_share" and block.get("cause") not in causes:
                self.err(f"targets.{t}", "cause", f"{brief(block.get('cause'))}; allowed: {', '.join(causes)}")
            for k in keys:
                b = block.get(k)
                rng = b.get("range") if isinstance(b, dict) else None
                if not (isinstance(rng, list) and len(rng) == 2 and all(_is_num(x) for x in rng) and 0 <= rng[0] < rng[1] <= 1):
                    self.err(f"targets.{t}.{k}", "range", f"{brief(rng)}: give [low, high] with 0 <= low < high <= 1")
                    continue
                self.sourced(f"targets.{t}.{k}", b)


def _yes_no(value: Any) -> Any:
    """YAML reads unquoted yes/no as booleans: the rate file's yes/no levels are read back."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


# --- implied quantities (numpy over prior or posterior draws) --------------------------------------

def factor_log_rate(p: dict[str, np.ndarray], r: RateArrays, names: tuple[str, ...]) -> np.ndarray:
    """Sum over the named free factors of log(factor) x its incidence (..., cause, stratum)."""
    out = np.zeros((*p["share_lineage"].shape[:-1], r.n_causes * S.N_STRATA))
    for key, names_all, inc in (("rate_lognormal", r.lognormal_names, r.lognormal_incidence),
                                ("rate_beta", r.beta_names, r.beta_incidence)):
        for j, n in enumerate(names_all):
            if n in names:
                out = out + np.log(p[key][..., j])[..., None] * inc[j]
    return out.reshape(*out.shape[:-1], r.n_causes, S.N_STRATA)

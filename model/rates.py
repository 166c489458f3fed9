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
TARGETS = ("cumulative_relapse", "cumulative_palsy", "cause_share")
#: Keys that say where a number comes from; allowed at any level of a share block.
SOURCE_KEYS = ("kind", "ref", "reasoning", "where", "notes")
#: The rate model's free parameters besides the shares (``share_<finding>``, one per context finding).
RATE_FACTORS = ("rate_lognormal", "rate_beta")


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def share_name(finding: str) -> str:
    """The parameter of a context finding's patient-time share (``share_remission``)."""
    return f"share_{finding}"


def rate_parameters(context: tuple[str, ...]) -> tuple[str, ...]:
    """The rate block's parameters: every context finding's share and the rate factors. No likelihood
    informs them, so they are drawn from their priors."""
    return (*(share_name(f) for f in context), *RATE_FACTORS)


@dataclasses.dataclass(frozen=True)
class Factor:
    """One free or fixed factor of a cause's rate, and the strata it multiplies."""

    name: str  # "cause: factor" or "cause: finding=level"
    cause: str
    kind: str  # lognormal | beta | value
    params: tuple[float, ...]  # (mu, sigma, lower) | (a, b) | (value,)
    strata: np.ndarray  # (stratum,) 0/1


@dataclasses.dataclass(frozen=True)
class ShareSpec:
    """The patient-time share of one context finding given its parents: a Dirichlet per parent cell."""

    given: tuple[str, ...]
    alpha: np.ndarray  # (*parent levels, levels)


@dataclasses.dataclass(frozen=True)
class RateSpec:
    """The validated content of ``rates.yaml``."""

    causes: tuple[str, ...]
    factors: tuple[Factor, ...]
    shares: dict[str, ShareSpec]
    window_years: np.ndarray  # (lineage,)
    targets: dict[str, Any]
    doc: dict[str, Any]
    structure: S.Structure


@dataclasses.dataclass(frozen=True)
class RateArrays:
    """Constant arrays of the rate model for one variant (see :mod:`palsy.model.likelihood`)."""

    n_causes: int
    context: tuple[str, ...]  # the context findings, the strata's axes in order
    strata_shape: np.ndarray  # (axis,) levels per context finding
    lognormal_names: tuple[str, ...]
    lognormal_mu: np.ndarray
    lognormal_sigma: np.ndarray
    lognormal_lower: np.ndarray  # a lower bound on the factor (0: none), e.g. 1 for "never lowers"
    lognormal_incidence: np.ndarray  # (lognormal, cause * stratum)
    beta_names: tuple[str, ...]
    beta_a: np.ndarray
    beta_b: np.ndarray
    beta_incidence: np.ndarray  # (beta, cause * stratum)
    fixed_log: np.ndarray  # (cause * stratum,)
    component_cause: np.ndarray  # (component, cause) 0/1
    component_form: np.ndarray  # (component, form) 0/1
    lineage_of_stratum: np.ndarray  # (stratum, lineage) 0/1
    share_alpha: dict[str, np.ndarray]  # context finding -> Dirichlet (*parent levels, levels)
    share_axes: dict[str, np.ndarray]  # context finding -> its parents' axes then its own

    @property
    def n_strata(self) -> int:
        return int(np.prod(self.strata_shape))


def arrays(spec: RateSpec, components: tuple[str, ...], component_causes: tuple[str, ...],
           forms: tuple[str, ...]) -> RateArrays:
    """The arrays of ``spec`` for a variant's components (each with its cause; forms by name)."""
    st = spec.structure
    C, N = len(spec.causes), st.n_strata

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
        n_causes=C, context=st.context, strata_shape=np.array(st.strata_shape),
        lognormal_names=tuple(f.name for f in ln),
        lognormal_mu=np.array([f.params[0] for f in ln]), lognormal_sigma=np.array([f.params[1] for f in ln]),
        lognormal_lower=np.array([f.params[2] for f in ln]),
        lognormal_incidence=np.array([incidence(f) for f in ln]).reshape(len(ln), C * N),
        beta_names=tuple(f.name for f in be),
        beta_a=np.array([f.params[0] for f in be]), beta_b=np.array([f.params[1] for f in be]),
        beta_incidence=np.array([incidence(f) for f in be]).reshape(len(be), C * N),
        fixed_log=fixed, component_cause=cc, component_form=cf,
        lineage_of_stratum=st.level_indicator("lineage"),
        share_alpha={f: spec.shares[f].alpha for f in st.context},
        share_axes={f: np.array([st.context.index(g) for g in (*spec.shares[f].given, f)]) for f in st.context},
    )


def _lognormal(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray, lower: np.ndarray, n: int) -> np.ndarray:
    """Log-normal draws, truncated below at ``lower`` (0: not truncated), exactly (inverse CDF)."""
    z = rng.normal(mu, sigma, (n, len(mu)))
    cut = lower > 0
    if cut.any():
        from scipy.special import ndtr, ndtri  # fit time only: the answer path never samples the prior

        a = ndtr((np.log(np.where(cut, lower, 1.0)) - mu) / sigma)
        u = a + (1 - a) * rng.random((n, len(mu)))
        z = np.where(cut, mu + sigma * ndtri(np.clip(u, 1e-300, 1 - 1e-16)), z)
    return np.exp(z)


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of a Dirichlet per cell of ``alpha``'s leading axes (its last axis the categories)."""
    g = rng.standard_gamma(alpha, size=(n, *alpha.shape))
    g = np.maximum(g, 1e-300)
    return np.clip(g / g.sum(axis=-1, keepdims=True), 1e-12, 1.0)


def sample_prior(r: RateArrays, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` independent draws of the rate block (shares and rate factors) from its priors."""
    out = {share_name(f): _dirichlet(rng, r.share_alpha[f], n) for f in r.context}
    out["rate_lognormal"] = _lognormal(rng, r.lognormal_mu, r.lognormal_sigma, r.lognormal_lower, n)
    # keep Beta draws strictly inside (0, 1): log(0) would poison every downstream sum
    out["rate_beta"] = np.clip(rng.beta(r.beta_a, r.beta_b, size=(n, len(r.beta_a))), 1e-12, 1 - 1e-12)
    return out


Err = Callable[[str, str, str], None]


def parse(doc: Any, causes: tuple[str, ...], refs: dict[str, Any], err: Err, structure: S.Structure) -> RateSpec | None:
    """Validate ``rates.yaml`` (``doc``); report each problem through ``err(entry, field, message)``."""
    if not isinstance(doc, dict):
        err("-", "-", "must be a mapping with window_years, reference, shares, rates, targets")
        return None
    for block in ("window_years", "reference", "shares", "rates", "targets"):
        if block not in doc:
            err(block, "-", "missing block")
    if any(b not in doc for b in ("window_years", "reference", "shares", "rates", "targets")):
        return None
    p = _Parser(refs, err, structure)
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
    return RateSpec(tuple(causes), tuple(factors), shares, windows, doc["targets"], doc, structure)


class _Parser:
    def __init__(self, refs: dict[str, Any], err: Err, structure: S.Structure) -> None:
        self.refs = refs
        self._err = err
        self.st = structure
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
            if finding not in self.st.context:
                self.err(name, str(finding), f"not a context finding; allowed: {', '.join(self.st.context)}")
            elif value not in self.st.context_levels[finding]:
                self.err(name, finding, f"{brief(value)}; allowed: {', '.join(self.st.context_levels[finding])}")
            else:
                out[finding] = value
        if full and set(out) != set(self.st.context):
            self.err(name, "-", f"give a reference level for each of {', '.join(self.st.context)}")
        return out

    def windows(self, doc: Any) -> np.ndarray | None:
        if not isinstance(doc, dict):
            self.err("window_years", "-", "give {value, reasoning} for each lineage")
            return None
        out = []
        for lin in self.st.levels_of("lineage"):
            b = doc.get(lin)
            if not (isinstance(b, dict) and _is_num(b.get("value")) and b["value"] > 0):
                self.err(f"window_years.{lin}", "value", f"{brief(b)}: give {{value: years > 0, reasoning}}")
                out.append(1.0)
                continue
            self.sourced(f"window_years.{lin}", b)
            out.append(float(b["value"]))
        return np.array(out)

    # -- shares -----------------------------------------------------------------------------------
    def shares(self, doc: Any) -> dict[str, ShareSpec] | None:
        """One block per context finding: ``given`` (its parents, earlier context findings) and, nested
        by the parents' levels, a leaf per parent cell (see :meth:`_leaf`)."""
        ctx = self.st.context
        if not isinstance(doc, dict) or set(doc) != set(ctx):
            got = ", ".join(map(str, doc)) if isinstance(doc, dict) else brief(doc)
            self.err("shares", "-", f"give exactly one block per context finding of schema.yaml: {', '.join(ctx)} (got {got})")
            return None
        out = {}
        for f in ctx:
            b = doc[f]
            name = f"shares.{f}"
            if not isinstance(b, dict):
                self.err(name, "-", "give `given` and the shares")
                continue
            given = b.get("given", [])
            if not (isinstance(given, list) and all(g in ctx[:ctx.index(f)] for g in given) and len(set(given)) == len(given)):
                self.err(name, "given", f"{brief(given)}: give a list of context findings listed before {f} "
                                        f"({', '.join(ctx[:ctx.index(f)]) or 'none'})")
                continue
            given = [g for g in ctx if g in given]  # in the strata's order
            shape = (*(len(self.st.context_levels[g]) for g in given), len(self.st.context_levels[f]))
            alpha = np.ones(shape)
            body = {k: v for k, v in b.items() if k != "given"}
            self._cells(name, f, given, body, alpha, (), sourced=False)
            out[f] = ShareSpec(tuple(given), alpha)
        return out

    def _cells(self, name: str, finding: str, given: list[str], node: Any, alpha: np.ndarray,
               index: tuple[int, ...], sourced: bool) -> None:
        if not isinstance(node, dict):
            self.err(name, "-", f"{brief(node)}: give a mapping")
            return
        sourced = sourced or any(k in node for k in ("ref", "reasoning"))
        if any(k in node for k in ("ref", "reasoning", "kind")):
            self.sourced(name, node)
        if not given:
            leaf = {k: v for k, v in node.items() if k not in SOURCE_KEYS}
            a = self._leaf(name, finding, leaf)
            if a is not None:
                alpha[index] = a
            if not sourced:
                self.err(name, "ref", "give a reference key or, for expert judgment, its reasoning")
            return
        parent, rest = given[0], given[1:]
        levels = self.st.context_levels[parent]
        keys = {_yes_no(k): v for k, v in node.items() if k not in SOURCE_KEYS}
        if set(keys) != set(levels):
            self.err(name, "-", f"give one entry for each level of {parent}: {', '.join(levels)} "
                                f"(got {', '.join(map(str, keys)) or 'none'})")
            return
        for i, lv in enumerate(levels):
            self._cells(f"{name}.{lv}", finding, rest, keys[lv], alpha, (*index, i), sourced)

    def _leaf(self, name: str, finding: str, leaf: dict) -> np.ndarray | None:
        """A Dirichlet over the finding's levels: ``{counts: {level: n}, weight: w}`` (1 + w n),
        ``{mean: {level: share}, concentration: c}`` (c x mean), or for two levels a Beta of the
        second level's share, ``{a, b}`` or ``{LEVEL: {a, b}}``."""
        levels = self.st.context_levels[finding]
        if "counts" in leaf:
            counts, w = leaf.get("counts"), leaf.get("weight")
            if not (isinstance(counts, dict) and set(map(_yes_no, counts)) == set(levels)
                    and all(_is_num(v) and v >= 0 for v in counts.values())):
                self.err(name, "counts", f"{brief(counts)}: give counts >= 0 for {', '.join(levels)}")
                return None
            if not (_is_num(w) and 0 < w <= 1):
                self.err(name, "weight", f"{brief(w)} is not in (0, 1]")
                return None
            counts = {_yes_no(k): v for k, v in counts.items()}
            return np.array([1.0 + w * counts[lv] for lv in levels])
        if "mean" in leaf:
            mean, c = leaf.get("mean"), leaf.get("concentration")
            if not (isinstance(mean, dict) and set(map(_yes_no, mean)) == set(levels)
                    and all(_is_num(v) and v > 0 for v in mean.values()) and abs(sum(mean.values()) - 1) < 1e-6):
                self.err(name, "mean", f"{brief(mean)}: give shares > 0 summing to 1 for {', '.join(levels)}")
                return None
            if not (_is_num(c) and c > 0):
                self.err(name, "concentration", f"{brief(c)} must be > 0")
                return None
            mean = {_yes_no(k): v for k, v in mean.items()}
            return np.array([c * mean[lv] for lv in levels])
        if len(levels) != 2:
            self.err(name, "-", f"give counts+weight or mean+concentration over {', '.join(levels)}")
            return None
        named = {_yes_no(k): v for k, v in leaf.items()}
        if len(named) == 1 and next(iter(named)) in levels:
            lv, ab_doc = next(iter(named.items()))
            ab = self.beta(f"{name}.{lv}", ab_doc)
            if ab is None:
                return None
            a, b = ab  # a Beta of P(lv)
            return np.array([b, a]) if lv == levels[1] else np.array([a, b])
        ab = self.beta(name, leaf)  # a Beta of P(second level)
        return None if ab is None else np.array([ab[1], ab[0]])

    # -- rates ------------------------------------------------------------------------------------
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
            f = self.factor(f"{name}.factors.{fname}", f"{cause}: {fname}", cause, fb, np.ones(self.st.n_strata))
            if f:
                out.append(f)
        mult = b.get("multipliers") or {}
        if not isinstance(mult, dict):
            self.err(name, "multipliers", "give a mapping finding -> level -> multiplier")
            mult = {}
        for finding, levels in mult.items():
            if finding not in self.st.context:
                self.err(f"{name}.multipliers", str(finding), f"not a context finding; allowed: {', '.join(self.st.context)}")
                continue
            if not isinstance(levels, dict):
                self.err(f"{name}.multipliers.{finding}", "-", "give a mapping level -> multiplier")
                continue
            for level, mb in levels.items():
                level = _yes_no(level)
                where = f"{name}.multipliers.{finding}.{level}"
                if level not in self.st.context_levels[finding]:
                    allowed = ", ".join(self.st.context_levels[finding])
                    self.err(where, "-", f"{brief(level)} is not a level of {finding}; allowed: {allowed}")
                    continue
                if level == ref.get(finding):
                    self.err(where, "-", f"{brief(level)} is the reference level of {finding} for {cause} (multiplier 1)")
                    continue
                strata = self.st.stratum_mask({finding: level})
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
                    and _is_num(ln.get("factor90")) and ln["factor90"] > 1
                    and set(ln) <= {"median", "factor90", "lower"}):
                self.err(where, "lognormal", f"{brief(ln)}: give {{median: > 0, factor90: > 1}} (and optionally lower: > 0)")
                return None
            lower = ln.get("lower", 0.0)
            if not (_is_num(lower) and 0 <= lower < ln["median"]):
                self.err(where, "lognormal.lower", f"{brief(lower)}: a lower bound must be >= 0 and below the median")
                return None
            return Factor(name, cause, kind, (math.log(ln["median"]), math.log(ln["factor90"]) / Z90, float(lower)), strata)
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
            keys = causes if t == "cause_share" else self.st.levels_of("lineage")[:3]
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
    out = np.zeros((*p["rate_lognormal"].shape[:-1], r.n_causes * r.n_strata))
    for key, names_all, inc in (("rate_lognormal", r.lognormal_names, r.lognormal_incidence),
                                ("rate_beta", r.beta_names, r.beta_incidence)):
        for j, n in enumerate(names_all):
            if n in names:
                out = out + np.log(p[key][..., j])[..., None] * inc[j]
    return out.reshape(*out.shape[:-1], r.n_causes, r.n_strata)

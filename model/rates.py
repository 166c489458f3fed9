"""The rate model of ``priors/rates.yaml`` (docs/design.md §3): validation and its constant arrays.

``parse(doc, causes, refs, err)`` checks the file and returns a :class:`RateSpec`;
``arrays(spec, variant)`` turns it into the numeric arrays the likelihood uses
(:func:`palsy.model.likelihood.cause_strata`). A cause's rate in stratum s is the product of its
``factors``, of its ``multipliers`` for the levels of s and of its ``interactions`` all of whose levels are
those of s (each level of an interaction other than the cause's reference, as a multiplier's): each is a
log-normal (free), a Beta (free) or a fixed ``value``. A factor's name in the draws is ``'cause: factor'``,
``'cause: finding=level'`` or ``'cause: finding=level & finding=level'`` (:func:`factor_levels` reads it; the
parser refuses a name that would not read back). Nothing numeric about the clinical world is written here.
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


#: What joins the levels of an interaction, in ``rates.yaml``'s keys and in the factor's name in the draws
#: ('vincristine: lineage=AML & recent_vincristine=no').
AND = " & "


def interaction_levels(key: Any) -> dict[str, str] | None:
    """The context levels of an interaction's key in ``rates.yaml`` (``"lineage=AML & recent_vincristine=no"``),
    in the key's order; None for a key not of that form (an empty part, a part without ``=``, a finding twice)."""
    return None if _key_problem(key) else _key_levels(key)


def _key_levels(key: str) -> dict[str, str]:
    return {finding: level for finding, _, level in ((x.strip() for x in part.partition("=")) for part in key.split("&"))}


def _key_problem(key: Any) -> str | None:
    """What makes ``key`` not of the form ``finding=level & finding=level`` (None when it is)."""
    if not isinstance(key, str):
        return "not text"
    seen: set[str] = set()
    for part in key.split("&"):
        finding, eq, level = (x.strip() for x in part.partition("="))
        if not part.strip():
            return "an empty part (nothing between two '&', or before or after one)"
        if not eq:
            return f"{brief(part.strip())} has no '='"
        if not finding:
            return f"{brief(part.strip())} names no finding"
        if not level:
            return f"{brief(part.strip())} names no level"
        if finding in seen:
            return f"{brief(finding)} is given twice"
        seen.add(finding)
    return None


def factor_levels(name: str) -> tuple[str, str, dict[str, str]]:
    """The cause, the rest and the context levels of a rate factor's name in the draws: 'infiltration:
    relapse_hazard' has none, 'zoster: recent_hsct=yes' one (a multiplier), 'vincristine: lineage=AML &
    recent_vincristine=no' two (an interaction). The one reader of these names (the provenance, the pages)."""
    cause, _, rest = name.partition(": ")
    return cause, rest, (interaction_levels(rest) or {}) if "=" in rest else {}


def factor_entry(rates: dict[str, Any], name: str) -> tuple[Any, dict[str, Any]]:
    """A rate factor's entry in ``rates.yaml``'s ``rates`` (``rates``) by its name in the draws, with its cause's
    block (its kind when the factor has none); ``{}`` for a name the file does not have."""
    cause, rest, levels = factor_levels(name)
    block = rates.get(cause) or {}
    if len(levels) > 1:
        return next((v for k, v in (block.get("interactions") or {}).items() if interaction_levels(k) == levels),
                    {}), block
    if levels:
        (finding, level), = levels.items()
        found = {_yes_no(k): v for k, v in ((block.get("multipliers") or {}).get(finding) or {}).items()}
        return found.get(level) or {}, block
    return (block.get("factors") or {}).get(rest) or {}, block


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

    name: str  # "cause: factor", "cause: finding=level" or "cause: finding=level & finding=level" (factor_levels)
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
    """Read ``rates.yaml`` (``doc``), whose shape its model has checked
    (:class:`palsy.model.file_models.rates_file.RatesFile`: keys, types, ranges, each factor one of a log-normal,
    a Beta or a value, each block sourced), and check what depends on the other files: a block per cause of
    ``model.yaml``, the schema's context findings and levels, reference keys of ``references.yaml``, the
    shares' cells. Each problem is reported through ``err(entry, field, message)``."""
    p = _Parser(refs, err, structure)
    ref_levels = p.reference("reference", doc["reference"], full=True)
    shares = p.shares(doc["shares"])
    windows = p.windows(doc["window_years"])
    rates = doc["rates"]
    factors: list[Factor] = []
    if set(rates) != set(causes):
        err("rates", "-", f"give one block for each cause of model.yaml: {', '.join(causes)} "
                          f"(got {', '.join(map(brief, rates))})")
    else:
        for cause in causes:
            factors += p.cause(cause, rates[cause], ref_levels)
    p.targets(doc["targets"], causes, rates)
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

    def windows(self, doc: dict[str, Any]) -> np.ndarray | None:
        missing = [lin for lin in self.st.levels_of("lineage") if lin not in doc]
        if missing:
            self.err("window_years", "-", f"give {{value: years > 0, reasoning}} for each lineage; missing: {', '.join(missing)}")
            return None
        for lin, b in doc.items():
            self.refs_exist(f"window_years.{lin}", b)
        return np.array([float(doc[lin]["value"]) for lin in self.st.levels_of("lineage")])

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
    def refs_exist(self, name: str, b: dict[str, Any]) -> None:
        """The reference keys a (shape-checked) block cites are keys of references.yaml."""
        ref = b.get("ref")
        for k in [ref] if isinstance(ref, str) else ref or []:
            if k not in self.refs:
                self.err(name, "ref", f"{brief(k)} is not a key of references.yaml")

    def cause(self, cause: str, b: dict[str, Any], global_ref: dict[str, str]) -> list[Factor]:
        name = f"rates.{cause}"
        self.refs_exist(name, b)
        ref = {**global_ref, **self.reference(f"{name}.reference", b.get("reference") or {}, full=False)}
        made: list[tuple[str, dict[str, str], Factor]] = []  # (entry, levels, factor)

        def add(where: str, levels: dict[str, str], rest: str, mb: dict[str, Any]) -> None:
            made.append((where, levels, self.factor(where, f"{cause}: {rest}", cause, mb, self.st.stratum_mask(levels))))

        for fname, fb in b["factors"].items():
            add(f"{name}.factors.{fname}", {}, str(fname), fb)
        for finding, levels in (b.get("multipliers") or {}).items():
            if finding not in self.st.context:
                self.err(f"{name}.multipliers", str(finding), f"not a context finding; allowed: {', '.join(self.st.context)}")
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
                add(where, {finding: level}, f"{finding}={level}", mb)
        seen: dict[tuple[tuple[str, str], ...], str] = {}
        for key, mb in (b.get("interactions") or {}).items():
            where = f"{name}.interactions.{key}"
            levels = self.interaction(where, key, cause, ref)
            if levels is None:
                continue
            canonical = tuple((f, levels[f]) for f in self.st.context if f in levels)
            if canonical in seen:
                self.err(where, "-", f"the same strata as interactions.{seen[canonical]}: give each interaction once")
                continue
            seen[canonical] = str(key)
            add(where, dict(canonical), AND.join(f"{f}={lv}" for f, lv in canonical), mb)
        self.names_read_back(cause, made)
        return [f for _, _, f in made]

    def names_read_back(self, cause: str, made: list[tuple[str, dict[str, str], Factor]]) -> None:
        """Every factor's name reads back through :func:`factor_levels` as its own cause and levels, and names one
        factor: the provenance, the decomposition and the pages find a factor by its name alone (a factor named
        ``age_group=adult`` had been read as the multiplier of that level, and had shared its name)."""
        names = [f.name for _, _, f in made]
        for where, levels, f in made:
            got_cause, _, got = factor_levels(f.name)
            if got_cause != cause or got != levels:
                self.err(where, "-", f"the factor's name {brief(f.name)} reads back as cause {brief(got_cause)} with "
                                     f"levels {brief(got)}: a cause's name may not hold ': ', a factor's may not hold "
                                     "'=', a level's may not hold '&' (they join the parts of a factor's name, "
                                     "'cause: finding=level & finding=level')")
            elif names.count(f.name) > 1:
                self.err(where, "-", f"the name {brief(f.name)} is given to {names.count(f.name)} factors of {cause}; "
                                     "give each once")

    def interaction(self, where: str, key: Any, cause: str, ref: dict[str, str]) -> dict[str, str] | None:
        """The levels of an interaction's key: each a level of a context finding other than the cause's reference
        (``ref``) level of its finding, two findings or more."""
        problem = _key_problem(key)
        if problem is not None:
            self.err(where, "-", f"{brief(key)}: {problem}; give 'finding=level & finding=level' (context findings, "
                                 "each once)")
            return None
        levels = _key_levels(key)
        ok = True
        for finding, level in levels.items():
            if finding not in self.st.context:
                self.err(where, "-", f"{brief(finding)} is not a context finding; allowed: {', '.join(self.st.context)}")
                ok = False
            elif level not in self.st.context_levels[finding]:
                allowed = ", ".join(self.st.context_levels[finding])
                self.err(where, "-", f"{brief(level)} is not a level of {finding}; allowed: {allowed}")
                ok = False
            elif level == ref.get(finding):
                # the usual coding of an interaction: at the reference it would rescale the cause's factors (the rate
                # at the reference levels) or change what the other findings' multipliers mean, and be aliased with them
                allowed = ", ".join(lv for lv in self.st.context_levels[finding] if lv != level)
                self.err(where, "-", f"{brief(level)} is the reference level of {finding} for {cause}: an interaction "
                                     f"is of levels other than the reference; allowed: {allowed}")
                ok = False
        if ok and len(levels) < 2:
            (finding, level), = levels.items()
            self.err(where, "-", "an interaction joins two context findings or more; one level alone is a multiplier "
                                 f"(multipliers.{finding}.{level})")
            ok = False
        return levels if ok else None

    def factor(self, where: str, name: str, cause: str, b: dict[str, Any], strata: np.ndarray) -> Factor:
        """A (shape-checked) factor block: exactly one of lognormal, beta, value."""
        self.refs_exist(where, b)
        if "lognormal" in b:
            ln = b["lognormal"]
            return Factor(name, cause, "lognormal", (math.log(ln["median"]), math.log(ln["factor90"]) / Z90,
                                                     float(ln.get("lower", 0.0))), strata)
        if "beta" in b:
            return Factor(name, cause, "beta", (float(b["beta"]["a"]), float(b["beta"]["b"])), strata)
        return Factor(name, cause, "value", (float(b["value"]),), strata)

    def targets(self, doc: dict[str, Any], causes: tuple[str, ...], rates: dict[str, Any]) -> None:
        for t in TARGETS:
            block = doc[t]
            keys = causes if t == "cause_share" else self.st.levels_of("lineage")[:3]
            if t != "cause_share":
                if block["cause"] not in causes:
                    self.err(f"targets.{t}", "cause", f"{brief(block['cause'])}; allowed: {', '.join(causes)}")
                    continue
                factors = set((rates.get(block["cause"]) or {}).get("factors") or ())
                for f in block.get("exclude_factors") or []:
                    if f not in factors:
                        self.err(f"targets.{t}", "exclude_factors", f"{brief(f)} is not a factor of {block['cause']}; "
                                                                    f"allowed: {', '.join(sorted(factors))}")
            for k in keys:
                if not isinstance(block.get(k), dict):
                    self.err(f"targets.{t}.{k}", "range", "missing: give {range: [low, high], ref or reasoning}")
                    continue
                self.refs_exist(f"targets.{t}.{k}", block[k])


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

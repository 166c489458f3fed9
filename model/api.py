"""palsy from Python: one patient's answer in a notebook, as the command line gives it.

    >>> import palsy
    >>> a = palsy.answer({"lineage": "T-ALL", "laterality": "bilateral",
    ...                   "csf": [{"cytology": "negative", "flow": "negative"}]})
    >>> a.probability["mean"]            # P(infiltration | findings), the headline (a posterior mean)
    >>> a.to_dict()                      # the JSON of ``palsy posterior --json``
    >>> a.to_datatree()                  # the answer's draws with named dims, for ArviZ

The posterior comes from the fit cache (``palsy fit``), and is fitted on first use when the cache is cold
(about a minute). Everything here is the command line's own code: the numbers are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from palsy.model import answer as A
from palsy.model import cache as C
from palsy.model import draws as draws_io
from palsy.model import findings as F
from palsy.model import paths
from palsy.model import safe_yaml as Y
from palsy.model.draws import Draws
from palsy.model.evidence import evidence_hash
from palsy.model.schema import Schema

#: The variant answered by default (``palsy posterior``'s default).
DEFAULT_VARIANT = "subtype"


def posterior_draws(variant: str = DEFAULT_VARIANT, priors: str | Path | None = None,
                    settings: C.Settings | None = None, *, on_fit: Callable[[], None] | None = None,
                    progress: Any = None) -> Draws:
    """The posterior draws of ``variant`` fitted to the evidence in ``priors``: read from the cache
    (numpy only), else fitted with PyMC and cached.

    Parameters
    ----------
    variant : str
        ``subtype`` (the three forms of infiltration) or ``independent``.
    priors : path, optional
        A folder of evidence (default: the evidence shipped with palsy).
    settings : cache.Settings, optional
        Sampler settings (part of the cache key).
    on_fit : callable, optional
        Called once before a fit starts (the command line says that the cache is cold).
    progress : optional
        A progress reporter for the fit (see :mod:`palsy.model.fit`).
    """
    check_variant(variant)
    pdir = Path(priors) if priors is not None else paths.priors()
    settings = settings or C.Settings()
    path = C.folder(evidence_hash(pdir), variant, settings, registry_key(pdir)) / "draws.npz"
    if path.exists():
        try:
            return draws_io.load(path)
        except draws_io.CorruptDraws:
            pass  # fit.posterior finds it again, warns once and refits
    C.check_root()  # a cache folder that cannot hold the fit is bad input, found before PyMC is imported
    from palsy.model import evidence, fit

    ev = evidence.load(pdir)
    if on_fit is not None:
        on_fit()
    return fit.posterior(variant, ev, settings, use_cache=True, progress=progress).draws


def check_variant(variant: object) -> None:
    """An InputError naming the allowed variants unless ``variant`` is one: before its name makes a path in the
    cache (a misspelt variant left a lock file there, and one with a ``/`` would have reached outside it)."""
    from palsy.model.variants import VARIANTS

    if not isinstance(variant, str) or variant not in VARIANTS:
        raise F.InputError([f"variant: {variant!r} is not allowed; allowed: {', '.join(VARIANTS)}"], "variant")


def registry_key(priors: Path) -> str | None:
    """The cache key's registry part for the registry ``priors/registry.yaml`` names (None without one): the
    answer uses the fit with the hospital's registry whenever the evidence folder names one."""
    from palsy.model import registry

    return registry.key(priors)


def cached_draws(variant: str, priors: str | Path | None = None, settings: C.Settings | None = None) -> Draws | None:
    """The cached posterior draws of ``variant`` (numpy only), or None when that fit is not in the cache
    (never fits: an answer names the other variant's P(infiltration) only when both are fitted)."""
    check_variant(variant)
    pdir = Path(priors) if priors is not None else paths.priors()
    path = C.folder(evidence_hash(pdir), variant, settings or C.Settings(), registry_key(pdir)) / "draws.npz"
    if not path.exists():
        return None
    try:
        return draws_io.load(path)
    except draws_io.CorruptDraws:
        return None


def other_variant(variant: str) -> str:
    """The variant compared with ``variant`` (the two of :data:`palsy.model.variants.VARIANTS`)."""
    from palsy.model.variants import VARIANTS

    return next(v for v in VARIANTS if v != variant)


def other_draws(draws: Draws, priors: str | Path | None = None) -> Draws | None:
    """The other variant's cached draws fitted with the same sampler settings as ``draws``, or None."""
    fields = C.Settings.__dataclass_fields__
    settings = C.Settings(**{k: v for k, v in draws.meta["settings"].items() if k in fields})
    return cached_draws(other_variant(draws.variant), priors, settings)


def read_patient_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a patient YAML file (:class:`findings.InputError` naming the file if it is not one).

    Read through :mod:`palsy.model.safe_yaml`: a regular file of bounded size, UTF-8, no duplicate keys,
    no alias bombs; syntax errors keep their line and column.
    """
    if not str(path).strip():
        raise F.InputError(["--patient: an empty path; give a patient file"], "command line")
    path = Path(path)
    try:
        data = Y.load(path)
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise F.InputError([f"must be a mapping of findings, got {type(data).__name__}"], str(path))
    return data


def as_patient(patient: F.Patient | Mapping[str, Any] | str | Path, schema: Schema) -> F.Patient:
    """A :class:`findings.Patient` from a patient, a mapping of findings or a patient file's path."""
    if isinstance(patient, F.Patient):
        return patient if patient.schema == schema else F.parse_patient(patient.to_dict(), patient.id or "patient",
                                                                         schema=schema)
    if isinstance(patient, (str, Path)):
        return F.parse_patient(read_patient_file(patient), str(patient), schema=schema)
    if isinstance(patient, Mapping):
        return F.parse_patient(patient, "patient", schema=schema)
    raise F.InputError([f"a patient is a mapping of findings, a patient file's path or a Patient; got "
                        f"{type(patient).__name__}"], "patient")


def answer(patient: F.Patient | Mapping[str, Any] | str | Path, *, variant: str = DEFAULT_VARIANT,
           priors: str | Path | None = None, ci: float = 0.9, pretest: float | None = None,
           causes: tuple[str, ...] | None = None, thresholds: tuple[float, float] | None = None,
           shapley: bool = True, draws: Draws | None = None, compare_variants: bool = True) -> A.Answer:
    """The differential of one patient's facial palsy, as ``palsy posterior`` answers it.

    Parameters
    ----------
    patient : mapping, path or Patient
        Findings by name (``{"lineage": "T-ALL", "csf": [{"cytology": "negative"}]}``; unknown ones left
        out), a patient YAML file, or a parsed :class:`findings.Patient`.
    variant, priors : optional
        The posterior (see :func:`posterior_draws`); ignored when ``draws`` is given.
    ci : float
        Mass of the equal-tailed credible intervals.
    pretest : float, optional
        The clinician's own P(infiltration) given who the patient is (``--pretest``).
    causes : tuple of str, optional
        Condition on the cause being one of these (``--causes``; must include infiltration).
    thresholds : (low, high), optional
        The decision's pair of thresholds for this query (``--thresholds``).
    shapley : bool
        Compute the order-free (Shapley) contributions.
    draws : Draws, optional
        Posterior draws already loaded (reuse them across many patients).
    compare_variants : bool
        When the other variant is fitted too (cached), give its P(infiltration) for this patient
        (``variants``; named on page 1 when the two differ by more than ``variants.differ_by`` of
        ``priors/model.yaml``, 10 points).

    Returns
    -------
    answer.Answer
        With ``probability`` (mean, median and interval of P(infiltration | findings)), the differential,
        contributions, next tests, decision and actions; ``to_dict()`` is the command line's JSON and
        ``to_datatree()`` the draws for ArviZ.

    Raises
    ------
    findings.InputError
        A finding, value, ``ci``, ``pretest`` or ``causes`` that is not allowed (the message names each).
    """
    from palsy.model import decision, guidance

    pdir = Path(priors) if priors is not None else paths.priors()
    draws = draws if draws is not None else posterior_draws(variant, pdir)
    parsed = as_patient(patient, draws.schema)
    other = other_draws(draws, pdir) if compare_variants else None
    return A.answer(parsed, draws, ci=ci, pretest=pretest, causes=causes, thresholds=thresholds, shapley=shapley,
                    other=other,
                    decision_settings=decision.load(pdir, draws.causes),
                    guidance=guidance.load(pdir, draws.causes, draws.schema))

"""What several subcommands share: the evidence folder, patients from files and flags, and the
posterior from the cache (a warm cache imports no PyMC, PyTensor, SciPy, xarray or ArviZ)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from model import cache as C
from model import draws as draws_io
from model import findings as F
from model import variants
from model.evidence import evidence_hash

REPO = Path(__file__).resolve().parents[2]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def priors_dir(args: argparse.Namespace | None = None) -> Path:
    """``--priors``, else ``$PALSY_PRIORS``, else the repository's ``priors/``."""
    given = getattr(args, "priors", None) or os.environ.get("PALSY_PRIORS")
    return Path(given) if given else REPO / "priors"


def add_model_arguments(p: argparse.ArgumentParser, *, ci: bool = True) -> None:
    p.add_argument("--variant", choices=variants.VARIANTS, default=variants.DEFAULT_VARIANT,
                   help=f"model variant (default {variants.DEFAULT_VARIANT})")
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    if ci:
        p.add_argument("--ci", type=_probability("ci"), default=0.9, help="credible interval mass (default 0.9)")
        p.add_argument("--pretest", type=_probability("pretest"), default=None,
                       help="your own P(infiltration) for this patient given who the patient is (the context "
                            "findings); the other causes keep their relative shares")
        p.add_argument("--causes", default="all", metavar="all|a,b,...",
                       help="the causes weighed (default all); must include infiltration, e.g. infiltration,bell")


def _probability(name: str):
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name}: {text!r} is not a number; give a probability strictly between 0 and 1") from None
        if not 0 < x < 1:
            raise argparse.ArgumentTypeError(f"--{name}: {text!r} is not allowed; give a probability strictly between 0 and 1")
        return x
    return parse


def add_finding_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per finding of DESIGN §2, same name with dashes; ``--csf`` repeats."""
    for name in F.FINDINGS:
        flag = "--" + name.replace("_", "-")
        if name == "csf":
            p.add_argument(flag, action="append", metavar="RESULT:METHOD",
                           help="one LP, in order (repeat): e.g. negative:cytology, positive:flow; replaces the file's list")
        else:
            p.add_argument(flag, metavar="LEVEL", help=f"{F.DESCRIPTIONS[name]}: {', '.join(F.allowed(name))}, unknown")


def read_patient_file(path: str | Path) -> dict:
    """The mapping in a patient YAML file (InputError naming the file if it is not one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise F.InputError([f"cannot read the patient file ({exc.strerror})"], str(path)) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise F.InputError([f"not valid YAML: {str(exc).splitlines()[0]}"], str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise F.InputError([f"must be a mapping of findings, got {type(data).__name__}"], str(path))
    return data


def patient_from(args: argparse.Namespace, file: str | None) -> F.Patient:
    """The patient of ``file`` (if any) with the flags overriding it."""
    data = read_patient_file(file) if file else {}
    source = str(file) if file else "command line"
    base = F.parse_patient(data, source)
    overrides = {}
    for name in F.FINDINGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = list(value) if name == "csf" else value
    return F.with_overrides(base, overrides, "command line") if overrides else base


def causes_from(args: argparse.Namespace, draws) -> tuple[str, ...] | None:
    """The causes of ``--causes`` (None for all); InputError naming the flag otherwise."""
    text = getattr(args, "causes", "all") or "all"
    if text.strip() == "all":
        return None
    chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    if "infiltration" not in chosen or len(chosen) < 2 or any(c not in draws.causes for c in chosen) \
            or len(set(chosen)) != len(chosen):
        raise F.InputError([f"--causes: {text!r} is not allowed; allowed: all, or two or more distinct causes "
                            f"separated by commas, including infiltration, from {', '.join(draws.causes)}"],
                           "command line")
    return chosen


def settings_from(args: argparse.Namespace) -> C.Settings:
    d = C.Settings()
    return C.Settings(draws=getattr(args, "draws", None) or d.draws, tune=getattr(args, "tune", None) or d.tune,
                      chains=getattr(args, "chains", None) or d.chains, seed=getattr(args, "seed", None) or d.seed)


def load_draws(args: argparse.Namespace, variant: str | None = None, settings: C.Settings | None = None):
    """The posterior draws of the variant: from the cache (numpy only), else fitted (PyMC)."""
    variant = variant or args.variant
    settings = settings or settings_from(args)
    pdir = priors_dir(args)
    folder = C.folder(evidence_hash(pdir), variant, settings)
    path = folder / "draws.npz"
    if path.exists():
        try:
            return draws_io.load(path)
        except draws_io.CorruptDraws as exc:
            print(f"palsy: warning: cached posterior is corrupt, refitting: {exc}", file=sys.stderr)
    from model import evidence, fit

    ev = evidence.load(pdir)
    print(f"palsy: fitting the {variant} variant (cache is cold; this takes a minute)...", file=sys.stderr)
    return fit.posterior(variant, ev, settings, use_cache=True).draws

"""What several subcommands share: the evidence folder, patients from files and flags, and the
posterior from the cache (a warm cache imports no PyMC, PyTensor, SciPy, xarray or ArviZ)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from palsy.model import cache as C
from palsy.model import findings as F
from palsy.model import paths, variants
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC


def out_dir(args: argparse.Namespace) -> Path:
    """``--out`` as a folder that can hold the output, checked before anything is computed or written.

    Raises
    ------
    findings.InputError
        Naming the flag and the path: empty, an existing file, or a path under a file.
    """
    text = getattr(args, "out", None)
    if text is None or not str(text).strip():
        raise F.InputError([f"--out: {text!r} is not a folder; give a folder path (it is created if missing)"],
                           "command line")
    path = Path(text)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise F.InputError([f"--out: {str(path)!r}: {p} is a file, not a folder"], "command line")
    return path


def shown_path(path: str | Path) -> str:
    """``path`` as printed: relative to the working folder when under it (the same text on every machine)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def priors_dir(args: argparse.Namespace | None = None) -> Path:
    """``--priors``, else ``$PALSY_PRIORS``, else the evidence shipped with palsy (:func:`palsy.model.paths.priors`)."""
    flag = getattr(args, "priors", None)
    if flag is not None and not flag.strip():
        raise F.InputError(["--priors: an empty path; give the evidence folder (or leave the flag out for "
                            "the repository's priors/)"], "command line")
    if flag:
        return Path(flag)
    env = os.environ.get("PALSY_PRIORS")
    if env is not None and env.strip() and not Path(env).is_dir():
        raise F.InputError([f"$PALSY_PRIORS: {env!r} is not a folder; give the evidence folder (or unset it for "
                            f"palsy's own)"], "environment")
    return Path(env) if env and env.strip() else paths.priors()


def add_model_arguments(p: argparse.ArgumentParser, *, ci: bool = True) -> None:
    p.add_argument("--variant", choices=variants.VARIANTS, default=variants.DEFAULT_VARIANT,
                   help=f"model variant (default {variants.DEFAULT_VARIANT})")
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    if ci:
        p.add_argument("--ci", type=probability_flag("ci", F.CI_RANGE), default=0.9,
                       help=f"credible interval mass, {F.CI_RANGE[0]:g} to {F.CI_RANGE[1]:g} (default 0.9)")
        p.add_argument("--pretest", type=probability_flag("pretest"), default=None,
                       help="your own P(infiltration) for this patient given who the patient is (the context "
                            "findings); the other causes keep their relative shares")
        p.add_argument("--causes", default="all", metavar="all|a,b,...",
                       help="the causes weighed (default all); must include infiltration, e.g. infiltration,bell")


def probability_flag(name: str, bounds: tuple[float, float] | None = None) -> Callable[[str], float]:
    """The argparse type of a flag ``--name`` that takes a probability strictly between 0 and 1, or within
    ``bounds`` (inclusive), written with the digits 0-9."""
    allowed = f"from {bounds[0]:g} to {bounds[1]:g}" if bounds else "strictly between 0 and 1"

    def parse(text: str) -> float:
        if not F.PLAIN_NUMBER.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"--{name}: {Y.brief(text)} is not a number written with the digits 0-9; "
                                             f"give a probability {allowed}")
        x = float(text)
        if not (bounds[0] <= x <= bounds[1] if bounds else 0 < x < 1):
            raise argparse.ArgumentTypeError(f"--{name}: {text!r} is not allowed; give a probability {allowed}")
        return x
    return parse


#: The ``--priors`` folder of the command line being parsed (set by ``palsy.main`` before its parser is
#: built, so that the finding flags follow the schema of that folder).
PRIORS_ON_COMMAND_LINE: str | None = None


def priors_in(argv: list[str]) -> str | None:
    """The value of ``--priors`` in ``argv`` (``--priors DIR`` or ``--priors=DIR``), None when absent."""
    for i, arg in enumerate(argv):
        if arg == "--priors" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--priors="):
            return arg.split("=", 1)[1]
    return None


def flag_schema(priors: str | Path | None = None) -> SC.Schema:
    """The schema the finding flags and patient files follow: that of ``priors`` (the command's
    ``--priors``), else of ``$PALSY_PRIORS``, else the one shipped with palsy.

    Read without the validation library: the fit validates the schema, and a broken file is reported when
    the evidence is loaded."""
    if priors is None and PRIORS_ON_COMMAND_LINE:
        try:
            return SC.read(PRIORS_ON_COMMAND_LINE)
        except Exception:  # noqa: BLE001 - the command reports a bad --priors itself (exit 2), not the parser
            pass
    if priors is not None:
        return SC.read(str(priors))
    env = os.environ.get("PALSY_PRIORS")
    if env and env.strip():
        try:
            return SC.read(env)
        except Exception:  # noqa: BLE001 - as a bad --priors: the command names a bad $PALSY_PRIORS (exit 2), not
            pass           # the parser, whose error was an internal error with a literal \n (s16 review S10)
    return SC.read(str(paths.priors()))


def add_finding_arguments(p: argparse.ArgumentParser, schema: SC.Schema | None = None) -> None:
    """One flag per finding of the schema, same name with dashes; the LP flag repeats."""
    sc = schema or flag_schema()
    for name in sc.findings:
        flag = "--" + name.replace("_", "-")
        if name == sc.lp.name:
            methods = sc.lp.methods
            p.add_argument(flag, action="append", metavar="LP",
                           help=f"one LP, in order (repeat): e.g. {methods[0]}=negative,{methods[1]}=positive"
                                f"[,traumatic=yes] (either method may be left out), or negative:{methods[1]}; "
                                f"replaces the file's list")
        else:
            p.add_argument(flag, metavar="LEVEL", help=f"{sc.help(name)}: {', '.join(sc.allowed(name))}, unknown")


def read_patient_file(path: str | Path) -> dict:
    """The mapping in a patient YAML file: :func:`palsy.model.api.read_patient_file`."""
    from palsy.model import api

    return api.read_patient_file(path)


#: The largest FHIR Bundle file ``--fhir`` reads: a record exported whole (two years of an inpatient's counts and
#: notes) runs to tens of megabytes, and a review found one refused at the 4 MiB of a patient or evidence file
#: (mapping a 7,200-entry bundle took 2.6 s).
FHIR_MAX_BYTES = 64 * 1024 * 1024


def read_fhir_file(path: str | Path, priors: str | Path | None = None):  # -> palsy.model.fhir.FhirMapping
    """The findings of a FHIR R4 Bundle file (``--fhir``), mapped through the mapping table of the evidence
    folder in use and read against its schema (the one the finding flags and patient files follow).

    Parameters
    ----------
    path : str or Path
        The Bundle file (JSON).
    priors : str or Path, optional
        The evidence folder (the command's ``--priors``: :func:`priors_dir`; by default ``$PALSY_PRIORS``,
        else palsy's own). Its ``fhir_map.yaml``, else palsy's own table when it has none.

    Raises
    ------
    findings.InputError
        Naming the file: not JSON (line and column), a key given twice in one object, a number of more than
        4300 digits, nesting too deep, not a valid Bundle, or another patient's data in it;
        or naming the mapping table's rows that its schema does not allow."""
    from palsy.model import fhir
    from palsy.model import safe_json as J

    if not str(path).strip():
        raise F.InputError(["--fhir: an empty path; give a FHIR Bundle file"], "command line")
    try:
        # strictly: a key given twice, a number of over 4300 digits or nesting too deep is named (exit 2), not
        # read last-one-wins or an internal error (s16 review S6, S7)
        data = J.loads(Y.read_text(path, limit=FHIR_MAX_BYTES))
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    except J.JSONInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    folder = Path(priors) if priors is not None else priors_dir()
    table = fhir.load_table(folder if (folder / fhir.TABLE_FILE).is_file() else None)
    return fhir.map_bundle(data, table, source=str(path), schema=flag_schema(folder))


def patient_from(args: argparse.Namespace, file: str | None, fhir=None) -> F.Patient:
    """The patient of ``file``, or of a mapped FHIR record ``fhir`` (:func:`read_fhir_file`), if any, with the
    flags overriding it."""
    if file is not None and fhir is not None:
        raise F.InputError(["--patient and --fhir: give one of them"], "command line")
    data = read_patient_file(file) if file is not None else dict(fhir.patient) if fhir is not None else {}
    source = str(file) if file is not None else str(getattr(args, "fhir", None)) if fhir is not None else "command line"
    sc = flag_schema(priors_dir(args))
    base = F.parse_patient(data, source, schema=sc)
    overrides = {}
    for name in sc.findings:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = list(value) if name == sc.lp.name else value
    return F.with_overrides(base, overrides, "command line") if overrides else base


def causes_from(args: argparse.Namespace, draws) -> tuple[str, ...] | None:
    """The causes of ``--causes`` (None for all); InputError naming the flag otherwise."""
    text = getattr(args, "causes", "all") or "all"
    if text.strip() == "all":
        return None
    chosen = tuple(c.strip() for c in text.split(","))
    if "infiltration" not in chosen or len(chosen) < 2 or any(c not in draws.causes for c in chosen) \
            or len(set(chosen)) != len(chosen):  # an empty name too ('infiltration,bell,': a stray comma)
        raise F.InputError([f"--causes: {text!r} is not allowed; allowed: all, or two or more distinct causes "
                            f"separated by commas, including infiltration, from {', '.join(draws.causes)}"],
                           "command line")
    return chosen


def settings_from(args: argparse.Namespace) -> C.Settings:
    """The sampler settings of the flags; a flag not given (``None`` or absent) keeps its default
    (``--seed 0`` is seed 0: the value is tested against ``None``, never for truth)."""
    d = C.Settings()

    def given(name: str):
        value = getattr(args, name, None)
        return getattr(d, name) if value is None else value

    return C.Settings(draws=given("draws"), tune=given("tune"), chains=given("chains"), seed=given("seed"),
                      sampler=given("sampler"), thin=given("thin"))


def whole_number(flag: str, low: int, high: int):
    """An argparse type: a whole number in [low, high] (bad values exit 2 before anything runs)."""
    def parse(text: str) -> int:
        try:
            if not F.PLAIN_WHOLE.fullmatch(text.strip()):  # int() reads '٦' and '1_0' too
                raise ValueError(text)
            x = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one from {low} "
                                             f"to {high}") from None
        if not low <= x <= high:
            raise argparse.ArgumentTypeError(f"{x} is not allowed; give a whole number from {low} to {high}")
        return x
    return parse


def load_draws(args: argparse.Namespace, variant: str | None = None, settings: C.Settings | None = None):
    """The posterior draws of the variant: from the cache (numpy only), else fitted (PyMC)."""
    from palsy.model import api

    variant = variant or args.variant

    def say_fitting() -> None:
        print(f"palsy: fitting the {variant} variant (cache is cold; this takes a minute)...", file=sys.stderr)

    return api.posterior_draws(variant, priors_dir(args), settings or settings_from(args), on_fit=say_fitting,
                               progress=progress_reporter(args))


def other_draws(args: argparse.Namespace, draws):  # noqa: ANN001, ANN201
    """The other variant's draws if that fit is cached (never fitted here), for the answer's ``variants``."""
    from palsy.model import api

    return api.other_draws(draws, priors_dir(args))


def progress_reporter(args: argparse.Namespace | None = None):
    """What long work is doing, on stderr: only on a terminal and never under ``--json`` (None otherwise)."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return None
    return lambda message: print(f"palsy: {message}...", file=sys.stderr, flush=True)

"""Regenerate ``reports/examples/``: the clinician reports of the source documents' patients.

Usage::

    python -m scripts.build_examples [--out DIR] [--only ID ...] [--variant V]

Each patient of ``patients/source-*.yaml`` gets ``<id>.html`` and ``<id>.pdf``, produced exactly as
``palsy report`` does (same code path, default variant and settings). The output is deterministic
for the same evidence and seed, so a regenerated example differs from the committed one only when
the evidence, the model or the code changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATIENTS = ("source-000-vignette", "source-001", "source-002")
OUT = REPO / "reports" / "examples"


def build(out: Path = OUT, only: list[str] | None = None, variant: str | None = None) -> list[Path]:
    """Write the example reports into ``out``; return the files written."""
    from model import answer as A
    from model import evidence as E
    from model import variants
    from reports import context, render
    from scripts.commands import common

    args = argparse.Namespace(priors=None, variant=variant or variants.DEFAULT_VARIANT,
                              draws=None, tune=None, chains=None, seed=None)
    draws = common.load_draws(args)
    ev = E.load(common.priors_dir(args))
    written = []
    for name in only or PATIENTS:
        patient = common.patient_from(argparse.Namespace(), str(REPO / "patients" / f"{name}.yaml"))
        ctx = context.build(A.answer(patient, draws), ev)
        written += render.write(ctx, out)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT), help="output folder (default reports/examples)")
    p.add_argument("--only", nargs="*", choices=PATIENTS, help="only these patients")
    p.add_argument("--variant", default=None, help="model variant (default: the model's default)")
    a = p.parse_args(argv)
    for path in build(Path(a.out), a.only, a.variant):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write ``patients/<id>.fhir.json``: each source patient as a FHIR R4 Bundle, generated from its patient
file through the mapping table in reverse (:func:`palsy.model.fhir_example.example_bundle`), never by hand.

Run ``python -m palsy.scripts.fhir_examples`` after changing a patient file or ``priors/fhir_map.yaml``;
``--check`` exits 1 when a written bundle is stale (tests/test_fhir.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from palsy.model import fhir as X
from palsy.model import fhir_example as XE
from palsy.model import findings as F
from palsy.model import paths
from palsy.model import safe_yaml as Y


def bundle_text(patient_file: Path, table: X.Table | None = None) -> str:
    """The JSON text of the example bundle of ``patient_file`` (validated, as written to disk)."""
    raw = Y.load(patient_file)
    F.parse_patient(raw, str(patient_file))  # a bad patient file is an error here, not a wrong bundle
    bundle = X.validate(XE.example_bundle(raw, table), str(patient_file))
    return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"


def targets(folder: Path | None = None) -> dict[Path, Path]:
    """Each patient file of ``folder`` (the source patients by default) and the bundle written beside it."""
    folder = folder or paths.patients()
    return {p: p.with_name(p.stem + ".fhir.json") for p in sorted(folder.glob("*.yaml"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a bundle is missing or stale; write nothing")
    args = ap.parse_args(argv)
    table = X.load_table()
    stale = []
    for src, out in targets().items():
        text = bundle_text(src, table)
        if out.exists() and out.read_text(encoding="utf-8") == text:
            continue
        stale.append(out)
        if not args.check:
            out.write_text(text, encoding="utf-8")
            print(f"wrote {out}")
    if args.check and stale:
        print("stale: " + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

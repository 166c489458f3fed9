"""Write the published JSON Schemas: a patient file and ``palsy posterior --json``'s answer.

``python -m palsy.scripts.json_schemas`` writes ``docs/schemas/patient.schema.json`` and
``docs/schemas/answer.schema.json`` from the finding schema shipped with palsy (``priors/schema.yaml``)
through :mod:`palsy.model.file_models.published`; ``--check`` writes nothing and exits 1 when a committed
file differs from what would be written (a test runs it); ``--out DIR`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from palsy.model import paths
from palsy.model import schema as SC

NAMES = ("patient.schema.json", "answer.schema.json")


def documents(priors: str | Path | None = None) -> dict[str, str]:
    """File name -> text of each published schema for the evidence folder ``priors`` (default: palsy's)."""
    from palsy.model.file_models import published

    sc = SC.load(priors)
    texts = {"patient.schema.json": published.patient_schema(sc), "answer.schema.json": published.answer_schema(sc)}
    return {name: json.dumps(doc, indent=2) + "\n" for name, doc in texts.items()}


def default_folder() -> Path:
    """``docs/schemas`` of the checkout."""
    root = paths.checkout()
    if root is None:
        raise SystemExit("json_schemas: not in a checkout of palsy; give --out")
    return root / "docs" / "schemas"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="folder to write to (default: docs/schemas of the checkout)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is not what would be written")
    args = p.parse_args(argv)
    folder = Path(args.out) if args.out else default_folder()
    docs = documents()
    if args.check:
        stale = [n for n, text in docs.items()
                 if not (folder / n).is_file() or (folder / n).read_text(encoding="utf-8") != text]
        for n in stale:
            print(f"{folder / n}: not what python -m palsy.scripts.json_schemas writes; run it", file=sys.stderr)
        return 1 if stale else 0
    folder.mkdir(parents=True, exist_ok=True)
    for n, text in docs.items():
        (folder / n).write_text(text, encoding="utf-8")
        print(folder / n)
    return 0


if __name__ == "__main__":
    sys.exit(main())

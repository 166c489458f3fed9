"""Regenerate ``reports/examples/``: clinician reports that show what the tool says (issue 10 item 7).

Usage::

    python -m palsy.scripts.build_examples [--out DIR] [--only ID ...] [--variant V] [--no-png]

The three source patients (``patients/source-*.yaml``) and three patients of the test vignettes (a
vincristine neuropathy, a Ramsay Hunt zoster and a Bell's-like palsy: the ``patient`` block of
``tests/fixtures/vignettes/{vincristine,ramsay_hunt,bell_like}.yaml``) each get ``<id>.html``,
``<id>.pdf`` and ``<id>-page1.png``, produced exactly as ``palsy report`` does (same code path, the
model's default variant, decision settings and actions from ``priors/``). The PNG is what a 1280 x 1024
window shows first, taken by Debian's headless Chromium (``chromium --screenshot``); without Chromium
the PNG is skipped with a warning. The HTML and PDF are deterministic for the same evidence and seed.
The last line printed is the page-1 PNG of source 000 (for the README).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("source-000-vignette", "source-001", "source-002")
VIGNETTES = ("vincristine", "ramsay_hunt", "bell_like")
PATIENTS = SOURCES + VIGNETTES
OUT = REPO / "reports" / "examples"
VIEWPORT = (1280, 1024)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def patient_file(name: str, tmp: Path) -> Path:
    """The patient file of an example: a source patient as is, a vignette's ``patient`` block."""
    if name in SOURCES:
        return REPO / "patients" / f"{name}.yaml"
    import yaml

    doc = yaml.safe_load((REPO / "tests" / "fixtures" / "vignettes" / f"{name}.yaml").read_text(encoding="utf-8"))
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc["patient"], allow_unicode=True), encoding="utf-8")
    return path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def screenshot(html: Path, png: Path, browser: str) -> None:
    """Page 1 as a 1280 x 1024 window shows it first (headless Chromium)."""
    with tempfile.TemporaryDirectory(prefix="palsy-chromium-") as profile:
        subprocess.run([browser, *CHROMIUM_ARGS, f"--user-data-dir={profile}",
                        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", f"--screenshot={png}",
                        html.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def build(out: Path = OUT, only: list[str] | None = None, variant: str | None = None,
          png: bool = True, formats: tuple[str, ...] | None = None) -> list[Path]:
    """Write the example reports into ``out`` (every format of ``palsy report`` unless ``formats`` says
    which); return the files written (page-1 PNGs included)."""
    from palsy.model import api, variants
    from palsy.model import evidence as E
    from palsy.reports import context, render
    from palsy.scripts.commands import common
    from palsy.scripts.commands.report import answer_for, answer_options

    args = argparse.Namespace(priors=None, variant=variant or variants.DEFAULT_VARIANT, draws=None, tune=None,
                              chains=None, seed=None, causes="all", ci=0.9, pretest=None, thresholds=None)
    draws = common.load_draws(args)
    # the examples show the two variants compared: the other one is fitted now if its cache is cold (an answer
    # only reads a cached other variant, and would leave the comparison out without a word)
    common.load_draws(argparse.Namespace(**{**vars(args), "variant": api.other_variant(args.variant)}))
    options = answer_options(args, draws)  # once for every example: the decision, the actions, the other variant
    ev = E.load(common.priors_dir(args))
    browser = chromium() if png else None
    if png and browser is None:
        print("build_examples: warning: chromium not found, page-1 PNGs not made", file=sys.stderr)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in only or PATIENTS:
            patient = common.patient_from(argparse.Namespace(), str(patient_file(name, Path(tmp))))
            paths = render.write(context.build(answer_for(args, patient, draws, options), ev), out, formats or render.FORMATS)
            written += paths
            if browser:
                html = next(p for p in paths if p.suffix == ".html")
                target = out / f"{html.stem}-page1.png"
                screenshot(html, target, browser)
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT), help="output folder (default reports/examples)")
    p.add_argument("--only", nargs="*", choices=PATIENTS, help="only these patients")
    p.add_argument("--variant", default=None, help="model variant (default: the model's default)")
    p.add_argument("--no-png", action="store_true", help="skip the page-1 screenshots")
    a = p.parse_args(argv)
    paths = build(Path(a.out), a.only, a.variant, png=not a.no_png)
    for path in paths:
        print(path)
    first = [x for x in paths if x.name == "source-000-vignette-page1.png"]
    if first:
        print(f"page 1 of source 000 (for the README): {first[0].relative_to(REPO) if first[0].is_relative_to(REPO) else first[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The finding schema is data (issue 20, item 1; docs/design.md §2, priors/README.md "Adding a finding").

A copy of ``priors/`` gains a presentation finding (``taste``, with its evidence for every cause) and a
context exposure (``recent_nelarabine``, with its patient-time share and rate multipliers), and nothing else
changes: the evidence validates, the command line offers the flags, and (heavy) the model is fitted and the
answer, the report and the interactive page carry both. Every number added is a DEMONSTRATION value, not
clinical evidence, and says so in its reasoning.

The commands get the copy both ways: ``--priors`` (the evidence the command reads) and ``PALSY_PRIORS``
(the schema the finding flags and the patient files are parsed with, read before ``--priors`` is).
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PATIENTS, REPO, run_palsy

#: schema.yaml: a presentation finding, placed after otalgia in the clinical order.
TASTE_SCHEMA = """
  # DEMONSTRATION (issue 20, the schema is data): not part of palsy's evidence.
  - name: taste
    role: presentation
    levels:
      absent: {label: taste normal, short: taste normal}
      present: {label: "taste disturbed on the front of the tongue, side of the palsy", short: taste disturbed}
    label: Taste (front two-thirds of the tongue)
    help: taste disturbance on the front two-thirds of the tongue on the side of the palsy
"""

#: schema.yaml: a context exposure, placed after recent_hsct (so the rate model's strata gain an axis).
NELARABINE_SCHEMA = """
  # DEMONSTRATION (issue 20, the schema is data): not part of palsy's evidence.
  - name: recent_nelarabine
    role: context
    levels:
      "no": {label: no nelarabine in the 4 weeks before onset, short: no recent nelarabine}
      "yes": {label: a nelarabine course in the 4 weeks before onset, short: recent nelarabine}
    label: Nelarabine in the 4 weeks before onset
    help: a nelarabine course in the 4 weeks before onset
"""

#: cohorts.yaml: P(taste present | cause) as a Beta (a, b) for every cause; infiltration's is the lowest.
TASTE_BETAS = {"infiltration": (2, 18), "bell": (5, 5), "zoster": (6, 4), "vincristine": (3, 7),
               "gbs": (3, 7), "otomastoiditis": (4, 6)}

#: rates.yaml: the share of patient-time with a recent nelarabine course, given lineage and remission.
NELARABINE_SHARE = """
  recent_nelarabine:
    given: [lineage, remission]
    kind: expert_judgment
    ref: null
    reasoning: >-
      Demonstration value for issue 20 (the schema is data), not clinical evidence: P(a nelarabine
      course in the 4 weeks before | lineage, remission), a T-ALL salvage drug, near zero elsewhere.
    T-ALL:
      not_in_remission: {a: 3, b: 7}
      remission_on_treatment: {a: 1, b: 9}
      remission_off_treatment: {a: 0.2, b: 40}
    B-ALL:
      not_in_remission: {a: 0.2, b: 60}
      remission_on_treatment: {a: 0.2, b: 60}
      remission_off_treatment: {a: 0.2, b: 60}
    AML:
      not_in_remission: {a: 0.2, b: 60}
      remission_on_treatment: {a: 0.2, b: 60}
      remission_off_treatment: {a: 0.2, b: 60}
    other:
      not_in_remission: {a: 0.5, b: 30}
      remission_on_treatment: {a: 0.3, b: 40}
      remission_off_treatment: {a: 0.2, b: 60}
"""

#: rates.yaml: each cause's rate multiplier for ``recent_nelarabine: "yes"``, (median, factor90).
NELARABINE_MULTIPLIERS = {"gbs": (10, 3), "vincristine": (1.5, 2)}

#: A patient file that uses both new findings (the report's patient).
DEMO_PATIENT = """\
id: demo-taste-nelarabine
description: T-ALL on treatment after nelarabine; new unilateral facial palsy with taste disturbance
lineage: T-ALL
remission: remission_on_treatment
recent_nelarabine: "yes"
laterality: unilateral
taste: present
csf:
  - {cytology: negative, flow: negative}
"""


def taste_entry(cause: str, a: float, b: float) -> str:
    """The cohorts.yaml entry of the demonstration Beta(a, b) of ``taste: present`` under ``cause``."""
    return f"""
  - id: demo_taste_{cause}
    kind: expert_judgment
    ref: null
    cause: {cause}
    form: null
    finding: taste
    level: present
    beta: {{a: {a}, b: {b}}}
    reasoning: >-
      Demonstration value for issue 20 (the schema is data), not clinical evidence: an expert-judgment
      Beta chosen only to show that a finding added to a copy of priors/ is fitted and answered.
"""


def multiplier(median: float, factor90: float) -> str:
    """The rates.yaml multiplier block of ``recent_nelarabine: "yes"`` (indented for a cause's ``multipliers``)."""
    return f"""      recent_nelarabine:
        "yes":
          lognormal: {{median: {median}, factor90: {factor90}}}
          kind: expert_judgment
          ref: null
          reasoning: >-
            Demonstration value for issue 20 (the schema is data), not clinical evidence: the rate
            multiplier with a nelarabine course in the 4 weeks before onset.
"""


def insert_after(text: str, anchor: str, block: str, start: int = 0) -> str:
    """``text`` with ``block`` inserted after the first ``anchor`` found from ``start``."""
    at = text.index(anchor, start) + len(anchor)
    return text[:at] + block + text[at:]


def add_demo(priors: Path) -> None:
    """Add the two findings to the evidence folder ``priors`` (a copy): schema, cohorts and rates, as text."""
    schema = (priors / "schema.yaml").read_text()
    schema = insert_after(schema, "    help: ear pain on the side of the palsy\n", TASTE_SCHEMA)
    schema = insert_after(schema, "    help: allogeneic HSCT in the 12 months before onset\n", NELARABINE_SCHEMA)
    (priors / "schema.yaml").write_text(schema)
    cohorts = (priors / "cohorts.yaml").read_text().rstrip("\n") + "\n"
    (priors / "cohorts.yaml").write_text(cohorts + "".join(taste_entry(c, a, b) for c, (a, b) in TASTE_BETAS.items()))
    rates = (priors / "rates.yaml").read_text()
    rates = insert_after(rates, '  recent_hsct: "no"\n', '  recent_nelarabine: "no"\n')  # the reference level
    at = rates.index("\n  circulating_blasts:\n    given:")  # its share block: the new one goes before it
    rates = rates[:at] + NELARABINE_SHARE.rstrip("\n") + "\n" + rates[at:]
    for cause, (median, factor90) in NELARABINE_MULTIPLIERS.items():
        rates = insert_after(rates, "    multipliers:\n", multiplier(median, factor90), rates.index(f"\n  {cause}:\n"))
    (priors / "rates.yaml").write_text(rates)


def demo_copy(tmp_path: Path) -> Path:
    """A copy of palsy's ``priors/`` in ``tmp_path`` with the demonstration findings added."""
    copy = tmp_path / "priors"
    shutil.copytree(REPO / "priors", copy, ignore=shutil.ignore_patterns("__pycache__"))
    add_demo(copy)
    return copy


def palsy(copy: Path, cache: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """``palsy *args`` with the copy as ``PALSY_PRIORS`` and its own cache; fails the test on a non-zero exit."""
    return run_palsy(*map(str, args), check=True, env={"PALSY_PRIORS": str(copy), "PALSY_CACHE": str(cache)})


def flat(text: str) -> str:
    """``text`` with every run of white space one space (help text wraps with the terminal)."""
    return " ".join(text.split())


def test_a_finding_and_an_exposure_are_data(tmp_path):
    """The copy validates, lists the new evidence, and gives the flags; the shipped schema does not."""
    copy = demo_copy(tmp_path)
    evidence = palsy(copy, tmp_path / "cache", "evidence", "--priors", copy).stdout
    for cause, (a, b) in TASTE_BETAS.items():
        assert f"demo_taste_{cause}: taste | {cause} | present | expert judgment Beta({a}, {b})" in evidence
    for cause, (median, factor90) in NELARABINE_MULTIPLIERS.items():
        assert f"[rate] {cause}: recent_nelarabine=yes: rate | {cause} |  | log-normal median {median}, 90% interval x/{factor90}" \
            in evidence
    helped = flat(palsy(copy, tmp_path / "cache", "posterior", "--priors", copy, "--help").stdout)
    assert "--taste LEVEL taste disturbance on the front two-thirds of the tongue on the side of the palsy: absent, present, " \
           "unknown" in helped
    assert "--recent-nelarabine LEVEL a nelarabine course in the 4 weeks before onset: no, yes, unknown" in helped
    shipped = run_palsy("posterior", "--help", check=True, env={"PALSY_PRIORS": str(REPO / "priors")}).stdout
    assert "--taste" not in shipped and "--recent-nelarabine" not in shipped
    # --priors alone (no PALSY_PRIORS) gives the copy's flags too, and a patient file with the new finding parses
    alone = flat(run_palsy("posterior", "--priors", str(copy), "--help", check=True).stdout)
    assert "--taste LEVEL" in alone and "--recent-nelarabine LEVEL" in alone
    from palsy.scripts.commands import common

    assert "taste" in common.flag_schema(copy).findings and "taste" not in common.flag_schema(REPO / "priors").findings
    # the rule that every node of every cause has evidence follows the schema: one cause left out fails
    cohorts = copy / "cohorts.yaml"
    text = cohorts.read_text()
    cohorts.write_text(text[:text.index("  - id: demo_taste_gbs")] + text[text.index("  - id: demo_taste_otomastoiditis"):])
    refused = run_palsy("evidence", "--priors", str(copy), env={"PALSY_CACHE": str(tmp_path / "cache")})
    assert refused.returncode == 2 and "'gbs | taste: present'" in refused.stderr and "no entry informs this node" in refused.stderr


def p_of(answer: dict, cause: str) -> float:
    """The mean posterior probability of ``cause`` in a ``--json`` answer."""
    return next(c["probability"]["mean"] for c in answer["causes"] if c["cause"] == cause)


def json_block(page: str, block_id: str) -> dict:
    """The JSON of the page's ``<script type="application/json" id=block_id>``."""
    found = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', page, re.S)
    assert found, block_id
    return json.loads(found.group(1))


@pytest.mark.heavy
def test_the_new_findings_are_fitted_answered_reported_and_taught(tmp_path):
    """Fit, answer (--json), report and interactive page of the copy, each carrying both new findings.

    Two fits of the copy at the default settings (the answer commands read those: a smaller fit is cached
    under another key), the subtype one by ``palsy teach``, whose page offers every variant: about 5 minutes
    on 2 cores."""
    import jsonschema_rs

    from palsy.scripts import json_schemas

    copy, cache = demo_copy(tmp_path), tmp_path / "cache"
    fitted = palsy(copy, cache, "fit", "--variant", "independent", "--priors", copy).stdout
    assert "divergences 0: ok" in fitted

    def answer(*flags: str) -> dict:
        return json.loads(palsy(copy, cache, "posterior", "--variant", "independent", "--priors", copy, "--json",
                                "--patient", PATIENTS / "source-000-vignette.yaml", *flags).stdout)

    both = answer("--taste", "present", "--recent-nelarabine", "yes")
    assert both["patient"]["taste"] == "present" and both["patient"]["recent_nelarabine"] == "yes"
    taste_unknown = answer("--recent-nelarabine", "yes")
    assert taste_unknown["patient"]["taste"] == "unknown"
    # Beta(2, 18) under infiltration against 0.3-0.6 under every mimic: taste disturbed lowers P(infiltration)
    assert p_of(both, "infiltration") < p_of(taste_unknown, "infiltration")
    # the multipliers raise GBS (x10) and vincristine (x1.5) only: nelarabine raises P(gbs), lowers P(infiltration)
    no_nelarabine = answer("--taste", "present", "--recent-nelarabine", "no")
    assert p_of(both, "gbs") > p_of(no_nelarabine, "gbs") and p_of(both, "infiltration") < p_of(no_nelarabine, "infiltration")
    # the published JSON Schema of the copy (built from its schema.yaml) accepts the answer
    answer_schema = json.loads(json_schemas.documents(copy)["answer.schema.json"])
    assert not [e.message for e in jsonschema_rs.validator_for(answer_schema).iter_errors(both)]

    patient = tmp_path / "demo-taste-nelarabine.yaml"
    patient.write_text(DEMO_PATIENT)
    palsy(copy, cache, "report", patient, "--variant", "independent", "--priors", copy, "--format", "html",
          "--out", tmp_path / "report")
    report = html.unescape((tmp_path / "report" / "demo-taste-nelarabine.html").read_text())
    for words in ("Taste (front two-thirds of the tongue)", "taste disturbed on the front of the tongue, side of the palsy",
                  "Nelarabine in the 4 weeks before onset", "a nelarabine course in the 4 weeks before onset"):
        assert words in report, words

    palsy(copy, cache, "teach", "--no-pdf", "--variant", "independent", "--priors", copy, "--out", tmp_path / "teach")
    page = (tmp_path / "teach" / "interactive.html").read_text()
    for name in ("taste", "recent_nelarabine"):
        assert f'<select id="f-{name}"' in page, name
    data = json_block(page, "palsy-data")
    assert data["labels"]["findings"]["taste"]["label"] == "Taste (front two-thirds of the tongue)"
    assert data["labels"]["findings"]["recent_nelarabine"]["levels"]["yes"] == "a nelarabine course in the 4 weeks before onset"
    for variant in ("independent", "subtype"):
        tables = json_block(page, f"palsy-model-{variant}")
        assert {"taste|absent", "taste|present"} <= set(tables["levels"]), variant
        axis = tables["context"].index("recent_nelarabine")
        assert tables["context_levels"][axis] == ["no", "yes"]
        assert tables["n_strata"] == math.prod(len(levels) for levels in tables["context_levels"])
    assert "Taste (front two-thirds of the tongue)" in html.unescape((tmp_path / "teach" / "lesson.html").read_text())

"""A coded result (CSF cytology and flow, a finding row's value) as model/fhir.py reads it: the value is the result,
its interpretation read with it, and alone only when there is no value in words. Every combination of a value and an
interpretation is mapped through a whole bundle and checked against what the codes say; the case that made the rule
(a cytology written "POSITIVE for malignant cells" and flagged NEG, read negative until 6 December) is checked to the
card's note and the command's answer."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys

import pytest

from palsy.model import fhir as X
from palsy.model import findings as F
from tests.test_fhir import ONSET, SCT, _bundle, _lab, _palsy

pytestmark = pytest.mark.xdist_group("fhir")

LP_DAY = ONSET + dt.timedelta(days=1)
TODAY = dt.date(2026, 1, 1)
LOINC = "http://loinc.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

#: values a laboratory sends, and what their codes say (None: nothing palsy reads; "words": a value in words)
VALUES = {
    "none": (None, None),
    "sct positive": ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "10828004"}]}}, {"positive"}),
    "sct negative": ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009"}]}}, {"negative"}),
    "sct detected": ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260373001"}]}}, {"positive"}),
    "sct not detected": ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "260415000"}]}}, {"negative"}),
    "loinc positive": ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6576-8"}]}}, {"positive"}),
    "loinc negative": ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA6577-6"}]}}, {"negative"}),
    "loinc detected": ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA11882-0"}]}}, {"positive"}),
    "loinc not detected": ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA11883-8"}]}},
                           {"negative"}),
    "two codes disagree": ({"valueCodeableConcept": {"coding": [{"system": SCT, "code": "10828004"},
                                                                {"system": LOINC, "code": "LA11883-8"}]}},
                           {"positive", "negative"}),
    "text concept": ({"valueCodeableConcept": {"text": "POSITIVE for malignant cells"}}, "words"),
    "string": ({"valueString": "Negative"}, "words"),
    "unknown code": ({"valueCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3", "code": "ATYP"}]}}, "words"),
    # values palsy does not read as a result either: the flag beside them is not read alone (0.8% leukaemic events
    # flagged NEG under a laboratory's reporting threshold is blasts in the CSF)
    "quantity": ({"valueQuantity": {"value": 0.8, "unit": "%"}}, "words"),
    "boolean": ({"valueBoolean": True}, "words"),
    "integer": ({"valueInteger": 25}, "words"),
}
#: each flag's codes, and what they say (normal and abnormal are read only against a value)
FLAGS = {"none": [], "POS": ["POS"], "NEG": ["NEG"], "DET": ["DET"], "ND": ["ND"], "A": ["A"], "AA": ["AA"], "N": ["N"],
         "H": ["H"], "POS and NEG": ["POS", "NEG"]}
SAYS = {"POS": "positive", "DET": "positive", "NEG": "negative", "ND": "negative", "A": "abnormal", "AA": "abnormal",
        "N": "normal"}
INTERPRETATIONS = {name: {SAYS[c] for c in codes if c in SAYS} for name, codes in FLAGS.items()}
#: what a read result is contradicted by
AGAINST = {"positive": {"negative", "normal"}, "negative": {"positive", "abnormal"}}


def _interpretation(name: str) -> dict:
    codes = FLAGS[name]
    return {"interpretation": [{"coding": [{"system": INTERPRETATION, "code": c}]} for c in codes]} if codes else {}


def _cytology(value: str, interpretation: str, method: str = "csf-cytology") -> dict:
    r = _lab(method, LP_DAY, system="urn:palsy:code", **_interpretation(interpretation))
    r.update(VALUES[value][0] or {})
    return r


def _read(table, *resources) -> tuple[list, X.FhirMapping]:
    m = X.map_bundle(_bundle(_palsy(), *resources), table, today=TODAY)
    return F.parse_patient(m.patient, "fhir").csf, m


@pytest.fixture(scope="module")
def table():
    return X.load_table()


@pytest.mark.parametrize("value,interpretation", list(itertools.product(VALUES, INTERPRETATIONS)))
def test_a_result_is_read_only_where_every_code_agrees_and_never_from_a_flag_beside_words(value, interpretation, table):
    said_by_value = VALUES[value][1]
    said_by_flag = INTERPRETATIONS[interpretation]
    lps, m = _read(table, _cytology(value, interpretation))
    read = lps[0].result("cytology") if lps else None
    said = (set() if said_by_value in (None, "words") else said_by_value) | said_by_flag
    if read is not None:
        # never against a code: the value or the flag says it, and nothing the record carries contradicts it
        assert read in said and not said & AGAINST[read]
        # never from the flag where the value is one palsy does not read
        assert said_by_value != "words"
    else:
        assert not lps and any("its cytology result cannot be read" in n and "left out" in n for n in m.notes) or (
            said_by_value is None and not said_by_flag)
    # what must be read is read: a value's one code nothing contradicts; a flag alone where there is no value
    if isinstance(said_by_value, set) and len(said_by_value) == 1:
        (v,) = said_by_value
        assert (read == v) == (not said & AGAINST[v])
    if said_by_value is None and len(said_by_flag & {"positive", "negative"}) == 1 and not any(
            said & AGAINST[r] for r in said & {"positive", "negative"}):
        assert read == next(iter(said_by_flag & {"positive", "negative"}))


def test_a_cytology_written_positive_and_flagged_negative_is_not_read_negative_beside_a_coded_flow(table):
    """The case that made the rule: the flow's coded negative stands and the LP is read from it alone, and the note
    says that the cytology was not read and what to do (the JSON's ignored list says why)."""
    lps, m = _read(table, _cytology("text concept", "NEG"), _cytology("sct negative", "none", method="csf-flow"))
    assert [(lp.result("cytology"), lp.result("flow")) for lp in lps] == [(None, "negative")]
    note = next(n for n in m.notes if "its cytology result cannot be read" in n)
    assert "the LP is read from its flow alone" in note and "read the report and enter its cytology" in note
    assert "interpretation alone is not read" in note
    assert any(i["code"] == "csf_cytology" and "interpretation" in i["why"] for i in m.ignored)


def test_a_value_and_a_flag_that_disagree_are_named_in_the_note(table):
    _, m = _read(table, _cytology("sct negative", "POS"))
    assert any("its value says negative, its interpretation positive" in n for n in m.notes)


def test_a_finding_row_is_not_read_present_from_its_flag_beside_words(table):
    """A lineage Observation: only a value that says present (or none at all) sets the finding; text flagged POS
    does not (it had been read as present)."""
    lineage = {"resourceType": "Observation", "status": "final", "effectiveDateTime": LP_DAY.isoformat(),
               "code": {"coding": [{"system": SCT, "code": "277571004"}]}}
    assert X.map_bundle(_bundle(_palsy(), lineage), table, today=TODAY).patient.get("lineage") == "B-ALL"
    flagged = {**lineage, "valueString": "not B-ALL: see report", **_interpretation("POS")}
    m = X.map_bundle(_bundle(_palsy(), flagged), table, today=TODAY)
    assert "lineage" not in m.patient and any(i["resource"].endswith("r1") for i in m.ignored)


def test_the_command_reads_the_case_as_the_mapping_does(table, tmp_path):
    """palsy posterior --fhir on the case: exit 0, the note on stderr, no LP in the answer's patient."""
    path = tmp_path / "case.json"
    path.write_text(json.dumps(_bundle(_palsy(), _cytology("text concept", "NEG"))))
    done = subprocess.run([sys.executable, "-m", "palsy.scripts.palsy", "posterior", "--fhir", str(path), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "its cytology result cannot be read" in done.stderr and "Traceback" not in done.stderr
    out = json.loads(done.stdout)
    assert not out["patient"].get("csf") and any(i["code"] == "csf_cytology" for i in out["fhir"]["ignored"])

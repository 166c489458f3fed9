"""The published JSON Schemas (docs/schemas/): committed as the script writes them, the example patients and
answers valid against them, and the patient schema accepting exactly what the patient parser accepts."""

from __future__ import annotations

import json
import string

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC
from palsy.model.file_models import published as P
from palsy.scripts import json_schemas
from tests.conftest import PATIENTS, REPO

SCHEMAS = REPO / "docs" / "schemas"
SC0 = SC.default()
EXAMPLES = sorted(PATIENTS.glob("*.yaml")) + sorted((REPO / "tests" / "fixtures" / "vignettes").glob("*.yaml"))


def example(path) -> dict:
    """A patient file, or a vignette's ``patient``."""
    doc = Y.load(path) or {}
    return doc["patient"] if isinstance(doc.get("patient"), dict) else doc


@pytest.fixture(scope="module")
def patient_validator():
    return jsonschema_rs.validator_for(json.loads((SCHEMAS / "patient.schema.json").read_text()))


@pytest.fixture(scope="module")
def answer_validator():
    return jsonschema_rs.validator_for(json.loads((SCHEMAS / "answer.schema.json").read_text()))


def test_committed_schemas_are_what_the_script_writes(tmp_path):
    assert json_schemas.main(["--check"]) == 0, "run: python -m palsy.scripts.json_schemas"
    # the check can fail: a stale file is found
    (tmp_path / "patient.schema.json").write_text("{}\n")
    (tmp_path / "answer.schema.json").write_text((SCHEMAS / "answer.schema.json").read_text())
    assert json_schemas.main(["--check", "--out", str(tmp_path)]) == 1


def test_schemas_carry_the_schema_version():
    for name in json_schemas.NAMES:
        doc = json.loads((SCHEMAS / name).read_text())
        assert doc["schema_version"] == SC0.version and str(SC0.version) in doc["$id"]
    answer = json.loads((SCHEMAS / "answer.schema.json").read_text())
    assert answer["properties"]["schema_version"]["const"] == SC0.version
    assert "schema_version" in answer["required"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_patients_are_valid_patient_files(path, patient_validator):
    doc = example(path)
    F.parse_patient(doc, str(path))  # the parser reads it ...
    assert patient_validator.is_valid(doc), list(patient_validator.iter_errors(doc))[:3]  # ... and so does the schema


#: The source patient answered by the command (the others through the Python API: one process each is slow).
COMMAND_PATIENT = "source-001.yaml"


@pytest.fixture(scope="module")
def draws(request):
    """The default variant's draws from the session cache (numpy only), fitted if the cache is cold."""
    from palsy.model import cache as C
    from palsy.model import draws as D
    from palsy.model.evidence import evidence_hash

    path = C.folder(evidence_hash(REPO / "priors"), "subtype", C.Settings()) / "draws.npz"
    return D.load(path) if path.exists() else request.getfixturevalue("draws_subtype")


def test_answers_of_the_example_patients_are_valid_answers(draws, answer_validator):
    """Every source patient's answer (the Python API, as ``--json`` prints it; source-001 is answered by the
    command below) is valid, carries ``schema_version``, and the answer schema refuses what it must not be."""
    from palsy.model import answer as A
    from palsy.model import decision, guidance

    priors = REPO / "priors"
    settings_, actions = decision.load(priors, draws.causes), guidance.load(priors, draws.causes, draws.schema)
    tables = A.Tables(draws)
    for path in sorted(p for p in PATIENTS.glob("*.yaml") if p.name != COMMAND_PATIENT):
        patient = F.parse_patient(Y.load(path), str(path), schema=draws.schema)
        d = json.loads(A.answer(patient, draws, tables=tables, decision_settings=settings_, guidance=actions).to_json())
        assert d["schema_version"] == SC0.version
        assert answer_validator.is_valid(d), (path.name, [e.message for e in answer_validator.iter_errors(d)][:3])
        assert P.answer_model(draws.schema).model_validate(d)
    for broken in ({**d, "extra": 1}, {**d, "schema_version": 2}, {k: v for k, v in d.items() if k != "probability"},
                   {**d, "patient": {**d["patient"], "lineage": "T-CLL"}}):
        assert not answer_validator.is_valid(broken)


def test_posterior_json_output_is_a_valid_answer_and_needs_no_pydantic(draws, answer_validator):
    """One real ``palsy posterior --json`` (a subprocess): valid against the schema; the answer path, its
    files validated once, imports no pydantic (``-X importtime``)."""
    import subprocess
    import sys

    from palsy.model import decision, guidance

    guidance.load(REPO / "priors", draws.causes, draws.schema)  # validated and recorded in this cache
    decision.load(REPO / "priors", draws.causes)
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "palsy.scripts.palsy", "posterior", "--patient",
                        str(PATIENTS / COMMAND_PATIENT), "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert answer_validator.is_valid(d), [e.message for e in answer_validator.iter_errors(d)][:3]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "palsy.model.answer" in imported and not {m for m in imported if m.split(".")[0] == "pydantic"}


# --- the patient schema accepts exactly what the parser accepts -----------------------------------------------

def _parses(doc) -> bool:
    try:
        F.parse_patient(doc, "fuzz")
    except F.InputError:
        return False
    return True


LP = SC0.lp
KEYS = ["id", "description", *SC0.findings]
WORDS = sorted({lv for n in SC0.categorical for lv in SC0.allowed(n)} | set(LP.methods) | set(LP.results)
               | set(LP.traumatic) | {"unknown", "result", "method", "traumatic", "yes", "no"})
#: Spellings of unknown the parser takes (any case, any white space str.strip() removes; the Kelvin sign is a k).
UNKNOWNS = ["unknown", "UNKNOWN", " Unknown\t", "\u3000unknown\x1c", "un\u212anown", "unknown\n", "un known", "unknow"]
white = st.sampled_from(["", " ", "  ", "\t", "\u00a0", "\u2003", "\x1f", "\u200b"])
word = st.one_of(st.sampled_from(WORDS + UNKNOWNS), st.text(string.ascii_letters + "_-", max_size=8))
scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False), word)


@st.composite
def lp_text(draw):
    """An LP as text, well or badly formed: key=value pairs in any order (white space, repeats, unknown keys)."""
    keys = draw(st.lists(st.sampled_from([*LP.methods, "traumatic", "result", "method", "x"]), min_size=1, max_size=4))
    parts = [f"{draw(white)}{k}{draw(white)}={draw(white)}{draw(word)}{draw(white)}" for k in keys]
    text = ",".join(parts) if draw(st.booleans()) else f"{draw(white)}{draw(word)}{draw(white)}:{draw(white)}{draw(word)}"
    return text + draw(st.sampled_from(["", "", ",", "=", ":x"]))


lp_map = st.dictionaries(st.sampled_from([*LP.methods, "traumatic", "result", "method", "x"]),
                         st.one_of(st.sampled_from([*LP.results, *LP.methods, *LP.traumatic, *UNKNOWNS]), scalar),
                         max_size=4)
lp_item = st.one_of(lp_map, lp_text(), scalar)
values = st.one_of(scalar, st.lists(lp_item, max_size=LP.max_lps + 2), lp_map,
                   st.lists(scalar, max_size=2))


def _examples() -> list[dict]:
    return [example(p) for p in EXAMPLES]


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(_examples()), key=st.one_of(st.sampled_from(KEYS), st.sampled_from(["ids", "lineage2", "x"])),
       value=values)
def test_schema_and_parser_agree_on_mutated_patients(patient_validator, base, key, value):
    doc = {**base, key: value}
    assert _parses(doc) == patient_validator.is_valid(doc), (doc, list(patient_validator.iter_errors(doc))[:2])


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lps=st.lists(lp_item, max_size=3), extra=st.sampled_from([{}, {"circulating_blasts": "present"}]))
def test_schema_and_parser_agree_on_lps(patient_validator, lps, extra):
    doc = {"csf": lps, **extra}
    assert _parses(doc) == patient_validator.is_valid(doc), (doc, list(patient_validator.iter_errors(doc))[:2])


@pytest.mark.parametrize("doc, ok", [
    ({"lineage": " Unknown\u3000"}, True), ({"lineage": "un\u212anown"}, True), ({"lineage": "unknow"}, False),
    ({"recent_vincristine": True}, True), ({"vesicles": True}, False), ({"remission": "at_diagnosis"}, True),
    ({"csf": [{"cytology": "negative"}] * LP.max_lps}, True), ({"csf": [{"cytology": "negative"}] * (LP.max_lps + 1)}, False),
    ({"csf": [" flow = positive , cytology=UNKNOWN "]}, True), ({"csf": ["flow=unknown"]}, False),
    ({"csf": ["flow=positive,flow=negative"]}, False), ({"csf": ["method=flow , result=negative"]}, True),
    ({"csf": ["negative : flow"]}, True), ({"csf": ["negative:flow:x"]}, False), ({"csf": [{"result": "negative"}]}, False),
    ({"csf": [{"cytology": "positive", "traumatic": True}]}, True), ({"csf": [{"cytology": True}]}, False),
    ({"id": 5}, False), ({"id": None, "description": None}, True), ({"lineage": "T-ALL", "lineag": "T-ALL"}, False),
])
def test_schema_and_parser_agree_on_the_edges(patient_validator, doc, ok):
    """The parser's edges, each read the same by both (a positive and a negative control of each rule)."""
    assert _parses(doc) is ok and patient_validator.is_valid(doc) is ok

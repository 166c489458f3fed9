"""Issue 9: fuzzing the patient parser and the evidence loader (hypothesis).

Random YAML text and random mutations of the valid patient files and of the fixture evidence: the
only outcomes allowed are a result whose meaning is exactly what was written, or the error that
means bad input (exit status 2). Never another exception (a traceback, exit status 1), never a
silent change of meaning (a key given twice, a string read as a list of characters, ...).
"""

from __future__ import annotations

import copy
import shutil
import string

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from palsy.model import evidence as E
from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model import schema as SC
from palsy.scripts.commands import common
from tests.conftest import FIXTURE_EVIDENCE, PATIENTS, run_palsy

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: Each example loads and validates a whole evidence folder (about 0.3 s): fewer examples (the suite's budget)
EVIDENCE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SCHEMA = SC.default()
FINDINGS = tuple(SCHEMA.findings)
LP_NAME = SCHEMA.lp.name
PATIENT_DOCS = {p.name: yaml.safe_load(p.read_text()) for p in sorted(PATIENTS.glob("*.yaml"))}
EVIDENCE_DOCS = {name: yaml.safe_load((FIXTURE_EVIDENCE / name).read_text()) for name in E.FILES}

# values a hostile or careless file may hold where text is expected
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["unknown", "yes", "no", "T-ALL", "negative:cytology", "", "case_a",
                                           "fixture2020", "\x1b[2J", "a\nb"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=10)
yaml_chars = st.text(alphabet=string.printable + "&*!|>%@`'\"{}[]:-?,#\u00e9\u202e", max_size=300)
# values pyyaml's constructors fail on: explicit tags over random text, dates that do not exist
tagged = st.builds(lambda key, tag, v: f"{key}: !!{tag} {v}\n",
                   st.sampled_from(["id", "lineage", "csf", "x"]),
                   st.sampled_from(["float", "int", "timestamp", "binary", "set", "omap", "pairs", "bool", "null",
                                    "str", "map", "seq", "merge", "value", "python/object:os.system"]),
                   st.one_of(st.text(alphabet=string.ascii_letters + string.digits + "-:.{}[], ", max_size=15),
                             st.builds("{}-{}-{}".format, st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99))))


def parse_patient_text(text: str, source: str = "p.yaml"):
    """What ``palsy posterior --patient`` does before it needs a posterior; returns the patient or
    None for an error that exits 2. Anything else propagates and fails the test."""
    try:
        data = Y.loads(text, source)
        if data is not None and not isinstance(data, dict):
            raise F.InputError(["not a mapping"], source)
        return F.parse_patient(data, source)
    except (F.InputError, Y.YAMLInputError):
        return None


def expected_value(name: str, raw):
    raw = SCHEMA.as_level(name, raw)
    if raw is None or (isinstance(raw, str) and raw.strip().lower() == SC.UNKNOWN):
        return None
    return raw


def assert_means_what_was_written(patient: F.Patient, doc: dict) -> None:
    for name in FINDINGS:
        if name == LP_NAME:
            continue
        assert patient.values.get(name) == expected_value(name, doc.get(name)), name
    for key in ("id", "description"):
        if isinstance(doc.get(key), str):
            assert getattr(patient, key) == doc[key]


# --- the patient parser --------------------------------------------------------------------------------

@FAST
@given(text=st.one_of(yaml_chars, tagged, st.builds(str.__add__, tagged, yaml_chars)))
def test_random_yaml_text_never_crashes_the_patient_parser(text):
    parse_patient_text(text)


@FAST
@given(name=st.sampled_from(sorted(PATIENT_DOCS)), key=st.sampled_from(["id", "description", *FINDINGS, "age"]),
       value=values, drop=st.booleans())
def test_mutated_patient_means_what_it_says_or_is_refused(name, key, value, drop):
    doc = copy.deepcopy(PATIENT_DOCS[name])
    if drop:
        doc.pop(key, None)
    else:
        doc[key] = value
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    patient = parse_patient_text(text)
    if patient is not None:
        assert_means_what_was_written(patient, yaml.safe_load(text))


@FAST
@given(name=st.sampled_from(sorted(PATIENT_DOCS)), data=st.data())
def test_a_line_given_twice_is_refused_never_silently_taken(name, data):
    """Duplicating a top-level ``key: value`` line, with another value or the same, is an error."""
    text = (PATIENTS / name).read_text()
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if line[:1].isalpha() and ":" in line]
    i = data.draw(st.sampled_from(keyed))
    key = lines[i].split(":", 1)[0]
    other = data.draw(st.sampled_from(["unknown", "bilateral", "T-ALL", "'x'", lines[i].split(":", 1)[1].strip() or "x"]))
    mutated = "\n".join([*lines, f"{key}: {other}"]) + "\n"
    with pytest.raises(Y.YAMLInputError, match="twice"):
        Y.loads(mutated, name)


@FAST
@given(text=yaml_chars, cut=st.integers(0, 3000))
def test_truncated_and_spliced_patient_files_never_crash(text, cut):
    original = (PATIENTS / "source-002.yaml").read_text()
    parse_patient_text(original[:cut] + text)


@FAST
@given(data=st.binary(max_size=200))
def test_random_bytes_never_crash(tmp_path_factory, data):
    f = tmp_path_factory.mktemp("bytes") / "p.yaml"
    f.write_bytes(data)
    try:
        F.parse_patient(common.read_patient_file(f), str(f))
    except F.InputError as exc:
        assert str(f) in str(exc)


lp_values = st.one_of(values, st.sampled_from([*SCHEMA.lp.results, *SCHEMA.lp.traumatic, "unknown", True, False]))
lp_keys = st.sampled_from([*SCHEMA.lp.methods, "traumatic", "result", "method", "cytologie", "Flow"])


@FAST
@given(lps=st.lists(st.one_of(st.dictionaries(lp_keys, lp_values, max_size=4),
                              st.builds(lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
                                        st.dictionaries(lp_keys, st.text(max_size=8), max_size=3)),
                              values), max_size=SCHEMA.lp.max_lps + 2))
@example(lps=["negative:cytology"])  # version 2's result:method, which a CI run drew (the oracle had read only k=v)
def test_fuzzed_lps_mean_what_they_say_or_are_refused(lps):
    """Every LP read is exactly what was written (each method's result, the tap), in order; else the whole
    patient is refused with a message naming the LP."""
    try:
        patient = F.parse_patient({LP_NAME: lps}, "p.yaml")
    except F.InputError as exc:
        assert "p.yaml" in str(exc) and LP_NAME in str(exc)
        return
    assert len(patient.csf) == len(lps) and len(lps) <= SCHEMA.lp.max_lps
    for lp, raw in zip(patient.csf, lps, strict=True):
        if isinstance(raw, str) and "=" not in raw:  # version 2's result:method (e.g. negative:flow)
            result, method = (part.strip() for part in raw.split(":"))
            raw = {"result": result, "method": method}
        elif isinstance(raw, str):
            raw = dict(part.split("=", 1) for part in raw.split(","))
            raw = {k.strip(): v.strip() for k, v in raw.items()}
        assert isinstance(raw, dict)
        if "result" in raw or "method" in raw:
            assert lp.results == ((raw["method"], raw["result"]),)
        else:
            assert lp.results == tuple((m, raw[m]) for m in SCHEMA.lp.methods
                                       if raw.get(m) is not None and raw.get(m) != SC.UNKNOWN)
        tap = raw.get("traumatic")
        tap = {True: "yes", False: "no"}.get(tap, tap) if isinstance(tap, bool) else tap
        assert lp.traumatic == (None if tap in (None, SC.UNKNOWN) else tap)
        assert F.parse_lp(lp.code, "again")[0] == lp  # the command line's form reads back the same LP


# --- the evidence loader -------------------------------------------------------------------------------

def _paths(node, prefix=()):
    """Every (path, value) in a document, containers included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


EVIDENCE_PATHS = [(name, path) for name, doc in EVIDENCE_DOCS.items() for path, _ in _paths(doc) if path]


def _set(doc, path, value):
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _as_ids(written):
    """What a list-of-ids field means: a lone string is one id."""
    if written is None:
        return ()
    return (written,) if isinstance(written, str) else tuple(written)


@pytest.fixture(scope="module")
def evidence_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-evidence") / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    return d


@EVIDENCE
@given(where=st.sampled_from(EVIDENCE_PATHS), value=values)
def test_mutated_evidence_loads_as_written_or_is_refused(evidence_dir, where, value):
    name, path = where
    docs = copy.deepcopy(EVIDENCE_DOCS)
    _set(docs[name], path, value)
    try:
        text = yaml.safe_dump(docs[name], allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    for n in E.FILES:
        (evidence_dir / n).write_text(text if n == name else yaml.safe_dump(EVIDENCE_DOCS[n]))
    try:
        ev = E.load(evidence_dir)
    except E.EvidenceError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)
        assert len(str(exc)) < 20_000
        return
    # loaded: the list-of-ids fields mean exactly what was written (no characters, no coercion)
    written = yaml.safe_load(text) if name in ("cases.yaml", "cohorts.yaml") else None
    if name == "cases.yaml":
        for case, raw in zip(ev.cases, written["cases"], strict=True):
            assert case.also_known_as == _as_ids(raw.get("also_known_as")) and case.id == raw["id"]
            assert (case.ref,) == _as_ids(raw.get("ref"))[:1]
    if name == "cohorts.yaml":
        raw_by_id = {e["id"]: e for e in written["entries"]}
        for e in ev.entries:
            raw = raw_by_id[e.id]
            assert e.tabulates_cases == _as_ids(raw.get("tabulates_cases"))
            assert e.refs == _as_ids(raw.get("ref"))


@EVIDENCE
@given(name=st.sampled_from(E.FILES), text=st.one_of(yaml_chars, tagged))
def test_random_text_as_an_evidence_file_never_crashes(evidence_dir, name, text):
    for n in E.FILES:
        (evidence_dir / n).write_text(text if n == name else yaml.safe_dump(EVIDENCE_DOCS[n]))
    try:
        E.load(evidence_dir)
    except E.EvidenceError:
        pass


# --- the whole command (slower: one process per example) ------------------------------------------------

@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(EVIDENCE_PATHS), value=values)
def test_command_on_mutated_evidence_exits_0_or_2(tmp_path_factory, where, value):
    name, path = where
    docs = copy.deepcopy(EVIDENCE_DOCS)
    _set(docs[name], path, value)
    d = tmp_path_factory.mktemp("cmd-evidence")
    for n in E.FILES:
        (d / n).write_text(yaml.safe_dump(docs[n], allow_unicode=True))
    r = run_palsy("evidence", "--priors", str(d), timeout=120)
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(PATIENT_DOCS)), key=st.sampled_from(["id", "description", *FINDINGS]),
       value=values)
def test_command_on_mutated_patient_exits_0_or_2_and_answers_what_was_written(palsy, tmp_path_factory, name, key, value):
    import json

    doc = copy.deepcopy(PATIENT_DOCS[name])
    doc[key] = value
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    f = tmp_path_factory.mktemp("cmd-patient") / "p.yaml"
    f.write_text(text)
    r = palsy("posterior", "--patient", str(f), "--json")
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
    if r.returncode == 0:
        answered = json.loads(r.stdout)["patient"]
        written = yaml.safe_load(text)
        for finding in FINDINGS:
            if finding != LP_NAME:
                assert (answered[finding] if answered[finding] != SC.UNKNOWN else None) == \
                    expected_value(finding, written.get(finding)), finding

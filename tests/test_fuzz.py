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


def is_unknown(raw) -> bool:
    """``unknown`` in any case, with spaces around it, or null: not known, marginalised (never negative)."""
    return raw is None or (isinstance(raw, str) and raw.strip().lower() == SC.UNKNOWN)


def expected_lp(raw) -> F.LP | None:
    """What one written LP means, or None when it must be refused. Forms: ``{cytology, flow, traumatic}``
    (each may be missing or unknown, at least one result known), the command line's ``cytology=...,flow=...``
    (spaces around keys and values are dropped; a key given twice is refused), and version 2's
    ``{result, method[, traumatic]}``, ``result=...,method=...`` and ``"result:method"``."""
    spec = SCHEMA.lp
    if isinstance(raw, str):
        text = raw.strip()
        if "=" in text:
            parts = [part.partition("=") for part in text.split(",")]
            keys = [k.strip() for k, _, _ in parts]
            if not all(sep for _, sep, _ in parts) or not all(keys) or len(set(keys)) != len(keys):
                return None
            raw = {k.strip(): v.strip() for k, _, v in parts}
        elif text.count(":") == 1:
            result, method = (part.strip() for part in text.split(":"))
            raw = {"result": result, "method": method}
        else:
            return None
    if not isinstance(raw, dict):
        return None
    tap = raw.get("traumatic")
    tap = ("yes" if tap else "no") if isinstance(tap, bool) else tap  # YAML's unquoted yes/no
    if is_unknown(tap):
        tap = None
    elif tap not in spec.traumatic:
        return None
    if "result" in raw or "method" in raw:  # version 2: one method, its result known
        if set(raw) - {"result", "method", "traumatic"}:
            return None
        if raw.get("result") not in spec.results or raw.get("method") not in spec.methods:
            return None
        return F.LP(((raw["method"], raw["result"]),), tap)
    if set(raw) - {*spec.methods, "traumatic"}:
        return None
    results = []
    for m in spec.methods:
        if is_unknown(raw.get(m)):
            continue
        if raw[m] not in spec.results:
            return None
        results.append((m, raw[m]))
    return F.LP(tuple(results), tap) if results else None  # no result known: not an LP yet, refused


def expected_csf(raw) -> tuple[F.LP, ...] | None:
    """What a written list of LPs means, or None when it must be refused (as a whole)."""
    if is_unknown(raw):
        return ()
    if not isinstance(raw, list) or len(raw) > SCHEMA.lp.max_lps:
        return None
    lps = tuple(expected_lp(item) for item in raw)
    return None if any(lp is None for lp in lps) else lps


def expected_patient(doc) -> dict | None:
    """What a written patient means (``id``, ``description``, each finding's level or None, the LPs), or
    None when it must be refused: a key that is not a finding, a level the finding does not have (a
    patient may give a patient-only level such as ``at_diagnosis``, not a partly known one such as
    ``ALL``), an id or description that is not text. Only the yes/no findings read YAML's booleans as yes/no."""
    doc = {} if doc is None else doc
    if not isinstance(doc, dict) or set(doc) - {"id", "description", *FINDINGS}:
        return None
    out: dict = {}
    for key, default in (("id", "patient"), ("description", "")):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            return None
        out[key] = default if value is None else value
    for name in FINDINGS:
        raw = doc.get(name)
        if name == LP_NAME:
            out[name] = expected_csf(raw)
            if out[name] is None:
                return None
            continue
        if isinstance(raw, bool) and SCHEMA.levels[name] == ("no", "yes"):
            raw = "yes" if raw else "no"
        if is_unknown(raw):
            out[name] = None
        elif isinstance(raw, str) and raw in (*SCHEMA.levels[name], *SCHEMA.by_name[name].patient_only):
            out[name] = raw
        else:
            return None
    return out


def assert_means_what_was_written(patient: F.Patient, doc: dict) -> None:
    expected = expected_patient(doc)
    assert expected is not None, f"accepted {doc!r}, which must be refused"
    assert (patient.id, patient.description) == (expected["id"], expected["description"])
    assert patient.csf == expected[LP_NAME]
    for name in SCHEMA.categorical:
        value = expected[name]
        assert patient.values[name] == value, name
        stand_in = SCHEMA.by_name[name].patient_only.get(value, {}).get("answered_as", value)
        assert patient.level(name) == stand_in, name  # at_diagnosis is computed as the level it stands for


# --- the patient parser --------------------------------------------------------------------------------

@FAST
@given(text=st.one_of(yaml_chars, tagged, st.builds(str.__add__, tagged, yaml_chars)))
def test_random_yaml_text_never_crashes_the_patient_parser(text):
    parse_patient_text(text)


#: Words a finding may be given as, and near misses: every level (the patient-only ones too), the partly known
#: levels (evidence only), unknown in other cases and spaces, levels in another case or with spaces.
level_words = st.sampled_from(sorted({
    *(lv for n in SCHEMA.categorical for lv in (*SCHEMA.allowed(n), *SCHEMA.partial.get(n, {}))),
    "Unknown", "UNKNOWN", " unknown ", "Yes", "NO", " yes", "bilateral ", "At_diagnosis"}))


@FAST
@given(name=st.sampled_from(sorted(PATIENT_DOCS)), key=st.sampled_from(["id", "description", *FINDINGS, "age"]),
       value=st.one_of(values, level_words), drop=st.booleans())
@example(name="source-001.yaml", key="remission", value="at_diagnosis", drop=False)  # patient-only level
@example(name="source-001.yaml", key="remission", value="in_remission", drop=False)  # partly known: refused
@example(name="source-001.yaml", key="recent_vincristine", value=True, drop=False)  # unquoted yes
@example(name="source-001.yaml", key="laterality", value=True, drop=False)  # a boolean, not yes/no: refused
@example(name="source-001.yaml", key="laterality", value=" Unknown ", drop=False)
@example(name="source-001.yaml", key="laterality", value="bilateral ", drop=False)  # levels are exact: refused
@example(name="source-001.yaml", key="age", value="adult", drop=False)  # not a finding: refused
@example(name="source-001.yaml", key="id", value=7, drop=False)  # not text: refused
@example(name="source-001.yaml", key="id", value=None, drop=False)
@example(name="source-001.yaml", key=LP_NAME, value="Unknown", drop=False)
@example(name="source-001.yaml", key=LP_NAME, value=[{"cytology": "UNKNOWN", "flow": "negative"}], drop=False)
def test_mutated_patient_means_what_it_says_or_is_refused(name, key, value, drop):
    """A mutated patient file is read as exactly what it says when it is valid, and refused when it is not."""
    doc = copy.deepcopy(PATIENT_DOCS[name])
    if drop:
        doc.pop(key, None)
    else:
        doc[key] = value
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    written = yaml.safe_load(text)
    patient = parse_patient_text(text)
    if expected_patient(written) is None:
        assert patient is None, f"accepted {written!r}, which must be refused"
    else:
        assert patient is not None, f"refused {written!r}, which means {expected_patient(written)!r}"
        assert_means_what_was_written(patient, written)


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


lp_words = [*SCHEMA.lp.results, *SCHEMA.lp.traumatic, "unknown", "Unknown", " UNKNOWN ", "Negative", " positive", ""]
lp_values = st.one_of(values, st.sampled_from([*lp_words, True, False]))
lp_keys = st.sampled_from([*SCHEMA.lp.methods, "traumatic", "result", "method", "cytologie", "Flow", " flow"])
lp_texts = st.one_of(st.text(max_size=8), st.sampled_from(lp_words))


@FAST
@given(lps=st.lists(st.one_of(st.dictionaries(lp_keys, lp_values, max_size=4),
                              st.builds(lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
                                        st.dictionaries(lp_keys, lp_texts, max_size=3)),
                              st.builds(lambda r, m: f"{r}:{m}", lp_texts, lp_keys),
                              values), max_size=SCHEMA.lp.max_lps + 2))
@example(lps=["negative:cytology"])  # version 2's result:method, which a CI run drew (the oracle had read only k=v)
@example(lps=[{"cytology": "Unknown", "flow": "negative"}])  # unknown in any case is not known: left out
@example(lps=["cytology=UNKNOWN,flow=negative"])
@example(lps=[{"flow": "negative", "traumatic": " Unknown"}])  # the tap not stated
@example(lps=["result=negative,method=flow,traumatic=unknown"])  # version 2's keys in the command line's form
@example(lps=[{"result": "negative", "method": "flow", "traumatic": True}])  # unquoted yes
@example(lps=[" negative : flow ", "flow = positive , traumatic = no"])  # spaces around the parts
@example(lps=[{"cytology": "unknown", "flow": "unknown"}])  # no result known: refused
@example(lps=[{"cytology": "", "flow": "negative"}])  # empty is not unknown: refused
@example(lps=["flow=negative,flow=negative"])  # a key given twice: refused
@example(lps=[{"flow": "negative"}] * (SCHEMA.lp.max_lps + 1))  # too many: refused
def test_fuzzed_lps_mean_what_they_say_or_are_refused(lps):
    """Every LP read is exactly what was written (each method's result, the tap), in order; a list holding an
    LP that must be refused is refused whole, with a message naming the LP; a valid list is never refused."""
    expected = expected_csf(lps)
    try:
        patient = F.parse_patient({LP_NAME: lps}, "p.yaml")
    except F.InputError as exc:
        assert expected is None, f"refused {lps!r}, which means {expected!r}: {exc}"
        assert "p.yaml" in str(exc) and LP_NAME in str(exc)
        return
    assert expected is not None, f"accepted {lps!r} as {patient.csf!r}, which must be refused"
    assert patient.csf == expected
    for lp in patient.csf:
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
       value=st.one_of(values, level_words))
@example(name="source-001.yaml", key="remission", value="at_diagnosis")  # a patient-only level, answered as written
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
    expected = expected_patient(yaml.safe_load(text))
    assert (r.returncode == 2) == (expected is None), (expected, r.stderr)
    if r.returncode == 0:
        answered = json.loads(r.stdout)["patient"]
        assert (answered["id"], answered["description"]) == (expected["id"], expected["description"])
        for finding in SCHEMA.categorical:
            assert (answered[finding] if answered[finding] != SC.UNKNOWN else None) == expected[finding], finding
        assert answered[LP_NAME] == [lp.to_dict() for lp in expected[LP_NAME]]

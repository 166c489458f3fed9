"""Validation of every file of priors/ by its model and by the rules between files (issue 20 item 3).

Each rule has a test that breaks it and reads the message: the file, the entry, the field, the value and what
is allowed (a did-you-mean for a misspelt key or name); the unbroken files pass (the positive control)."""

from __future__ import annotations

import copy
import shutil
import sys

import pytest
import yaml

from palsy.model import crossref as X
from palsy.model import decision as D
from palsy.model import evidence as E
from palsy.model import findings as F
from palsy.model import guidance as G
from palsy.model import safe_yaml as Y
from tests.conftest import FIXTURE_EVIDENCE, REPO, run_palsy

PRIORS = REPO / "priors"
COMPANIONS = ("decision.yaml", "actions.yaml", "validation.yaml", "teaching_cases.yaml", "fhir_map.yaml")


def said(msg: str, *parts: str) -> None:
    """Every part is in the message (file, entry, field, value, what is allowed)."""
    missing = [p for p in parts if p not in msg]
    assert not missing, (missing, msg)


@pytest.fixture(scope="module")
def docs():
    return {name: Y.load(PRIORS / name) for name in COMPANIONS}


@pytest.fixture(scope="module")
def ctx(evidence):
    return X.context_of(evidence)


def companion(name, docs, ctx, mutate) -> str:
    """The problems of the real companion file ``name`` once ``mutate`` has changed it, as one text."""
    doc = copy.deepcopy(docs[name])
    mutate(doc)
    return "\n".join(X.companion(name, doc, PRIORS / name, ctx, {**docs, name: doc}))


def test_every_file_of_priors_is_valid(evidence, docs, ctx):
    """The positive control: the real files pass their models and every rule between them."""
    checked = set(COMPANIONS) | set(E.FILES) | set(X.OWN_LOADERS)
    assert {p.name for p in PRIORS.glob("*.yaml")} <= checked, "a file of priors/ palsy evidence does not check"
    for name in COMPANIONS:
        assert X.companion(name, docs[name], PRIORS / name, ctx, docs) == [], name
    assert X.node_coverage(evidence) == []


def _action(doc, i=0, **changes):
    doc["actions"][i].update(changes)


def _when(doc, when, i=0):
    doc["actions"][i]["when"] = when


def _vcase(doc, i=0, **changes):
    doc["cases"][i].update(changes)


def _tcase(doc, i=0, **changes):
    doc["cases"][i].update(changes)


def _exposure(doc, role="procedure"):
    """The first exposure row of ``role`` (a Procedure sets recent_hsct within recent_hsct_months)."""
    return next(r for r in doc["codes"] if r["role"] == role)


# --- unknown keys and values, in the files an answer reads ------------------------------------------------------

@pytest.mark.parametrize("name, mutate, parts", [
    # unknown keys, with a did-you-mean
    ("decision.yaml", lambda d: d["management"]["zoster"].update(benefitt=0.3), ["management", "benefitt", "did you mean 'benefit'"]),
    ("decision.yaml", lambda d: d.update(workup_txt="x"), ["entry 'workup_txt'", "did you mean 'workup_text'"]),
    ("actions.yaml", lambda d: _action(d, urgncy="care"), ["entry 'eye_protection'", "field 'urgncy'", "did you mean 'urgency'"]),
    ("actions.yaml", lambda d: _when(d, {"finding": "csf", "clean_positiv": True}),
     ["field 'when.clean_positiv'", "did you mean 'clean_positive'"]),
    ("validation.yaml", lambda d: _vcase(d, how_establised="x"), ["lucena2019_all20mo_mastoiditis", "did you mean 'how_established'"]),
    ("teaching_cases.yaml", lambda d: _tcase(d, teachng="x"), ["meqorali2025_tall21m", "did you mean 'teaching'"]),
    ("teaching_cases.yaml", lambda d: d["typical"].update(repeat=3), ["entry 'typical'", "did you mean 'repeats'"]),
    ("fhir_map.yaml", lambda d: d["codes"][0].update(displya="x"),
     ["entry 'codes[1] (http://hl7.org/fhir/sid/icd-10 G51.0)'", "field 'displya'", "did you mean 'display'"]),
    # values: the value and what is allowed
    ("decision.yaml", lambda d: d["tests"]["lp"].update(harm=-1), ["field 'tests.lp.harm'", "-1", ">= 0"]),
    ("decision.yaml", lambda d: d["benefit_treat_infiltration"].update(reasoning=""), ["reasoning", "not blank"]),
    ("decision.yaml", lambda d: d["action_text"].pop("treat"), ["field 'action_text.treat'", "missing"]),
    ("decision.yaml", lambda d: d.update(workup_text="first: {tests} now"), ["field 'workup_text'", "{tests} and {them}"]),
    ("decision.yaml", lambda d: d["tests"]["mri"].pop("workup"), ["field 'tests.mri.workup'", "missing"]),
    ("actions.yaml", lambda d: _action(d, urgency="critcal"), ["field 'urgency'", "'critcal'", "allowed: escalation, workup, care"]),
    ("actions.yaml", lambda d: _action(d, text="two\nlines"), ["field 'text'", "one line"]),
    ("actions.yaml", lambda d: _action(d, priority="high"), ["field 'priority'", "'high'", "number"]),
    ("actions.yaml", lambda d: _when(d, {"cause": "zoster", "above": 2}), ["field 'when.above'", "2", "(0, 1)"]),
    ("actions.yaml", lambda d: _when(d, {"decision": ["tret"]}), ["'tret'", "did you mean 'treat'", "no_test, test, treat"]),
    ("actions.yaml", lambda d: _when(d, "allways"), ["field 'when'", "'allways'", "not a trigger", "always"]),
    ("actions.yaml", lambda d: _when(d, {"finding": "laterality"}), ["give exactly one of in, unknown"]),
    ("validation.yaml", lambda d: _vcase(d, ref=[]), ["field 'ref'", "empty"]),
    ("teaching_cases.yaml", lambda d: d["prediction"].update(about_the_same=2), ["about_the_same", "2", "(0, 1)"]),
    ("teaching_cases.yaml", lambda d: _tcase(d, source="library"),
     ["field 'source'", "'library'", "cases.yaml, validation.yaml, teaching"]),
    ("teaching_cases.yaml", lambda d: _tcase(d, findings={"laterality": "bilateral"}), ["findings", "leave findings out"]),
    ("fhir_map.yaml", lambda d: d["codes"][0].update(role="guess"), ["codes[1]", "field 'role'", "'guess'", "allowed: palsy, finding"]),
    ("fhir_map.yaml", lambda d: d["windows"].pop("blasts_days_from_lp"), ["windows.blasts_days_from_lp", "missing"]),
    ("fhir_map.yaml", lambda d: d["windows"]["recent_hsct_months"].update(unit="weeks"),
     ["windows.recent_hsct_months.unit", "'weeks'", "days", "months"]),
    ("fhir_map.yaml", lambda d: _exposure(d).pop("window"), ["allogeneic-hsct", "a procedure row names its window"]),
])
def test_companion_files_by_their_models(docs, ctx, name, mutate, parts):
    msg = companion(name, docs, ctx, mutate)
    said(msg, str(PRIORS / name), *parts)


# --- the rules between files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, mutate, parts", [
    # actions.yaml: causes, findings, levels, LP conditions, methods and references of triggers
    ("actions.yaml", lambda d: _when(d, {"cause": "gbss", "above": 0.05}),
     ["entry 'eye_protection'", "field 'when.cause'", "'gbss' is not a cause", "did you mean 'gbs'", "allowed: infiltration"]),
    ("actions.yaml", lambda d: _when(d, {"finding": "laterallity", "in": ["bilateral"]}),
     ["field 'when.finding'", "'laterallity' is not a finding", "did you mean 'laterality'"]),
    ("actions.yaml", lambda d: _when(d, {"all": [{"not": {"finding": "mri", "in": ["mas"]}}]}),
     ["field 'when.all[1].not.in'", "'mas' is not a level of mri", "did you mean 'mass'", "allowed: normal"]),
    ("actions.yaml", lambda d: _when(d, {"finding": "vesicles", "any_positive": True}), ["only csf takes any_positive"]),
    ("actions.yaml", lambda d: _when(d, {"finding": "csf", "in": ["positive"]}), ["csf is a list of LPs"]),
    ("actions.yaml", lambda d: _when(d, {"finding": "csf", "without": "pcr"}), ["'pcr'", "allowed: cytology, flow"]),
    ("actions.yaml", lambda d: _action(d, ref=["baugh2031"]), ["field 'ref'", "'baugh2031' is not a key of references.yaml",
                                                               "did you mean 'baugh2013'"]),
    ("actions.yaml", lambda d: _action(d, 1, id=d["actions"][0]["id"]), ["duplicate action id"]),
    # decision.yaml: a harm per next test of the schema; management of causes of model.yaml
    ("decision.yaml", lambda d: d["management"].update(zostr=d["management"].pop("zoster")),
     ["field 'management.zostr'", "'zostr' is not a cause", "did you mean 'zoster'"]),
    ("decision.yaml", lambda d: d["tests"].pop("mri"), ["field 'tests.mri'", "missing", "next_tests: lp, mri"]),
    ("decision.yaml", lambda d: d["tests"].update(ct=dict(d["tests"]["mri"])), ["'ct' is not a next test", "allowed: lp, mri"]),
    # validation.yaml: causes, references, findings, partial levels, kept out of the fit
    ("validation.yaml", lambda d: _vcase(d, cause="otomastoidits"), ["'otomastoidits' is not a cause", "did you mean 'otomastoiditis'"]),
    ("validation.yaml", lambda d: _vcase(d, ref="lucena2091"), ["'lucena2091' is not a key of references.yaml"]),
    ("validation.yaml", lambda d: d["cases"][0]["findings"].update(mri="mastoid"), ["field 'findings'", "mri: 'mastoid'", "allowed"]),
    ("validation.yaml", lambda d: d["cases"][0]["partial"].update(lineage="MYELOID"), ["partial.lineage", "'MYELOID'", "allowed: ALL"]),
    ("validation.yaml", lambda d: d["cases"][0]["where"].update(eigth_nerve="x"), ["where.eigth_nerve", "did you mean 'eighth_nerve'"]),
    ("validation.yaml", lambda d: _vcase(d, id="meqorali2025_tall21m"), ["is a case of cases.yaml", "kept out of the fit"]),
    ("validation.yaml", lambda d: _vcase(d, ref="ingram1991"), ["'ingram1991' informs the fit"]),
    # teaching_cases.yaml: the cases it takes exist; its own findings parse; causes and references exist
    ("teaching_cases.yaml", lambda d: _tcase(d, id="meqorali2025_tall2m"), ["'meqorali2025_tall2m' is not a case of cases.yaml",
                                                                            "did you mean 'meqorali2025_tall21m'"]),
    ("teaching_cases.yaml", lambda d: _tcase(d, 2, id="lucena2019_all20mo"), ["is not a case of validation.yaml's cases"]),
    ("teaching_cases.yaml", lambda d: d["cases"][3]["findings"].update(laterality="both"), ["sarkar2009_lbl15m_vincristine",
                                                                                            "laterality: 'both'", "allowed"]),
    ("teaching_cases.yaml", lambda d: d["typical"].update(negative_lp={"cytology": "neg"}), ["entry 'typical'", "negative_lp",
                                                                                             "'neg'"]),
    ("teaching_cases.yaml", lambda d: _tcase(d, 4, refs=["manabe2080"]), ["field 'refs'", "'manabe2080' is not a key"]),
    ("teaching_cases.yaml", lambda d: _tcase(d, cause="bells"), ["'bells' is not a cause", "did you mean 'bell'"]),
    # fhir_map.yaml: the findings and levels its codes map to are the schema's
    ("fhir_map.yaml", lambda d: d["codes"][3].update(finding="lineag"), ["codes[4]", "'lineag' is not a finding",
                                                                          "did you mean 'lineage'"]),
    ("fhir_map.yaml", lambda d: d["codes"][4].update(level="not_in_remision"), ["field 'level'", "'not_in_remision'",
                                                                                 "did you mean 'not_in_remission'"]),
    ("fhir_map.yaml", lambda d: next(r for r in d["codes"] if r["role"] == "imaging").update(level="enhancement"),
     ["'enhancement' is not an imaging level", "allowed: normal"]),
    # ... and an exposure row's: its finding, its level and its window (declared, with its unit)
    ("fhir_map.yaml", lambda d: _exposure(d).update(finding="recent_hsc"), ["allogeneic-hsct", "'recent_hsc' is not a finding",
                                                                            "did you mean 'recent_hsct'"]),
    ("fhir_map.yaml", lambda d: _exposure(d).update(level="maybe"), ["field 'level'", "'maybe' is not a level of recent_hsct"]),
    ("fhir_map.yaml", lambda d: d["windows"].pop("recent_hsct_months"),
     ["allogeneic-hsct", "field 'window'", "'recent_hsct_months' is not a window", "allowed: recent_vincristine_days"]),
    ("fhir_map.yaml", lambda d: d["windows"]["recent_hsct_months"].pop("unit"),
     ["field 'window'", "give windows.recent_hsct_months.unit (days, months)"]),
])
def test_rules_between_files(docs, ctx, name, mutate, parts):
    msg = companion(name, docs, ctx, mutate)
    said(msg, str(PRIORS / name), *parts)


def _fixture(tmp_path, name=None, mutate=None, text=None):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    if name and mutate:
        doc = yaml.safe_load((d / name).read_text())
        mutate(doc)
        (d / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    if name and text is not None:
        (d / name).write_text(text)
    return d


@pytest.mark.parametrize("name, mutate, parts", [
    ("model.yaml", lambda d: d.update(w_cas=0.7), ["model.yaml", "entry 'w_cas'", "unknown key 'w_cas'", "did you mean 'w_case'"]),
    ("model.yaml", lambda d: d["cause_labels"].pop("zoster"), ["model.yaml", "cause_labels.zoster", "missing"]),
    ("model.yaml", lambda d: d["cause_labels"].update(flu={"label": "flu"}), ["cause_labels.flu", "'flu' is not a cause"]),
    ("model.yaml", lambda d: d.update(unknown_csf_method="pcr"), ["unknown_csf_method", "'pcr'", "allowed: cytology, flow"]),
    ("model.yaml", lambda d: d["hallmarks"]["zoster"][0].update(value="presnt"), ["hallmarks.zoster[1]", "'presnt'",
                                                                                  "did you mean 'present'"]),
    ("model.yaml", lambda d: d["hallmarks"].update(flu=[]), ["hallmarks.flu", "'flu' is not a cause"]),
    ("model.yaml", lambda d: d["synthesis"]["selection"]["nodes"][0].update(finding="lateral"),
     ["synthesis.selection.nodes[1]", "'lateral' is not a tree finding", "did you mean 'laterality'"]),
    ("model.yaml", lambda d: d["scope"].pop("central"), ["scope.central", "missing"]),
    ("model.yaml", lambda d: d.update(node_coverage="all"), ["node_coverage", "'all'", "allowed: required, partial"]),
    ("model.yaml", lambda d: d["variants"].update(differ_by=1.5), ["variants.differ_by", "1.5", "(0, 1)"]),
    ("model.yaml", lambda d: d.pop("variants"), ["model.yaml", "variants", "missing"]),
    ("references.yaml", lambda d: d["fixture2020"].update(titel="x"), ["references.yaml", "entry 'fixture2020'",
                                                                        "did you mean 'title'"]),
    ("references.yaml", lambda d: d["fixture2020"].update(year=None), ["entry 'fixture2020'", "field 'year'", "give the year"]),
    ("cases.yaml", lambda d: d["cases"][0].update(proven_bye=["mri"]), ["entry 'case_a'", "did you mean 'proven_by'"]),
    ("cases.yaml", lambda d: d["cases"][0].update(phase="during"), ["field 'phase'", "'during'", "allowed: after_diagnosis"]),
    ("cases.yaml", lambda d: d["cases"][0].update(ref="case2012"), ["'case2012' is not a key of references.yaml",
                                                                    "did you mean 'case2021'"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(levle="bilateral"), ["entry 'b_bilateral'", "did you mean 'level'"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(kind="count"), ["field 'kind'", "'count'", "did you mean 'counts'"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(cause="zostr"), ["'zostr'", "did you mean 'zoster'", "allowed: infiltration"]),
    ("rates.yaml", lambda d: d["rates"]["bell"].update(factorz={}), ["entry 'rates.bell'", "did you mean 'factors'"]),
    ("rates.yaml", lambda d: d["rates"]["bell"]["factors"]["incidence"]["lognormal"].update(factor90=0.5),
     ["entry 'rates.bell.factors.incidence'", "field 'lognormal.factor90'", "0.5", "> 1"]),
    ("rates.yaml", lambda d: d["rates"]["bell"]["factors"]["incidence"].update(ref=["fixture2002"]),
     ["'fixture2002' is not a key of references.yaml"]),
    ("rates.yaml", lambda d: d["targets"]["cumulative_relapse"].update(exclude_factors=["p_facal"]),
     ["entry 'targets.cumulative_relapse'", "field 'exclude_factors'", "'p_facal' is not a factor of infiltration",
      "allowed: p_facial, relapse_hazard"]),
    ("rates.yaml", lambda d: d["targets"]["cumulative_palsy"].pop("AML"), ["targets.cumulative_palsy.AML", "missing"]),
    ("rates.yaml", lambda d: d["window_years"].pop("AML"), ["window_years", "missing: AML"]),
    ("rates.yaml", lambda d: d["rates"].pop("vincristine"), ["entry 'rates'", "give one block for each cause"]),
    ("schema.yaml", lambda d: d["findings"][0].update(lable="x"), ["schema.yaml", "lineage", "did you mean 'label'"]),
    ("actions.yaml", lambda d: d["actions"][1]["when"].update(cause="zostr"), ["actions.yaml", "entry 'zoster_antiviral'",
                                                                               "'zostr' is not a cause"]),
    ("decision.yaml", lambda d: d["management"].update(flu=d["management"]["zoster"]), ["decision.yaml", "'flu' is not a cause"]),
])
def test_load_refuses_each_broken_file(tmp_path, name, mutate, parts):
    """:func:`palsy.model.evidence.load` (before any fit) checks every file present, companions included."""
    with pytest.raises(E.EvidenceError) as exc:
        E.load(_fixture(tmp_path, name, mutate))
    said(str(exc.value), *parts)


def test_load_lists_the_problems_of_every_file_at_once(tmp_path):
    d = _fixture(tmp_path, "model.yaml", lambda m: m.update(w_cas=0.7))
    (d / "actions.yaml").write_text((d / "actions.yaml").read_text().replace("cause: zoster", "cause: zostr"))
    with pytest.raises(E.EvidenceError) as exc:
        E.load(d)
    assert [p.split(":")[0] for p in exc.value.problems] == [str(d / "model.yaml"), str(d / "actions.yaml")]


def test_node_coverage(evidence, tmp_path):
    """Every free node parameter of every cause has evidence: an entry removed leaves its node uninformed, named
    per variant; with ``node_coverage: required`` the load refuses it (the fixture's small evidence is partial)."""
    assert X.node_coverage(evidence) == []
    missing = X.node_coverage(evidence.without_entries({"ej_onset_bell"}))
    assert missing == ["subtype: bell | onset: progressive", "independent: bell | onset: progressive"]
    assert E.load(_fixture(tmp_path)).settings.get("node_coverage") == "partial"  # the fixture says so: loads
    with pytest.raises(E.EvidenceError) as exc:
        E.load(_fixture(tmp_path / "2", "model.yaml", lambda m: m.pop("node_coverage")))  # required by default
    said(str(exc.value), "cohorts.yaml", "entry 'bell | onset: progressive'", "no entry informs this node (subtype variant)")


# --- at load: the answer's files ----------------------------------------------------------------------------------

@pytest.fixture()
def own_cache(tmp_path, monkeypatch):
    """A cache of its own, so that no record of an earlier validation is found."""
    monkeypatch.setenv("PALSY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_guidance_and_decision_check_their_rules_at_load(tmp_path, own_cache):
    from palsy.model import schema as SC

    d = _fixture(tmp_path)
    sc, causes = SC.read(d), tuple(yaml.safe_load((d / "model.yaml").read_text())["causes"])
    assert len(G.load(d, causes, sc)) == 3 and D.load(d, causes).benefit == 1  # positive control
    (d / "actions.yaml").write_text((d / "actions.yaml").read_text().replace("ref: [fixture2020]", "ref: [fixture2002]", 1)
                                    .replace("cause: zoster", "cause: zostr"))
    with pytest.raises(F.InputError) as exc:
        G.load(d, causes, sc)
    said(str(exc.value), "actions.yaml", "'fixture2002' is not a key of references.yaml", "'zostr' is not a cause")
    (d / "decision.yaml").write_text((d / "decision.yaml").read_text().replace("  mri:", "  ct:"))
    with pytest.raises(F.InputError) as exc:
        D.load(d, causes)
    said(str(exc.value), "decision.yaml", "field 'tests.mri'", "missing", "'ct' is not a next test")


def test_a_record_vouches_only_for_the_bytes_validated(tmp_path, own_cache):
    """Validated once per content: the same bytes are trusted without pydantic; changed bytes, or the same bytes
    against other causes, are validated again."""
    from palsy.model import schema as SC
    from palsy.model import validated

    d = _fixture(tmp_path)
    sc, causes = SC.read(d), ("infiltration", "bell", "zoster", "vincristine")
    G.load(d, causes, sc)
    records = set((own_cache / validated.FOLDER).iterdir())
    assert len(records) == 1
    G.load(d, causes, sc)  # read again: no new record
    assert set((own_cache / validated.FOLDER).iterdir()) == records
    with pytest.raises(F.InputError, match="'zoster' is not a cause"):
        G.load(d, ("infiltration", "bell", "vincristine"), sc)
    (d / "actions.yaml").write_text((d / "actions.yaml").read_text().replace("priority: 1", "priority: one"))
    with pytest.raises(F.InputError, match="priority"):
        G.load(d, causes, sc)


def test_palsy_evidence_reads_every_file_and_exits_2(tmp_path):
    """``palsy evidence`` reads actions.yaml, decision.yaml and validation.yaml: one line per problem naming the
    file, the entry, the field, the value and what is allowed; exit status 2; nothing on standard output."""
    d = _fixture(tmp_path, "actions.yaml", lambda a: a["actions"][1]["when"].update(cause="gbss"))
    (d / "decision.yaml").unlink()
    shutil.copy(PRIORS / "validation.yaml", d / "validation.yaml")
    r = run_palsy("evidence", "--priors", str(d), timeout=120)
    assert r.returncode == 2 and not r.stdout and "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("  - ")]
    said(r.stderr, "actions.yaml: entry 'zoster_antiviral': field 'when.cause': 'gbss' is not a cause; allowed: "
                   "infiltration, bell, zoster, vincristine", "decision.yaml: file missing",
         "validation.yaml: entry 'lucena2019_all20mo_mastoiditis': field 'ref': 'lucena2019' is not a key of references.yaml")
    assert all(str(d) in x for x in lines), lines


def test_the_file_models_stay_off_the_answer_path():
    """The answer path's modules do not import pydantic at import time (a record spares it at run time)."""
    import subprocess

    code = ("import sys; import palsy.model.answer, palsy.model.guidance, palsy.model.decision, palsy.model.evidence, "
            "palsy.model.crossref, palsy.model.validated, palsy.scripts.commands.posterior; "
            "print(sorted(m for m in sys.modules if m.startswith('pydantic')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert r.stdout.strip() == "[]", r.stdout

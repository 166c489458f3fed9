"""Review s16 of the registry (items 2, 7-11, 13, 14): the commands keep the hospital's files, the answers
keep no free text, the feedback loop counts each patient once, and the messages name the file and the field
(fast: no fit). The inputs are the reviewer's (tests/fixtures/registry_s16/)."""

from __future__ import annotations

import argparse
import csv
import json
import shutil

import numpy as np
import pytest
import yaml
from conftest import REPO, run_palsy

from palsy.model import findings as F
from palsy.model import registry as RG
from palsy.model import registry_counts as RC
from palsy.model import registry_feedback as FB
from palsy.model import registry_fit as RF

FIX = REPO / "tests" / "fixtures" / "registry_s16"
SMALL = REPO / "tests" / "fixtures" / "registry" / "small.csv"


@pytest.fixture(scope="module")
def ev():
    from palsy.model import evidence as E

    return E.load(REPO / "priors")


def _refused(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


# --- item 2: no command destroys the hospital's files ----------------------------------------------------

def test_the_template_never_overwrites_the_log_or_a_form(tmp_path):
    log = tmp_path / "feedback.jsonl"
    shutil.copy(FIX / "feedback.jsonl", log)
    before = log.read_bytes()
    _refused(run_palsy("registry", "from-feedback", str(log), "--template", str(log)),
             str(log), "the feedback log this command reads", "give another path")
    assert log.read_bytes() == before
    # through another spelling of the same path
    _refused(run_palsy("registry", "from-feedback", str(log), "--template", str(tmp_path / "." / "feedback.jsonl")),
             "the feedback log")
    form = tmp_path / "form.csv"
    shutil.copy(FIX / "form_filled.csv", form)
    filled = form.read_bytes()
    _refused(run_palsy("registry", "from-feedback", str(log), "--template", str(form)),
             str(form), "choose a new name, or delete it first")
    _refused(run_palsy("registry", "from-feedback", str(log), "--template", str(form), "--force"), "--force")
    assert form.read_bytes() == filled


def test_out_is_never_an_input_and_overwrites_only_with_force(tmp_path):
    reg = tmp_path / "reg.csv"
    shutil.copy(FIX / "leak_site.csv", reg)
    rows = reg.read_bytes()
    _refused(run_palsy("registry", "export-counts", str(reg), "--out", str(reg)), str(reg), "the registry this command reads")
    _refused(run_palsy("registry", "export-counts", str(reg), "--out", str(reg), "--force"), "the registry")
    assert reg.read_bytes() == rows
    out = tmp_path / "c.json"
    out.write_text("earlier")
    _refused(run_palsy("registry", "export-counts", str(reg), "--out", str(out)), str(out), "--force")
    assert out.read_text() == "earlier"
    run_palsy("registry", "export-counts", str(reg), "--out", str(out), "--force", check=True)
    assert json.loads(out.read_text())["format"] == RC.FORMAT
    # from-feedback --out: neither the log nor the form; an existing registry only with --force
    log, form = tmp_path / "feedback.jsonl", tmp_path / "form.csv"
    shutil.copy(FIX / "feedback.jsonl", log)
    shutil.copy(FIX / "form_partial.csv", form)
    for target in (log, form):
        kept = target.read_bytes()
        _refused(run_palsy("registry", "from-feedback", str(log), str(form), "--site", "north", "--out", str(target),
                           "--force"), str(target), "this command reads")
        assert target.read_bytes() == kept
    yml = tmp_path / "reg.yaml"
    yml.write_text("keep")
    _refused(run_palsy("registry", "from-feedback", str(log), str(form), "--site", "north", "--out", str(yml)),
             str(yml), "--force")
    assert yml.read_text() == "keep"
    run_palsy("registry", "from-feedback", str(log), str(form), "--site", "north", "--out", str(yml), "--force",
              check=True)
    help_text = run_palsy("registry", "--help", check=True).stdout
    assert "--force" in help_text


# --- item 7: no free text in an answer or the feedback log ----------------------------------------------

TEXT = "Mrs Jones sarcoidosis Ward B"


def _registry_with_other(ev):
    rows = RG.read(SMALL, ev.schema, ev.causes).to_rows()
    rows.append({**rows[0], "final_cause": "other", "other_cause": TEXT, "established_by": ["tissue"]})
    return RG.from_mappings([(f"row {i}", r) for i, r in enumerate(rows, 1)], ev.schema, ev.causes,
                            source="/hospital/secret-file-name.csv")


def test_the_fits_metadata_and_the_log_line_hold_no_free_text(ev):
    from palsy.model import rates as R
    from palsy.model import registry_summary as RS

    reg = _registry_with_other(ev)
    inp = RF.from_registry(reg, 0.5)
    r = RS.rate_arrays(ev)
    params = R.sample_prior(r, 200, np.random.default_rng(1))
    meta = RF.report(inp, params, r, ev.causes, 1)
    text = json.dumps(meta)
    assert TEXT not in text and "secret-file-name" not in text
    assert meta["used"] and meta["rows"]["other"] == 2 and meta["base_rate"]["posterior"]["mean"] > 0
    # the feedback-log line: whether a registry was used, its hash, the rows fitted, the base rate
    answer = {"causes": [{"cause": c, "probability": {"mean": 1 / len(ev.causes)}} for c in ev.causes],
              "model": {"variant": "subtype", "evidence_hash": "e", "version": "v",
                        "registry": {**meta, "other": {"causes": {TEXT: 1}}, "sources": ["secret-file-name.csv"]}}}
    line = FB.answer_entry("c1", "h1", F.parse_patient({}), answer, "s")
    assert set(line["model"]["registry"]) == set(RG.ANSWER_KEYS)
    assert line["model"]["registry"]["hash"] == meta["hash"] and line["model"]["registry"]["rows"]["fitted"] == 4
    assert TEXT not in json.dumps(line) and "secret" not in json.dumps(line) and "sites" not in line["model"]["registry"]
    assert FB.answer_entry("c1", "h1", F.parse_patient({}), {**answer, "model": {}}, "s")["model"]["registry"] == {"used": False}
    # palsy registry summary still shows the texts, from the rows
    from palsy.model import registry_summary as RSum

    assert RSum.summary(reg)["other_causes"][TEXT] == 1


# --- items 8 and 9: each patient once; what was adjudicated ----------------------------------------------

def test_two_adjudications_of_one_patient_in_one_month_are_refused_naming_both(tmp_path):
    out = tmp_path / "reg.yaml"
    proc = run_palsy("registry", "from-feedback", str(FIX / "feedback.jsonl"), str(FIX / "form_filled.csv"),
                     "--site", "north", "--out", str(out))
    _refused(proc, str(FIX / "form_filled.csv"), "card-1", "card-2", "line 2", "line 3", "one patient", "2023-11")
    assert not out.exists()


def test_the_form_marks_a_patient_answered_more_than_once(tmp_path):
    form = tmp_path / "form.csv"
    proc = run_palsy("registry", "from-feedback", str(FIX / "feedback.jsonl"), "--template", str(form), check=True)
    assert "answered more than once" in proc.stdout
    with open(form, newline="") as f:
        table = {r["card"]: r for r in csv.DictReader(f)}
    assert "card-1" in table["card-1"]["same_patient"] and "card-2" in table["card-2"]["same_patient"]
    assert "adjudicate one" in table["card-1"]["same_patient"] and table["card-3"]["same_patient"] == ""


def test_from_feedback_says_how_many_answers_were_adjudicated(tmp_path):
    out = tmp_path / "reg.yaml"
    proc = run_palsy("registry", "from-feedback", str(FIX / "feedback.jsonl"), str(FIX / "form_partial.csv"),
                     "--site", "north", "--out", str(out), check=True)
    assert "1 registry row\n" in proc.stdout and "1 registry rows" not in proc.stdout
    assert "1 of 3 answers (1 of 2 patients) adjudicated; the rest are not in the registry" in proc.stdout


# --- item 10: sites compared without regard to case; pasted rows -----------------------------------------

def test_a_site_in_two_counts_files_is_refused_whatever_its_case(ev):
    with pytest.raises(F.InputError) as exc:
        RF.from_files(ev, counts=[FIX / "diff_jan.counts.json", FIX / "diff_jul_lower.counts.json"])
    assert "'A'" in str(exc.value) and "'a'" in str(exc.value) and "counted twice" in str(exc.value)
    with pytest.raises(F.InputError, match="counted twice"):  # rows and counts of one site
        RF.from_files(ev, rows=[FIX / "diff_jan.csv"], counts=[FIX / "diff_jul_lower.counts.json"])


def test_rows_files_of_one_site_are_one_site(ev, tmp_path):
    lower = tmp_path / "y2.csv"
    lower.write_text(SMALL.read_text().replace("\nA,", "\na,"))
    merged = RF.from_files(ev, rows=[SMALL, lower])
    assert merged.sites == ("A", "B") and {c.site for c in merged.cells} == {"A", "B"}


def test_rows_pasted_twice_are_warned_about_naming_them(tmp_path):
    text = (FIX / "leak_site.csv").read_text().splitlines()
    path = tmp_path / "dup.csv"
    path.write_text("\n".join([text[0], text[11], text[11], text[1]]) + "\n")
    proc = run_palsy("registry", "check", str(path), check=True)
    assert "warning: 2 identical rows (row 1 (line 2), row 2 (line 3))" in proc.stdout


# --- item 11: the counts reader ------------------------------------------------------------------------

def test_counts_of_another_schema_or_with_impossible_cells_are_refused(ev):
    with pytest.raises(F.InputError) as exc:
        RC.read(FIX / "counts_wrong_schema.json", ev.schema, ev.causes, 0.5)
    assert "schema_hash" in str(exc.value) and "another schema" in str(exc.value)
    with pytest.raises(F.InputError) as exc:
        RC.read(FIX / "counts_inconsistent.json", ev.schema, ev.causes, 0.5)
    assert "sites.north.strata[1].findings" in str(exc.value) and "add up to 500" in str(exc.value)
    assert "at most 12" in str(exc.value)


def test_findings_cells_above_a_hidden_counts_upper_bound_are_refused(ev, tmp_path):
    doc = json.loads(RC.to_bytes(RC.export(RG.read(FIX / "leak_pair.csv", ev.schema, ev.causes), ev.schema, 5)))
    s = doc["sites"]["A"]["strata"][0]
    s["findings"].append({"cause": "zoster", "findings": {"vesicles": "present"}, "count": 6})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(F.InputError, match="zoster add up to 6 patients.*at most 4"):
        RC.read(path, ev.schema, ev.causes, 0.5)


# --- item 13: palsy fit --registry is not the answers' fit ---------------------------------------------

def test_fit_with_registry_says_answers_use_registry_yaml(ev, capsys, tmp_path):
    from palsy.model import evidence as E
    from palsy.model import fit
    from palsy.scripts.commands import registry as cmd

    args = argparse.Namespace(command="fit", registry=[str(SMALL)], registry_counts=None, no_registry=False)
    reg, _ = cmd.fit_registry(args, ev)
    assert reg is not fit.FROM_PRIORS
    out = capsys.readouterr().out
    assert "answers (posterior, report, serve) use the registry" in " ".join(out.split())
    assert "name these files in" in " ".join(out.split())
    # the files registry.yaml names: the answers' own fit, and nothing to say
    pdir = tmp_path / "priors"
    shutil.copytree(REPO / "priors", pdir)
    text = (pdir / "registry.yaml").read_text().replace("rows: []", f"rows: ['{SMALL}']", 1)
    (pdir / "registry.yaml").write_text(text)
    reg, rows = cmd.fit_registry(args, E.load(pdir))
    assert reg == fit.FROM_PRIORS and len(rows.rows) == 5 and capsys.readouterr().out == ""


# --- item 14: messages ---------------------------------------------------------------------------------

@pytest.mark.parametrize("form, column, near", [("form_badheader.csv", "'final cause'", "final_cause"),
                                                 ("form_badheader2.csv", "'established by'", "established_by")])
def test_an_unknown_form_column_is_named_with_the_forms_path(tmp_path, form, column, near):
    proc = run_palsy("registry", "from-feedback", str(FIX / "feedback.jsonl"), str(FIX / form), "--site", "north",
                     "--out", str(tmp_path / "r.yaml"))
    _refused(proc, str(FIX / form), column, f"did you mean '{near}'", "not a column of the adjudication form")
    assert "feedback: invalid" not in proc.stderr and "established_by: missing" not in proc.stderr


def test_a_semicolon_separated_csv_gets_one_message(tmp_path):
    proc = run_palsy("registry", "check", str(FIX / "semicolon.csv"))
    _refused(proc, str(FIX / "semicolon.csv"), "';'-separated", "save it comma-separated")
    assert proc.stderr.count("\n  - ") == 1 and "None" not in proc.stderr
    form = tmp_path / "form.csv"
    form.write_text("card;month;final_cause\ncard-1;2023-11;bell\n")
    proc = run_palsy("registry", "from-feedback", str(FIX / "feedback.jsonl"), str(form), "--site", "n",
                     "--out", str(tmp_path / "r.yaml"))
    _refused(proc, str(form), "';'-separated")
    assert proc.stderr.count("\n  - ") == 1


def test_a_missing_field_says_missing_not_none(ev, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"registry_version": 1, "rows": [{"lineage": "B-ALL"}]}))
    with pytest.raises(F.InputError) as exc:
        RG.read(path, ev.schema, ev.causes)
    text = str(exc.value)
    assert "None" not in text
    for field in ("site: missing", "period: missing", "final_cause: missing"):
        assert field in text


def test_a_registry_given_as_the_log_stops_after_a_few_lines(tmp_path):
    proc = run_palsy("registry", "from-feedback", str(FIX / "leak_site.csv"), "--template", str(tmp_path / "t.csv"))
    _refused(proc, str(FIX / "leak_site.csv"), "and 8 more lines that are not JSON", "feedback log")
    assert proc.stderr.count(": not JSON: ") == FB.MAX_NOT_JSON and not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize("line, said", [('{"card": "c1", "card": "c2"}', "is given twice"),
                                        ('{"card": "c1", "n": 1' + "0" * 5000 + "}", "more than 4300 digits"),
                                        ("[" * 100000 + "]" * 100000, "nested too deep")],
                         ids=["key-twice", "5000-digits", "deep"])  # short ids: pytest puts the id in the environment
def test_a_log_line_python_cannot_read_is_that_lines_problem(tmp_path, line, said):
    """s16 attack review S7: a 5000-digit number or deep nesting in the feedback log was exit 1, internal error; a
    key given twice was read last-one-wins."""
    log = tmp_path / "feedback.jsonl"
    log.write_text(line + "\n")
    proc = run_palsy("registry", "from-feedback", str(log), "--template", str(tmp_path / "t.csv"))
    _refused(proc, "line 1", said)


def test_an_answers_model_carries_only_the_registrys_numbers(draws_subtype):
    """Every answer's JSON (and the service's brief) carries ``model.registry``: whether a registry was used, its
    hash, the rows fitted and the base rate, never the sites, file names or an 'other' row's text (s16 review
    item 7: 'Mrs Jones sarcoidosis Ward B' had reached every answer)."""
    import dataclasses

    from palsy.model import answer as A

    meta = {"used": True, "hash": "h", "sites": ["north"], "sources": ["/hospital/secret-file-name.csv"],
            "rows": {"rows": 9, "fitted": 7, "modelled": 6, "undetermined": 1, "other": 2},
            "other": {"causes": {TEXT: 2}}, "base_rate": {"prior": {"mean": 0.3}, "posterior": {"mean": 0.2}}}
    draws = dataclasses.replace(draws_subtype, meta={**draws_subtype.meta, "registry": meta})
    t = A.Tables(draws_subtype)
    got = A.model_info(draws, t, np.ones(len(t.causes), bool), None)["registry"]
    assert set(got) == set(RG.ANSWER_KEYS) and got["rows"] == {"fitted": 7, "modelled": 6, "undetermined": 1}
    assert TEXT not in json.dumps(got) and "secret" not in json.dumps(got) and "north" not in json.dumps(got)
    assert A.model_info(draws_subtype, t, np.ones(len(t.causes), bool), None)["registry"] == {"used": False}


def test_a_registry_fit_counts_what_it_moved_as_data_and_the_report_says_it():
    """s16 registry review #6: after a registry fit, 'what the answer rests on' still called the base rate all
    expert judgment, and the report never named the registry. A rate factor's judgment share is now its prior's
    share of what the registry left of the prior's variance; the report's provenance names the registry."""
    from scipy.special import polygamma

    from palsy.model import rests_on as RO
    from palsy.reports import context as C

    x = np.array([0.02, 0.3, 1.0, 2.5, 5.99, 6.0, 40.0, 3e3])
    assert np.allclose(RO.trigamma(x), polygamma(1, x), rtol=1e-8, atol=0)
    rng = np.random.default_rng(3)
    w = np.full(4000, 1 / 4000)
    sd = np.array([0.8, 0.6])
    prior = rng.normal(0, sd, (4000, 2))
    assert RO.rate_judgment(np.ones(2), sd ** 2, prior, w) == pytest.approx(1.0, abs=0.06)
    # the registry pins the rate (the sum of the log factors) to a quarter of its prior variance, while each factor's
    # own marginal barely contracts (they trade off): three quarters are data (the second review's case, s16)
    total = rng.normal(0, np.sqrt((sd ** 2).sum() / 4), 4000)
    a = rng.normal(0, 0.75, 4000)
    pinned = np.stack([a, total - a], axis=1)
    assert np.var(pinned[:, 0]) > 0.5 * sd[0] ** 2 and np.var(pinned[:, 1]) > 0.5 * sd[1] ** 2
    assert RO.rate_judgment(np.ones(2), sd ** 2, pinned, w) == pytest.approx(0.25, abs=0.03)
    # a cited factor's share of the prior variance is data already
    assert RO.rate_judgment(np.array([1.0, 0.0]), sd ** 2, pinned, w) == pytest.approx(0.25 * 0.64, abs=0.03)
    said = C._registry_words({"used": True, "rows": {"fitted": 30},
                              "base_rate": {"prior": {"mean": 0.38}, "posterior": {"mean": 0.27}}})
    assert "fitted with the hospital's registry" in said and "30 rows fitted" in said and "27.0% after it" in said
    assert C._registry_words({"used": False}) == "from the rate model of priors/rates.yaml"


def test_the_decomposition_of_a_fit_marked_as_having_a_registry_runs_and_keeps_an_unmoved_rate_judgment(draws_subtype):
    """The registry branch of the judgment split on real draws: a fit whose rate block was not moved (the plain
    fit's draws, marked as a registry's) keeps its base rate nearly all judgment; the split still sums to one."""
    import dataclasses

    from palsy.model import rests_on as RO
    from palsy.model.game import Game, Tables, players

    marked = dataclasses.replace(draws_subtype, meta={**draws_subtype.meta, "registry": {"used": True}})
    p = F.parse_patient({"id": "r", "lineage": "T-ALL", "laterality": "unilateral"}, schema=marked.schema)
    t = Tables(marked)
    game = Game(t, players(p), p, np.ones(len(t.causes), bool), t.log_prior, np.zeros_like(t.level_lp[:, :, 0]), None)
    res = RO.decompose(game, marked.meta.get("rests_on"))
    base = next(b for b in res["blocks"] if b["id"] == "rate:infiltration")
    assert base["judgment"] > 0.85
    assert sum(r["share"] for r in res["rows"]) == pytest.approx(1.0)


def test_a_counts_file_python_cannot_read_or_with_a_key_twice_is_refused(tmp_path, ev):
    """A second review, s16: counts files were read with plain json.loads (a 5000-digit count was an internal
    error, a count given twice last-one-wins)."""
    for text, said in (('{"format": 1, "format": 2}', "is given twice"), ('{"n": 1' + "0" * 5000 + "}", "4300 digits")):
        path = tmp_path / "c.json"
        path.write_text(text)
        with pytest.raises(F.InputError) as exc:
            RC.read(path, ev.schema, ev.causes, 0.5)
        assert said in str(exc.value) and str(path) in str(exc.value)


def test_the_commands_help_names_the_registrys_smallest_threshold():
    """The parser is built before any command runs, so the help writes the number itself: it must be the registry's."""
    from palsy.scripts.commands import registry as cmd

    assert cmd.RG_MIN == RG.MIN_THRESHOLD


def test_a_record_systems_own_override_reason_never_reads_as_palsys():
    """CDS Hooks 2.0 lets a record system add override reasons of its own: the adjudication form shows such a
    reason with its system, so that 'record-incomplete' of another code system is never taken for palsy's (the
    integration review s17 #12: the form showed the code alone)."""
    from palsy.model import registry_feedback as RF
    from palsy.reports import cards

    assert cards.OVERRIDE_SYSTEM == RF.OVERRIDE_SYSTEM
    own = {"outcome": "overridden", "overrideReason": {"system": RF.OVERRIDE_SYSTEM, "code": "record-incomplete"}}
    theirs = {"outcome": "overridden", "overrideReason": {"system": "http://ehr.example/reasons", "code": "record-incomplete"}}
    assert RF.outcome_text(own) == "overridden: record-incomplete"
    assert RF.outcome_text(theirs) == "overridden: record-incomplete (http://ehr.example/reasons)"
    assert RF.outcome_text({"outcome": "overridden"}) == "overridden"
    assert RF.outcome_text({"outcome": "accepted", "overrideReason": {"code": ""}}) == "accepted"

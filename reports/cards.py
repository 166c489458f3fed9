"""A CDS Hooks 2.0 card from an answer (the JSON of ``palsy posterior --json``): presentation only.

The card says what page 1 of the clinician report says, in the record: the summary (under 140
characters: the mean P(infiltration) with its credible interval and the leading cause, or the causes tied with
it, an escalation named first, atypical findings named last), an indicator, the detail in GitHub-flavoured markdown
(the differential with intervals, page 1's actions, the decision, the limits, what the record did not
say), the source, the reasons a clinician may give for dismissing it (:data:`OVERRIDE_REASONS`) and a link
to the full report. Every number is worded by :mod:`palsy.reports.wording`
(never 0% or 100%), so the card and the report read the same. Its words are in the card's one spelling
(:data:`SPELLING`, British: the actions and decisions it is mostly made of), the causes' labels and the record's
words with them.

Indicator: ``critical`` when the answer escalates (the decision is ``treat``, or an action on page 1
says to discuss with the leukaemia team today); ``warning`` when a work-up is recommended (the decision
is ``test``, or page 1 recommends an investigation); ``info`` otherwise. A mean that reads as a threshold
as written (:func:`palsy.reports.wording.shown_at`: 9.98% against a floor of 10%, both '10.0%') is on the
more urgent side of it, as its words are ("testing goes on at the floor").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from palsy.model import registry_feedback as RF
from palsy.reports import wording as W

SUMMARY_MAX = 139  # CDS Hooks 2.0: "<140-character summary"
PAGE1_ACTIONS = 6  # page 1 of the report shows at most six actions (docs/design.md §6)
INDICATORS = ("info", "warning", "critical")
OVERRIDE_SYSTEM = RF.OVERRIDE_SYSTEM  # palsy's code system of the reasons for dismissing a card
#: The reasons every card offers (CDS Hooks 2.0 ``Card.overrideReasons``: the record system shows them when
#: the card is dismissed), code -> what the clinician reads. The feedback log keeps the code chosen, and the
#: adjudication form shows it beside the outcome (docs/registry.md): why answers are dismissed is what a
#: hospital needs to know before it trusts, corrects or retires the tool. Each says something the adjudicator
#: can act on: the record's findings to check, a work-up the card did not know of, a cause already proven, a
#: clinician's disagreement, a card that did not apply.
OVERRIDE_REASONS = {
    "record-incomplete": "The record lacks findings I know of (the answer used the record's findings only)",
    "already-in-hand": "Already being worked up or treated with the leukaemia team",
    "cause-established": "The cause of this palsy is already established",
    "disagree": "I disagree with this differential for this patient",
    "not-applicable": "Not a new facial palsy in this patient",
}


#: The card's one spelling (:data:`palsy.reports.wording.PAGE_SPELLING`): the labels the answer carries (US, from
#: the schema and model.yaml) are written in it, as the actions and decisions are (a review, s18: "P(leukaemic
#: infiltration)" above "leukemic infiltration" in the differential).
SPELLING = W.PAGE_SPELLING["card"]


def cause_name(d: Mapping[str, Any], cause: str) -> str:
    """A cause in plain words, from the labels the answer carries (priors/model.yaml cause_labels), in the card's
    spelling (:data:`SPELLING`)."""
    label = ((d.get("model") or {}).get("cause_labels") or {}).get(cause, {}).get("label")
    return W.house_style(label, SPELLING) if label else cause.replace("_", " ")


def _pct(x: float) -> str:
    return W.percent(float(x))


def leading(d: Mapping[str, Any]) -> tuple[str, float]:
    """The leading cause (plain words) and its mean probability."""
    cause = d["leading_cause"]
    mean = next(c["probability"]["mean"] for c in d["causes"] if c["cause"] == cause)
    return cause_name(d, cause), float(mean)


def leaders(d: Mapping[str, Any]) -> list[str]:
    """The leading cause and the causes tied with it, in the answer's order of causes: the answer's ``tied``
    (the rule of :func:`palsy.model.teach.ties`, which the teaching pages name as a tie: two means that differ by
    less than ``TIE_MC_ERRORS`` Monte Carlo errors of their difference, an order the computation cannot tell).
    The card sets no rule of its own: an answer without ``tied`` has one leader."""
    weighed = [c["cause"] for c in d["causes"]]
    tied = {str(c) for c in d.get("tied") or ()} & set(weighed)
    return [c for c in weighed if c == d["leading_cause"] or c in tied]


def indicator(d: Mapping[str, Any]) -> str:
    """``critical``, ``warning`` or ``info`` for an answer dict (see the module docstring)."""
    dec = d.get("decision") or {}
    actions = list(d.get("actions") or [])[:PAGE1_ACTIONS]
    # the zone compares unrounded numbers; the words compare them as written, and a mean written as a threshold is
    # read on its more urgent side (a clinician's review, December 2026: 'info' beside 'testing goes on')
    edge = W.shown_at(dec) if dec.get("thresholds") and dec.get("probability") is not None else None
    if dec.get("action") == "treat" or edge in ("upper", "both") or any(a.get("urgency") == "escalation"
                                                                        for a in actions):
        return "critical"
    if dec.get("action") == "test" or edge == "lower" or any(a.get("urgency") == "workup" for a in actions):
        return "warning"
    return "info"


#: How the summary ends when the atypicality check flags the findings (the detail says it in full), and its
#: shorter form where the longer one leaves no room for a cause's name.
ATYPICAL = ("; atypical findings", "; atypical")

#: How the summary opens when the answer escalates (:func:`indicator` is ``critical``): the escalation first,
#: so that a mimic leading the differential does not read as if it settled things (a clinician's review,
#: December 2026, found a critical card whose one line named zoster beside blasts in a clean CSF).
ESCALATE = "Escalate today"


@functools.cache
def _schema():
    """The schema of the evidence shipped with palsy (the names of the next tests, the scope of a finding)."""
    from palsy.model import schema as SC

    return SC.read()


def next_test_name(test: str, schema: Any = None) -> str:
    """A next test in words (the label of ``schema``, the answer's; palsy's own by default: 'lumbar puncture
    with cytology and flow cytometry')."""
    t = (schema or _schema()).next_tests.get(test)
    return t.label if t is not None else test.replace("_", " ")


def central(d: Mapping[str, Any], schema: Any = None) -> bool:
    """Whether the answer's palsy may be central (a scope note ``central``: the forehead spared): the decision's
    own ``central`` where it has one, else from its patient's findings read with ``schema`` (the answer's;
    palsy's own by default; a palsy at diagnosis is out of scope too, but peripheral)."""
    if d.get("in_scope", True):
        return False
    dec = d.get("decision") or {}
    if "central" in dec:
        return bool(dec["central"])
    sc = schema or _schema()
    patient = d.get("patient") or {}
    return any(sc.scope_note(name, patient.get(name)) == "central" for name in sc.categorical)


def csf_positive(d: Mapping[str, Any], schema: Any = None) -> bool:
    """Whether an LP of the answer's patient is positive by any method: its patient read with ``schema`` (the
    answer's) and the LPs' own rule (:attr:`palsy.model.findings.LP.positive`)."""
    from palsy.model import findings as F

    patient = F.parse_patient(d.get("patient") or {}, "answer", schema=schema or _schema())
    return any(lp.positive for lp in patient.csf)


#: How the summary ends when it escalates with blasts in the CSF: the result, not a mimic that leads (a
#: clinician's review, December 2026: 'Escalate today, whatever leads: ...; leading: Bell's palsy 53.2%' beside
#: an LP positive by cytology and flow, where page 1 says blasts in a clean CSF are CNS3 disease).
CSF_POSITIVE = "; CSF positive for blasts"


def _causes_said(d: Mapping[str, Any], causes: list[str]) -> list[str]:
    """Ways to name ``causes`` with their means, longest first: the labels, then the short names."""
    means = {c["cause"]: float(c["probability"]["mean"]) for c in d["causes"]}
    labels = (d.get("model") or {}).get("cause_labels") or {}
    full = ", ".join(f"{cause_name(d, c)} {_pct(means[c])}" for c in causes)
    short = ", ".join(f"{W.house_style(labels.get(c, {}).get('short') or cause_name(d, c), SPELLING)} {_pct(means[c])}"
                      for c in causes)
    return [full, short]


def summary(d: Mapping[str, Any], schema: Any = None) -> str:
    """One sentence under 140 characters: the mean P(infiltration) with its credible interval (its mass said)
    and the leading cause ('Facial palsy: P(leukaemic infiltration) 34.1% (mean; 90% CrI 0.8% to 94.2%); leading:
    ...'); when the answer escalates (:func:`indicator` ``critical``) the escalation opens it, and a mimic that
    leads, or is tied with infiltration, is said not to change that ('Escalate today, whatever leads: ...'); a
    palsy that may be central says the number holds only if it is peripheral.

    Causes tied with the leading one (:func:`leaders`, the answer's ``tied``) are named as a tie, and no cause is
    said to lead ('; tied with vincristine neuropathy 43.0%' when infiltration is among them, '; tied: zoster
    30.6%, Bell's palsy 30.4%' when not); findings the atypicality check flags end it ('; atypical findings').
    Shorter forms (the causes' short names, then the tie or the lead without names, then none, the atypical mark
    kept) keep it under the limit with any label; the mean and its interval are always there, the atypical mark
    whenever the answer is flagged. An escalating answer with an LP positive for blasts names that result
    instead of any cause (:data:`CSF_POSITIVE`): the CSF, not the differential, is what the escalation acts on."""
    p = d["probability"]
    ci = float(p.get("ci", 0.9))
    prob = f"P(leukaemic infiltration) {_pct(p['mean'])} (mean; {W.interval(float(p['lower']), float(p['upper']), ci)})"
    peripheral = central(d, schema)
    first = leaders(d)
    infiltration_alone = first == ["infiltration"]
    if indicator(d) == "critical":
        head = ESCALATE + ("" if infiltration_alone else ", whatever leads") + ("; if peripheral: " if peripheral else ": ")
    else:
        head = "If peripheral: " if peripheral else "Facial palsy: "
    if indicator(d) == "critical" and csf_positive(d, schema):
        tails = [CSF_POSITIVE]
    elif infiltration_alone:
        tails = ["; the leading cause"]
    elif len(first) == 1:
        tails = [f"; leading: {n}" for n in _causes_said(d, first)]
    elif "infiltration" in first:  # its own mean is the headline's
        tails = [f"; tied with {n}" for n in _causes_said(d, [c for c in first if c != "infiltration"])]
        tails.append("; tied with " + ("another cause" if len(first) == 2 else "other causes"))
    else:
        tails = [f"; tied: {n}" for n in _causes_said(d, first)] + ["; no cause clearly leads"]
    tails.append("")
    marks = ATYPICAL if (d.get("atypical") or {}).get("flag") else ("",)
    forms = [f"{head}{prob}{tail}{mark}" for tail in tails for mark in marks]
    for text in forms:
        if len(text) <= SUMMARY_MAX:
            return text
    return forms[-1][:SUMMARY_MAX - 1] + "…"


#: The top-level domains a linkify plugin links without a scheme (markdown-it's linkify-it: these, any two-letter
#: country code, and any beyond ASCII such as .рф).
FUZZY_TLDS = "biz|com|edu|gov|net|org|pro|web|xxx|aero|asia|coop|info|museum|name|shop"
#: What a markdown renderer may turn into a link by itself, in text from the record: GitHub-flavoured markdown's
#: autolinks (http://, https://, ftp://, www., mailto:, xmpp:, an e-mail address) and the bare domains a linkify
#: plugin links (evil.example.com/login, mañana.com, пример.рф), in any script. Shown as code, where no renderer
#: makes a link (an attacker's review and a second review, s16); 'Dr.Smith' or 'cytology.positive' are not domains.
_TAIL = r"(?:[^\s`]*[^\s`.,;:!?)\]'\"])?"  # a link's rest, without the punctuation that ends a sentence
AUTOLINK = re.compile(rf"(?i)(?<![\w@.])(?:(?:https?|ftp)://|www\.|mailto:|xmpp:){_TAIL}"
                      r"|[^\s`@(]+@[^\s`@]+\.[^\s`@.,;:!?)]+"
                      rf"|(?<![\w@.])(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:{FUZZY_TLDS}|[a-z]{{2}}|[^\W\d_a-z]{{2,}})"
                      rf"(?:/{_TAIL})?(?![\w@])")


def _md(text: Any) -> str:
    """Text from data made inert in markdown (no links, images, HTML or emphasis from the record): markdown's
    punctuation escaped, and what a renderer would link by itself (``https://...``, ``www....``, an e-mail
    address) set as code; its words in the card's spelling (:data:`SPELLING`), what is set as code as it is."""
    s = " ".join(str(text).split())
    out, at = [], 0
    for m in AUTOLINK.finditer(s):
        out.append(_escaped(W.house_style(s[at:m.start()], SPELLING)))
        out.append(f"`{m.group(0)}`")  # a code span: never a link, and the record's text shown as it is
        at = m.end()
    out.append(_escaped(W.house_style(s[at:], SPELLING)))
    return "".join(out)


def _escaped(s: str) -> str:
    return re.sub(r"[\\`*_{}\[\]()<>#+!|~]", lambda m: "\\" + m.group(0), s)


def detail(d: Mapping[str, Any], not_found: Iterable[str] = (), notes: Iterable[str] = (),
           not_found_text: str | None = None, schema: Any = None) -> str:
    """The card's detail in GitHub-flavoured markdown: differential, actions, decision, limits, gaps."""
    ci = W.ci_percent(float(d["probability"].get("ci", 0.9)))
    lines: list[str] = []
    for note in d.get("scope_notes") or []:
        lines.append(f"**Out of scope:** {_md(note)}")
    atyp = d.get("atypical") or {}
    if atyp.get("flag"):
        lines.append("**Atypical:** these findings fit none of the modelled causes well; consider causes not modelled.")
    elif atyp.get("within_mc_error"):
        lines.append("**Nearly atypical:** these findings are at the edge of what the modelled causes explain "
                     "(within Monte Carlo error of the threshold); consider causes not modelled.")
    for w in d.get("warnings") or []:
        lines.append(f"**Warning:** {_md(w)}")
    if lines:
        lines.append("")
    lines += [f"**The differential** (mean, {ci}% credible interval)", "", "| cause | probability | interval |",
              "|---|---|---|"]
    for c in d["causes"]:
        s = c["probability"]
        lines.append(f"| {_md(cause_name(d, c['cause']))} | {_pct(s['mean'])} | "
                     f"{_pct(s['lower'])} to {_pct(s['upper'])} |")
    every = list(d.get("actions") or [])
    actions = every[:PAGE1_ACTIONS]
    if actions:
        lines += ["", "**What to do now**", ""]
        lines += [f"{i}. {_md(a['text'])}" for i, a in enumerate(actions, start=1)]
        if len(every) > len(actions):  # as page 1 says; the rest had been dropped unsaid (s16 review)
            lines += ["", f"And {len(every) - len(actions)} more in the full report."]
    dec = d.get("decision")
    if dec:
        th = dec["thresholds"]
        is_central = central(d, schema)
        lines += ["", f"**Decision** on the mean P(infiltration) {_pct(dec['probability'])} (thresholds "
                      f"{_pct(th['low'])} and {_pct(th['high'])}): "
                      f"{_md(W.decision_what(dec, central=is_central))}."]
        edge = W.threshold_sentence(dec, lambda t: next_test_name(t, schema), central=is_central)
        if edge:  # on a threshold: what decides it, as page 1 says below the decision
            lines += ["", _md(edge)]
        if not is_central and dec.get("tests"):
            # the tests the decision's words point to ("the next tests below"), listed below it as on page 1;
            # none for a palsy that may be central, whose work-up is not the LP's
            lines.append("")
            lines += [f"- {_md(W.sentence_start(next_test_name(t['test'], schema)))}: {_md(W.change_by_test(t, dec, voi=False))}"
                      for t in dec["tests"]]
    if not_found_text:
        lines += ["", f"**Not found in the record:** {_md(not_found_text)}"]
    elif list(not_found):
        lines += ["", f"**Not found in the record:** {_md(', '.join(not_found))}"]
    for n in notes:
        lines.append(f"- {_md(n)}")
    m = d.get("model") or {}
    if d.get("variants"):  # '' when the variants agree
        variant = W.variants_sentence(d["variants"], dec)
    else:  # a brief answer computes neither this nor what the answer rests on (page 1 says both)
        variant = (f"This card is the model's {m.get('variant') or 'default'} variant alone: the model's "
                   "uncertainty between its variants is not assessed here.")
    variant = _md(variant) + " " if variant else ""
    lines += ["", f"**Limits:** weighed only against the causes listed; not modelled: "
                  f"{_md(', '.join(m.get('not_modelled') or []))}. {variant}What the answer rests on (how much of it "
                  f"is expert judgment) is in the full report. Decision support, not an order: it supports and "
                  f"does not replace clinical judgment, and it never writes to the record."]
    return "\n".join(lines)


def card(d: Mapping[str, Any], *, uuid: str, source_label: str, source_url: str | None = None,
         report_url: str | None = None, not_found: Iterable[str] = (), notes: Iterable[str] = (),
         not_found_text: str | None = None, schema: Any = None) -> dict[str, Any]:
    """The CDS Hooks 2.0 card of an answer dict (optional attributes without a value are left out); ``schema``:
    the answer's (a service configured with another evidence folder), palsy's own by default."""
    out: dict[str, Any] = {"uuid": uuid, "summary": summary(d, schema), "indicator": indicator(d),
                           "detail": detail(d, not_found, notes, not_found_text, schema),
                           "source": {"label": source_label}}
    if source_url:
        out["source"]["url"] = source_url
    # the numbers themselves, unrounded, for the record system (CDS Hooks 2.0 "extension" on a card); a
    # probability within 1e-16 of 1 is 1.0 in a float, so the log odds (which keep the tail) go with it
    dec = d.get("decision") or {}
    out["extension"] = {"palsy": {"probability": dict(d["probability"]),
                                  "log_odds": dict((d.get("log_odds") or {}).get("posterior") or {}),
                                  "leading_cause": d["leading_cause"],
                                  "causes": {c["cause"]: c["probability"]["mean"] for c in d["causes"]},
                                  "decision": dec.get("action"), "in_scope": d.get("in_scope", True),
                                  "model": {k: (d.get("model") or {}).get(k) for k in ("variant", "evidence_hash",
                                                                                       "version")}}}
    out["overrideReasons"] = [{"system": OVERRIDE_SYSTEM, "code": code, "display": display}
                              for code, display in OVERRIDE_REASONS.items()]
    if report_url:
        out["links"] = [{"label": "Full report: the differential, why, and what to do", "url": report_url,
                         "type": "absolute"}]
    return out

"""The full report a card links to (``GET /reports/{id}``) says what the card said of the record: the findings not
found and the notes, among them a positive CSF result the mapping did not use (an attacker's review, s16: the
served report had been built from the findings alone, so a preliminary positive cytology flagged on the card was
absent from the report the card calls full)."""

from __future__ import annotations

import html
import re

import httpx
from test_service import _bundle, call, hook_body, keys, server  # noqa: F401 (fixtures)


def test_the_served_report_says_what_the_card_said_of_the_record(server, keys):  # noqa: F811
    b = _bundle("source-002")
    cyto = next(e["resource"] for e in b["entry"] if e["resource"].get("id") == "csf-cytology-12")
    cyto["status"] = "preliminary"
    cyto["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": "10828004",
                                                "display": "Positive"}]}
    r = call(server, keys, hook_body(b))
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    said = [line for line in card["detail"].splitlines() if "positive CSF cytology" in line and "not used" in line]
    assert said, card["detail"]
    page = httpx.get(card["links"][0]["url"], timeout=120)
    assert page.status_code == 200
    text = html.unescape(re.sub(r"<[^>]+>", "", page.text))
    assert 'id="record"' in page.text and "From the record:" in text
    assert "a positive CSF cytology of" in text and "preliminary" in text
    not_found = card["detail"].split("**Not found in the record:** ", 1)[1].splitlines()[0]
    assert "not found in the record: " + not_found.replace("\\", "") in text

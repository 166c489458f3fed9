"""The load test's printed rows (``loadtest.report``): each row judged on the probe against the bars, with its CPU
per request, and the Little's-law bound only for clients without pause (paced clients never reach it)."""

from __future__ import annotations

from palsy.scripts.serve import loadtest as L


def _row(pacing: str, probe_median: float, server: float, client: float) -> dict:
    return {"median_ms": 50.0, "p99_ms": 90.0, "requests": 1000, "failures": 0, "rps": 100.0,
            "probe_median_ms": probe_median, "probe_max_ms": probe_median * 1.5, "probe_requests": 50,
            "probe_failures": 0, "server_cpu_ms": server, "client_cpu_ms": client, "pacing": pacing}


def test_each_row_is_judged_on_the_probe_and_the_bound_is_said_for_clients_without_pause(monkeypatch, capsys):
    monkeypatch.setattr(L, "run", lambda seconds: {
        "cold_start_seconds": 1.5, "no pause": _row("", 150.0, 8.5, 1.5), "paced": _row("1", 20.0, 19.0, 2.0)})
    L.report(1)
    out = capsys.readouterr().out
    (no_pause,) = [ln for ln in out.splitlines() if "20 clients, no pause" in ln]
    (paced,) = [ln for ln in out.splitlines() if "20 clients, paced" in ln]
    assert no_pause.endswith("FAIL") and paced.endswith("PASS")
    lines = out.splitlines()
    after = {name: lines[lines.index(ln) + 1] for name, ln in (("no pause", no_pause), ("paced", paced))}
    # 10 ms a request on 2 cores: 200 a second, 100 ms each for 20 clients
    assert "the server 8.5 ms, locust 1.5 ms: 2 cores answer at most 200 such requests" in after["no pause"]
    assert "wait at least 100 ms" in after["no pause"]
    assert after["paced"].strip() == "CPU per request: the server 19.0 ms, locust 2.0 ms"

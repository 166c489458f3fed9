/* palsy teaching page: P(infiltration | findings) computed in the browser from every posterior draw.
 *
 * Mirrors model/answer.py: per draw s and component k,
 *   a[s,k] = log P(compatible strata, k | H) + sum of level_lp[s,k,level] over the observed findings;
 *   log p(x|L) = logsumexp over the L components, log p(x|B) = a[s,B];
 *   log odds = logit prior (or logit(pretest)) + log p(x|L) - log p(x|B).
 * The headline is the mean of expit(log odds) over draws; the median and the equal-tailed interval
 * are quantiles of the log odds (linear interpolation, as numpy) mapped through expit.
 * No network: the draws are embedded in the page as JSON.
 */
(function () {
  "use strict";

  var MODELS = JSON.parse(document.getElementById("palsy-draws").textContent);
  var FINDINGS = ["laterality", "other_cranial_nerves", "peripheral_nerves", "mri"];
  var MAX_LPS = 6;

  function $(id) { return document.getElementById(id); }

  function expit(x) { return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)); }

  function logsumexp(xs) {
    var m = -Infinity, i;
    for (i = 0; i < xs.length; i++) { if (xs[i] > m) { m = xs[i]; } }
    if (!isFinite(m)) { return -Infinity; }
    var s = 0;
    for (i = 0; i < xs.length; i++) { s += Math.exp(xs[i] - m); }
    return m + Math.log(s);
  }

  function quantile(sorted, q) {  // numpy's default (linear) method
    var h = (sorted.length - 1) * q, lo = Math.floor(h), hi = Math.ceil(h);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  /* Never 0% or 100% (reports/wording.py percent, one decimal). */
  function percent(p) {
    var lo = 0.001;
    if (p < lo) { return "<0.1%"; }
    if (p > 1 - lo) { return ">99.9%"; }
    var text = (100 * p).toFixed(1) + "%";
    if (text === "0.0%") { return "<0.1%"; }
    if (text === "100.0%") { return ">99.9%"; }
    return text;
  }

  function factor(logLr) {
    var f = Math.exp(logLr);
    if (f >= 100) { return "x " + Math.round(f).toLocaleString("en"); }
    if (f >= 10) { return "x " + f.toFixed(1); }
    if (f < 1) { return "x " + Number(f.toPrecision(2)); }
    return "x " + f.toFixed(2);
  }

  function summary(values, ci) {  // log odds per draw -> probability summary
    var n = values.length, mean = 0, i;
    for (i = 0; i < n; i++) { mean += expit(values[i]); }
    var sorted = Float64Array.from(values).sort();
    return { mean: mean / n, median: expit(quantile(sorted, 0.5)),
             lower: expit(quantile(sorted, (1 - ci) / 2)), upper: expit(quantile(sorted, (1 + ci) / 2)) };
  }

  function lrSummary(values, ci) {
    var sorted = Float64Array.from(values).sort();
    return { median: quantile(sorted, 0.5), lower: quantile(sorted, (1 - ci) / 2),
             upper: quantile(sorted, (1 + ci) / 2) };
  }

  function levelIndex(model, item, level) {
    for (var j = 0; j < model.levels.length; j++) {
      if (model.levels[j][0] === item && model.levels[j][1] === level) { return j; }
    }
    throw new Error("unknown level " + item + " " + level);
  }

  function strataMask(model, lineage, remission) {
    var lins = model.lineages, rems = model.remissions, mask = [], a, b;
    for (a = 0; a < lins.length; a++) {
      for (b = 0; b < rems.length; b++) {
        mask.push((lineage === null || lins[a] === lineage) && (remission === null || rems[b] === remission));
      }
    }
    return mask;
  }

  /* Players in clinical order: {finding, label, kind: "stratum" | "level", ...}. */
  function readPlayers(model) {
    var players = [], v;
    v = $("lineage").value;
    if (v !== "unknown") { players.push({ finding: "lineage", label: "lineage: " + v, kind: "lineage", value: v }); }
    v = $("remission").value;
    if (v !== "unknown") { players.push({ finding: "remission", label: "remission: " + v, kind: "remission", value: v }); }
    ["laterality", "other_cranial_nerves", "peripheral_nerves"].forEach(function (f) {
      var val = $(f).value;
      if (val !== "unknown") { players.push({ finding: f, label: f + ": " + val, kind: "level", level: levelIndex(model, f, val) }); }
    });
    var nlp = parseInt($("n-lps").value, 10);
    for (var i = 1; i <= nlp; i++) {
      var res = $("lp-" + i + "-result").value, met = $("lp-" + i + "-method").value;
      players.push({ finding: "csf", label: "LP " + i + " " + res + ":" + met, kind: "level",
                     level: levelIndex(model, "csf_" + met, res) });
    }
    v = $("mri").value;
    if (v !== "unknown") { players.push({ finding: "mri", label: "mri: " + v, kind: "level", level: levelIndex(model, "mri", v) }); }
    return players;
  }

  /* Log LR per draw of the first m players (the prefix), for m = 0..players.length. */
  function prefixLogLr(model, players) {
    var n = model.n, K = model.is_l.length, out = [], m, s, k, p;
    var lineage = null, remission = null;
    var acc = [];  // per draw, per component: sum of level log probabilities
    for (s = 0; s < n; s++) { acc.push(new Float64Array(K)); }
    for (m = 0; m <= players.length; m++) {
      if (m > 0) {
        p = players[m - 1];
        if (p.kind === "lineage") { lineage = p.value; }
        else if (p.kind === "remission") { remission = p.value; }
        else { for (s = 0; s < n; s++) { for (k = 0; k < K; k++) { acc[s][k] += model.level_lp[s][k][p.level]; } } }
      }
      var mask = strataMask(model, lineage, remission);
      var llr = new Float64Array(n);
      for (s = 0; s < n; s++) {
        var ls = [], lb = 0;
        for (k = 0; k < K; k++) {
          // log P(compatible strata, component | hypothesis): the forms' weights depend on lineage
          var xs = [];
          for (var j = 0; j < mask.length; j++) { if (mask[j]) { xs.push(model.log_sk[s][k][j]); } }
          var a = logsumexp(xs) + acc[s][k];
          if (model.is_l[k]) { ls.push(a); } else { lb = a; }
        }
        llr[s] = logsumexp(ls) - lb;
      }
      out.push(llr);
    }
    return out;
  }

  function currentModel() {
    var name = $("variant").value;
    for (var i = 0; i < MODELS.length; i++) { if (MODELS[i].variant === name) { return MODELS[i]; } }
    return MODELS[0];
  }

  function priorLogOdds(model) {
    if ($("base-pretest").checked) {
      var p = parseFloat($("pretest").value) / 100;
      if (!(p > 0 && p < 1)) { return null; }
      var lo = Math.log(p / (1 - p)), arr = new Float64Array(model.n);
      arr.fill(lo);
      return arr;
    }
    return Float64Array.from(model.logit_prior);
  }

  function compute() {
    var model = currentModel(), ci = parseFloat($("ci").value);
    var prior = priorLogOdds(model);
    if (prior === null) {
      $("result").textContent = "Give a pretest probability between 0.1 and 99.9 (percent).";
      $("result").removeAttribute("data-mean");
      return null;
    }
    var players = readPlayers(model), prefixes = prefixLogLr(model, players), n = model.n, s;
    var steps = [], running = Float64Array.from(prior);
    var priorSummary = summary(prior, ci);
    for (var m = 1; m < prefixes.length; m++) {
      var contrib = new Float64Array(n);
      for (s = 0; s < n; s++) { contrib[s] = prefixes[m][s] - prefixes[m - 1][s]; running[s] = prior[s] + prefixes[m][s]; }
      steps.push({ label: players[m - 1].label, lr: lrSummary(contrib, ci), after: summary(running, ci) });
    }
    var post = new Float64Array(n);
    for (s = 0; s < n; s++) { post[s] = prior[s] + prefixes[prefixes.length - 1][s]; }
    return { model: model, ci: ci, prior: priorSummary, steps: steps, post: summary(post, ci) };
  }

  function render() {
    var r = compute();
    if (r === null) { return; }
    var ciPct = Math.round(100 * r.ci) + "% CrI";
    var res = $("result");
    res.setAttribute("data-mean", String(r.post.mean));
    res.setAttribute("data-median", String(r.post.median));
    res.setAttribute("data-lower", String(r.post.lower));
    res.setAttribute("data-upper", String(r.post.upper));
    $("p-mean").textContent = percent(r.post.mean);
    $("p-interval").textContent = ciPct + " " + percent(r.post.lower) + " to " + percent(r.post.upper);
    $("p-median").textContent = percent(r.post.median);
    $("p-draws").textContent = r.model.n + " posterior draws, " + r.model.variant + " variant";
    $("p-base").textContent = ($("base-pretest").checked ? "pretest (set by you)" : "model's base rate") + ": mean " +
      percent(r.prior.mean) + " (" + ciPct + " " + percent(r.prior.lower) + " to " + percent(r.prior.upper) + ")";
    drawWaterfall(r);
  }

  function drawWaterfall(r) {
    var tbody = $("waterfall-body");
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    var rows = [{ label: $("base-pretest").checked ? "pretest" : "base rate", lr: null, after: r.prior }].concat(r.steps);
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      var cells = [row.label,
        row.lr ? factor(row.lr.median) : "",
        row.lr ? factor(row.lr.lower) + " to " + factor(row.lr.upper) : "",
        percent(row.after.mean),
        percent(row.after.lower) + " to " + percent(row.after.upper)];
      cells.forEach(function (text, i) {
        var td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) { td.setAttribute("scope", "row"); }
        td.textContent = text;
        tr.appendChild(td);
      });
      var bar = document.createElement("td"), svgNS = "http://www.w3.org/2000/svg";
      var svg = document.createElementNS(svgNS, "svg");
      svg.setAttribute("width", "200"); svg.setAttribute("height", "14"); svg.setAttribute("aria-hidden", "true");
      var band = document.createElementNS(svgNS, "rect");
      band.setAttribute("x", String(200 * row.after.lower)); band.setAttribute("y", "3");
      band.setAttribute("width", String(Math.max(1, 200 * (row.after.upper - row.after.lower)))); band.setAttribute("height", "8");
      band.setAttribute("class", "band");
      var dot = document.createElementNS(svgNS, "rect");
      dot.setAttribute("x", String(200 * row.after.mean - 1.5)); dot.setAttribute("y", "0");
      dot.setAttribute("width", "3"); dot.setAttribute("height", "14"); dot.setAttribute("class", "mean");
      svg.appendChild(band); svg.appendChild(dot); bar.appendChild(svg); tr.appendChild(bar);
      tbody.appendChild(tr);
    });
  }

  function syncLps() {
    var nlp = parseInt($("n-lps").value, 10);
    for (var i = 1; i <= MAX_LPS; i++) { $("lp-" + i).hidden = i > nlp; }
  }

  function syncBase() {
    var on = $("base-pretest").checked;
    $("pretest").disabled = !on;
  }

  function onChange() { syncLps(); syncBase(); render(); }

  document.querySelectorAll("#controls select, #controls input").forEach(function (el) {
    el.addEventListener("change", onChange);
    if (el.type === "number") { el.addEventListener("input", onChange); }
  });
  $("reset").addEventListener("click", function () {
    document.getElementById("controls").reset();
    onChange();
  });
  window.palsyTeach = { compute: compute, render: render, percent: percent };
  onChange();
  document.body.setAttribute("data-ready", "true");
}());

/* palsy interactive page: the differential of a facial palsy in leukemia, computed in the browser
 * from every posterior draw, with the formulas of model/answer.py.
 *
 * Per draw s, component k (its cause c(k)) and the findings x given:
 *   a[s,k]  = log P(context, k | c(k))   (lineage x remission strata; unknown ones summed)
 *           + sum of level_lp[s,k,level] over the tree findings and the LPs
 *           + the CSF profile's term (jointly with the first LP's result, or with it marginalised);
 *   lj[s,c] = log P(c) + logsumexp over the components of c of a[s,k]   (causes not weighed: -inf);
 *   P(c | x) = softmax over c; log odds of infiltration = lj[inf] - logsumexp over the other causes.
 * With a pretest P: P(infiltration) = P and the other causes their model shares of 1 - P given the
 * context, which then moves nothing further (as `palsy posterior --pretest`).
 * The headline is the mean of P(infiltration) over draws; the median and the equal-tailed interval
 * are quantiles of the log odds (linear interpolation, as numpy) mapped through expit. A cause's
 * interval is the quantiles of its probability; a factor on the odds is exp(mean log factor).
 * No network: the draws are embedded in the page as base64 float32 arrays.
 */
(function () {
  "use strict";

  var MODELS = JSON.parse(document.getElementById("palsy-draws").textContent);
  var TREE = ["onset", "laterality", "eighth_nerve", "other_cranial_nerves", "peripheral_nerves", "vesicles", "otoscopy"];
  var CAUSE_NAMES = { infiltration: "leukemic infiltration", bell: "Bell's palsy", zoster: "VZV (Ramsay Hunt)",
                      vincristine: "vincristine neuropathy", gbs: "Guillain-Barré syndrome", otomastoiditis: "otomastoiditis" };
  var MAX_LPS = 6;

  function $(id) { return document.getElementById(id); }
  function causeName(c) { return CAUSE_NAMES[c] || c; }

  function f32(b64) {
    var bin = atob(b64), n = bin.length, u = new Uint8Array(n);
    for (var i = 0; i < n; i++) { u[i] = bin.charCodeAt(i); }
    return new Float32Array(u.buffer);
  }

  function prepare(model) {  // decode once, on first use
    if (model.ready) { return model; }
    model.C = model.causes.length;
    model.K = model.components.length;
    model.L = model.levels.length;
    model.NS = model.lineages.length * model.remissions.length;
    model.logPrior = f32(model.log_prior);
    model.logCtx = f32(model.log_ctx);
    model.levelLp = f32(model.level_lp);
    model.ready = true;
    return model;
  }

  function expit(x) { return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)); }

  function logsumexp(xs) {
    var m = -Infinity, i;
    for (i = 0; i < xs.length; i++) { if (xs[i] > m) { m = xs[i]; } }
    if (!isFinite(m)) { return -Infinity; }
    var s = 0;
    for (i = 0; i < xs.length; i++) { s += Math.exp(xs[i] - m); }
    return m + Math.log(s);
  }

  function logaddexp(a, b) { return logsumexp([a, b]); }

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

  function mean(values) {
    var s = 0;
    for (var i = 0; i < values.length; i++) { s += values[i]; }
    return s / values.length;
  }

  function probSummary(logOdds, ci) {  // log odds per draw -> probability summary (model.answer.probability_summary)
    var n = logOdds.length, m = 0, i;
    for (i = 0; i < n; i++) { m += expit(logOdds[i]); }
    var sorted = Float64Array.from(logOdds).sort();
    return { mean: m / n, median: expit(quantile(sorted, 0.5)),
             lower: expit(quantile(sorted, (1 - ci) / 2)), upper: expit(quantile(sorted, (1 + ci) / 2)) };
  }

  function summary(values, ci) {  // model.answer.summary (unweighted)
    var sorted = Float64Array.from(values).sort();
    return { mean: mean(values), median: quantile(sorted, 0.5), lower: quantile(sorted, (1 - ci) / 2),
             upper: quantile(sorted, (1 + ci) / 2) };
  }

  function levelIndex(model, item, level) {
    for (var j = 0; j < model.levels.length; j++) {
      if (model.levels[j][0] === item && model.levels[j][1] === level) { return j; }
    }
    throw new Error("unknown level " + item + " " + level);
  }

  function lp(model, s, k, j) { return model.levelLp[(s * model.K + k) * model.L + j]; }

  /* log P(context, k | c(k)) over the strata compatible with lineage / remission (null: unknown). */
  function ctxTerm(model, s, k, lineage, remission) {
    var xs = [], a, b, R = model.remissions.length, base = (s * model.K + k) * model.NS;
    for (a = 0; a < model.lineages.length; a++) {
      if (lineage !== null && model.lineages[a] !== lineage) { continue; }
      for (b = 0; b < R; b++) {
        if (remission !== null && model.remissions[b] !== remission) { continue; }
        xs.push(model.logCtx[base + a * R + b]);
      }
    }
    return logsumexp(xs);
  }

  function value(id) { var v = $(id).value; return v === "unknown" ? null : v; }

  /* The findings as entered: context, players in clinical order (model.answer.players). */
  function readInputs(model) {
    var usePretest = $("base-pretest").checked;
    var ctx = { lineage: value("lineage"), remission: value("remission") };
    var players = [];
    if (!usePretest) {
      if (ctx.lineage !== null) { players.push({ kind: "lineage", label: "lineage: " + ctx.lineage, value: ctx.lineage }); }
      if (ctx.remission !== null) { players.push({ kind: "remission", label: "remission: " + ctx.remission, value: ctx.remission }); }
    }
    TREE.forEach(function (f) {
      var v = value(f);
      if (v !== null) { players.push({ kind: "level", label: f + ": " + v, level: levelIndex(model, f, v) }); }
    });
    var nlp = parseInt($("n-lps").value, 10), lps = [];
    for (var i = 1; i <= nlp; i++) {
      var res = $("lp-" + i + "-result").value, met = $("lp-" + i + "-method").value;
      lps.push({ result: res, method: met });
      players.push({ kind: "lp", label: "LP " + i + " " + res + ":" + met, level: levelIndex(model, "csf_" + met, res),
                     index: i, result: res });
    }
    var prof = value("csf_profile");
    if (prof !== null) { players.push({ kind: "profile", label: "csf_profile: " + prof, value: prof }); }
    var mri = value("mri");
    if (mri !== null) { players.push({ kind: "level", label: "mri: " + mri, level: levelIndex(model, "mri", mri) }); }
    var active = model.causes.map(function (c) { return c === "infiltration" || $("cause-" + c).checked; });
    return { ctx: ctx, players: players, lps: lps, usePretest: usePretest, active: active };
  }

  /* Per prefix m = 0..players.length: the log joint of every cause, per draw (Float64Array n x C). */
  function prefixJoints(model, inp, pretest) {
    var n = model.n, K = model.K, C = model.C, s, k, c, m, p;
    var inf = model.causes.indexOf("infiltration");
    var byCause = [];
    for (c = 0; c < C; c++) { byCause.push([]); }
    for (k = 0; k < K; k++) { byCause[model.component_cause[k]].push(k); }
    var firstMethod = inp.lps.length ? inp.lps[0].method : model.default_method;
    var out = [];
    var acc = new Float64Array(n * K);  // tree and LP terms of the prefix
    var base = new Float64Array(n * C), offset = new Float64Array(n * K);
    for (s = 0; s < n; s++) {
      if (pretest === null) {
        for (c = 0; c < C; c++) { base[s * C + c] = model.logPrior[s * C + c]; }
      } else {  // model.answer.answer with --pretest
        var full = [], lc = [];
        for (k = 0; k < K; k++) { full.push(ctxTerm(model, s, k, inp.ctx.lineage, inp.ctx.remission)); }
        for (c = 0; c < C; c++) { lc.push(logsumexp(byCause[c].map(function (kk) { return full[kk]; }))); }
        for (k = 0; k < K; k++) { offset[s * K + k] = full[k] - lc[model.component_cause[k]]; }
        var q = [];
        for (c = 0; c < C; c++) { q.push(c !== inf && inp.active[c] ? model.logPrior[s * C + c] + lc[c] : -Infinity); }
        var z = logsumexp(q);
        for (c = 0; c < C; c++) { base[s * C + c] = c === inf ? Math.log(pretest) : q[c] - z + Math.log(1 - pretest); }
      }
    }
    var lineage = null, remission = null, profile = null, lpSeen = false;
    for (m = 0; m <= inp.players.length; m++) {
      if (m > 0) {
        p = inp.players[m - 1];
        if (p.kind === "lineage") { lineage = p.value; }
        else if (p.kind === "remission") { remission = p.value; }
        else if (p.kind === "profile") { profile = p.value; }
        else {
          if (p.kind === "lp") { lpSeen = true; }
          for (s = 0; s < n; s++) { for (k = 0; k < K; k++) { acc[s * K + k] += lp(model, s, k, p.level); } }
        }
      }
      var lj = new Float64Array(n * C), a = new Float64Array(K);
      var profJ = profile === null ? -1 : levelIndex(model, "csf_profile_" + (lpSeen ? inp.lps[0].result : "negative"), profile);
      var margIdx = profile === null || lpSeen ? null : [
        [levelIndex(model, "csf_" + firstMethod, "negative"), levelIndex(model, "csf_profile_negative", profile)],
        [levelIndex(model, "csf_" + firstMethod, "positive"), levelIndex(model, "csf_profile_positive", profile)]];
      for (s = 0; s < n; s++) {
        for (k = 0; k < K; k++) {
          var t = acc[s * K + k];
          if (pretest === null) { t += ctxTerm(model, s, k, lineage, remission); }
          else { t += offset[s * K + k]; }
          if (profile !== null) {
            t += lpSeen ? lp(model, s, k, profJ)
              : logaddexp(lp(model, s, k, margIdx[0][0]) + lp(model, s, k, margIdx[0][1]),
                          lp(model, s, k, margIdx[1][0]) + lp(model, s, k, margIdx[1][1]));
          }
          a[k] = t;
        }
        for (c = 0; c < C; c++) {
          lj[s * C + c] = inp.active[c] ? base[s * C + c] + logsumexp(byCause[c].map(function (kk) { return a[kk]; }))
            : -Infinity;
        }
      }
      out.push(lj);
    }
    return out;
  }

  function logOdds(model, lj) {
    var n = model.n, C = model.C, inf = model.causes.indexOf("infiltration"), out = new Float64Array(n);
    for (var s = 0; s < n; s++) {
      var others = [];
      for (var c = 0; c < C; c++) { if (c !== inf) { others.push(lj[s * C + c]); } }
      out[s] = lj[s * C + inf] - logsumexp(others);
    }
    return out;
  }

  function causeProbs(model, lj) {  // per cause, Float64Array over draws
    var n = model.n, C = model.C, out = [], c, s;
    for (c = 0; c < C; c++) { out.push(new Float64Array(n)); }
    for (s = 0; s < n; s++) {
      var row = Array.prototype.slice.call(lj, s * C, (s + 1) * C), z = logsumexp(row);
      for (c = 0; c < C; c++) { out[c][s] = Math.exp(row[c] - z); }
    }
    return out;
  }

  function currentModel() {
    var name = $("variant").value;
    for (var i = 0; i < MODELS.length; i++) { if (MODELS[i].variant === name) { return prepare(MODELS[i]); } }
    return prepare(MODELS[0]);
  }

  function compute() {
    var model = currentModel(), ci = parseFloat($("ci").value), pretest = null;
    if ($("base-pretest").checked) {
      pretest = parseFloat($("pretest").value) / 100;
      if (!(pretest > 0 && pretest < 1)) { return null; }
    }
    var inp = readInputs(model);
    var joints = prefixJoints(model, inp, pretest);
    var lo = joints.map(function (lj) { return logOdds(model, lj); });
    var last = joints[joints.length - 1];
    var probs = causeProbs(model, last), priorProbs = causeProbs(model, joints[0]);
    var causes = [];
    model.causes.forEach(function (c, j) {
      if (!inp.active[j]) { return; }
      var sm = summary(probs[j], ci);
      causes.push({ cause: c, mean: sm.mean, lower: sm.lower, upper: sm.upper, prior: mean(priorProbs[j]) });
    });
    var steps = [];
    for (var m = 1; m < lo.length; m++) {
      var contrib = new Float64Array(model.n);
      for (var s = 0; s < model.n; s++) { contrib[s] = lo[m][s] - lo[m - 1][s]; }
      steps.push({ label: inp.players[m - 1].label, lr: summary(contrib, ci), after: probSummary(lo[m], ci),
                   leading: leading(model, joints[m], inp.active) });
    }
    return { model: model, ci: ci, prior: probSummary(lo[0], ci), priorLeading: leading(model, joints[0], inp.active),
             steps: steps, post: probSummary(lo[lo.length - 1], ci), causes: causes,
             leading: leading(model, last, inp.active), pretest: pretest };
  }

  function leading(model, lj, active) {
    var probs = causeProbs(model, lj), best = -1, who = null;
    model.causes.forEach(function (c, j) {
      var v = mean(probs[j]);
      if (active[j] && v > best) { best = v; who = c; }
    });
    return who;
  }

  function cell(tr, text, header) {
    var td = document.createElement(header ? "th" : "td");
    if (header) { td.setAttribute("scope", "row"); }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function render() {
    var r = compute();
    var res = $("result");
    if (r === null) {
      $("p-mean").textContent = "...";
      $("p-interval").textContent = "give a pretest probability between 0.1 and 99.9 (percent)";
      res.removeAttribute("data-mean");
      return;
    }
    var ciPct = Math.round(100 * r.ci) + "% CrI";
    res.setAttribute("data-mean", String(r.post.mean));
    res.setAttribute("data-median", String(r.post.median));
    res.setAttribute("data-lower", String(r.post.lower));
    res.setAttribute("data-upper", String(r.post.upper));
    res.setAttribute("data-leading", r.leading);
    $("p-mean").textContent = percent(r.post.mean);
    $("p-interval").textContent = ciPct + " " + percent(r.post.lower) + " to " + percent(r.post.upper);
    $("p-median").textContent = percent(r.post.median);
    $("p-against").textContent = r.causes.filter(function (c) { return c.cause !== "infiltration"; })
      .map(function (c) { return causeName(c.cause); }).join(", ");
    $("p-leading").textContent = causeName(r.leading);
    $("p-draws").textContent = r.model.n + " posterior draws, " + r.model.variant + " variant";
    $("p-base").textContent = (r.pretest !== null ? "pretest (set by you)" : "before any finding") + ": mean " +
      percent(r.prior.mean) + " (" + ciPct + " " + percent(r.prior.lower) + " to " + percent(r.prior.upper) + ")";
    var body = $("differential-body");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    r.causes.forEach(function (c) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-cause", c.cause);
      tr.setAttribute("data-mean", String(c.mean));
      cell(tr, causeName(c.cause), true);
      cell(tr, percent(c.mean));
      cell(tr, percent(c.lower) + " to " + percent(c.upper));
      cell(tr, percent(c.prior));
      body.appendChild(tr);
    });
    drawWaterfall(r);
  }

  function drawWaterfall(r) {
    var tbody = $("waterfall-body");
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    var rows = [{ label: r.pretest !== null ? "pretest" : "before any finding", lr: null, after: r.prior,
                  leading: r.priorLeading }].concat(r.steps);
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      cell(tr, row.label, true);
      cell(tr, row.lr ? factor(row.lr.mean) : "");
      cell(tr, row.lr ? factor(row.lr.lower) + " to " + factor(row.lr.upper) : "");
      cell(tr, percent(row.after.mean));
      cell(tr, percent(row.after.lower) + " to " + percent(row.after.upper));
      cell(tr, causeName(row.leading));
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

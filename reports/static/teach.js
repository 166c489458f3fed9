/* palsy interactive page: the differential of a facial palsy in leukemia, the decision and what to do
 * now, computed in the browser from every posterior draw with the formulas of model/answer.py,
 * model/decision.py and model/guidance.py (numpy twins of the tables' decoding: model/teach.py rebuild).
 *
 * Tables (per draw s, float32): the node probabilities on the logit scale, from which
 *   log P(level | k) = sum over the level's path of log theta or log(1 - theta);
 * and the rate model as log parameters times 0/1 incidences, from which
 *   joint[c, stratum] = log P(stratum) + log rate(c, stratum),  log P(c) = softmax of logsumexp_stratum,
 *   log P(stratum, k | c(k)) = joint - logsumexp_stratum joint + log omega[lineage, form of k].
 * Per component k (its cause c(k)) and the findings x given:
 *   a[s,k]  = log P(context, k | c(k))  (the strata compatible with the context findings; unknown summed)
 *           + sum of log P(level | k) over the tree findings and the LPs
 *           + the CSF profile's term (jointly with the first LP's result, or with it marginalised);
 *   lj[s,c] = log P(c) + logsumexp over the components of c of a[s,k]   (causes not weighed: -inf);
 *   P(c | x) = softmax over c; log odds of infiltration = lj[inf] - logsumexp over the other causes.
 * With a pretest P: P(infiltration) = P and the other causes their model shares of 1 - P given the
 * context, which then moves nothing further (as `palsy posterior --pretest`).
 * The headline is the mean of P(infiltration) over draws; the median and the equal-tailed interval
 * are quantiles of the log odds (linear interpolation, as numpy) mapped through expit. A cause's
 * interval is the quantiles of its probability; a factor on the odds is exp(mean log factor).
 * The decision (Pauker-Kassirer) is taken on the mean; the actions' triggers are evaluated on the
 * mean probability of each cause weighed, the findings as given and the decision.
 * No network: the draws, the decision's harms and the actions are embedded in the page.
 */
(function () {
  "use strict";

  var MODELS = JSON.parse(document.getElementById("palsy-draws").textContent);
  var RULES = JSON.parse(document.getElementById("palsy-rules").textContent);
  var NAMES = RULES.names;
  var TREE = ["onset", "laterality", "eighth_nerve", "other_cranial_nerves", "peripheral_nerves", "vesicles",
              "otoscopy"];
  var CONTEXT = MODELS[0].context;
  var MAX_LPS = RULES.max_lps;
  var INF = "infiltration";
  var METHODS = ["cytology", "flow"];
  var RESULTS = ["negative", "positive"];

  function $(id) { return document.getElementById(id); }
  function causeName(c) { return NAMES.causes[c] || c.replace(/_/g, " "); }
  function testName(t) { return NAMES.tests[t] || t.replace(/_/g, " "); }

  function f32(b64) {
    var bin = atob(b64), n = bin.length, u = new Uint8Array(n);
    for (var i = 0; i < n; i++) { u[i] = bin.charCodeAt(i); }
    return new Float32Array(u.buffer);
  }

  function logsumexp(xs) {
    var m = -Infinity, i;
    for (i = 0; i < xs.length; i++) { if (xs[i] > m) { m = xs[i]; } }
    if (!isFinite(m)) { return m; }
    var s = 0;
    for (i = 0; i < xs.length; i++) { s += Math.exp(xs[i] - m); }
    return m + Math.log(s);
  }

  function logaddexp(a, b) { return logsumexp([a, b]); }
  function log1pexp(x) { return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)); }
  function expit(x) { return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)); }

  /* Decode a variant once, on first use: log P(level | k), log P(c) and P(stratum, k | c(k)). */
  function prepare(model) {
    if (model.ready) { return model; }
    var n = model.n, C = model.causes.length, K = model.components.length, L = model.levels.length;
    var NS = model.strata.length, N = model.nodes, s, k, c, i, j, idx;
    model.C = C; model.K = K; model.L = L; model.NS = NS;
    model.inf = model.causes.indexOf(INF);
    model.levelIndex = {};
    model.levels.forEach(function (key, jj) { model.levelIndex[key[0] + "|" + key[1]] = jj; });
    model.byCause = [];
    for (c = 0; c < C; c++) { model.byCause.push([]); }
    for (k = 0; k < K; k++) { model.byCause[model.component_cause[k]].push(k); }

    var lt = f32(model.logit_theta), levelLp = new Float64Array(n * K * L);
    var logT = new Float64Array(N), log1mT = new Float64Array(N);
    for (s = 0; s < n; s++) {
      for (k = 0; k < K; k++) {
        for (i = 0; i < N; i++) {
          var x = lt[(s * K + k) * N + i];
          logT[i] = -log1pexp(-x);
          log1mT[i] = -log1pexp(x);
        }
        for (j = 0; j < L; j++) {
          var path = model.level_paths[j], v = 0;
          for (i = 0; i < path.length; i++) { v += path[i][1] ? logT[path[i][0]] : log1mT[path[i][0]]; }
          levelLp[(s * K + k) * L + j] = v;
        }
      }
    }
    var feats = f32(model.ctx_features), J = model.ctx_incidence.length;
    var forms = f32(model.form_features), JF = model.form_incidence.length;
    var logPrior = new Float64Array(n * C), pSK = new Float64Array(n * K * NS);
    var joint = new Float64Array(C * NS), formTerm = new Float64Array(K * NS), total = new Float64Array(C);
    for (s = 0; s < n; s++) {
      for (i = 0; i < C * NS; i++) { joint[i] = model.ctx_fixed[i]; }
      for (j = 0; j < J; j++) {
        var fv = feats[s * J + j];
        idx = model.ctx_incidence[j];
        for (i = 0; i < idx.length; i++) { joint[idx[i]] += fv; }
      }
      formTerm.fill(0);
      for (j = 0; j < JF; j++) {
        var wv = forms[s * JF + j];
        idx = model.form_incidence[j];
        for (i = 0; i < idx.length; i++) { formTerm[idx[i]] += wv; }
      }
      for (c = 0; c < C; c++) { total[c] = logsumexp(joint.subarray(c * NS, (c + 1) * NS)); }
      var z = logsumexp(total);
      for (c = 0; c < C; c++) { logPrior[s * C + c] = total[c] - z; }
      for (k = 0; k < K; k++) {
        c = model.component_cause[k];
        for (i = 0; i < NS; i++) {
          pSK[(s * K + k) * NS + i] = Math.exp(joint[c * NS + i] - total[c] + formTerm[k * NS + i]);
        }
      }
    }
    model.levelLp = levelLp;
    model.logPrior = logPrior;
    model.pSK = pSK;
    model.ctxCache = {};
    model.ready = true;
    return model;
  }

  function levelIdx(model, item, level) {
    var j = model.levelIndex[item + "|" + level];
    if (j === undefined) { throw new Error("unknown level " + item + " " + level); }
    return j;
  }

  /* log P(context, k | c(k)) per draw and component (n x K): the strata compatible with the known
   * context findings (model.answer.Tables.context_term). */
  function ctxTerm(model, ctx) {
    var key = JSON.stringify(ctx);
    if (model.ctxCache[key]) { return model.ctxCache[key]; }
    var keep = [], a, i;
    var want = CONTEXT.map(function (name, ax) {
      return ctx[name] === null || ctx[name] === undefined ? -1 : model.context_levels[ax].indexOf(ctx[name]);
    });
    for (i = 0; i < model.NS; i++) {
      var ok = true;
      for (a = 0; a < CONTEXT.length; a++) { if (want[a] >= 0 && model.strata[i][a] !== want[a]) { ok = false; } }
      if (ok) { keep.push(i); }
    }
    var n = model.n, K = model.K, NS = model.NS, out = new Float64Array(n * K);
    for (var sk = 0; sk < n * K; sk++) {
      var t = 0, base = sk * NS;
      for (i = 0; i < keep.length; i++) { t += model.pSK[base + keep[i]]; }
      out[sk] = Math.log(t);
    }
    model.ctxCache[key] = out;
    return out;
  }

  function quantile(sorted, q) {  // numpy's default (linear) method
    var h = (sorted.length - 1) * q, lo = Math.floor(h), hi = Math.ceil(h);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  /* model.answer.weighted_quantile at each of ``qs``: midpoints of the cumulative weights, then numpy's interp. */
  function weightedQuantiles(values, weights, qs) {
    var n = values.length, order = new Uint32Array(n), i;
    for (i = 0; i < n; i++) { order[i] = i; }
    order.sort(function (a, b) { return values[a] - values[b]; });
    var xs = new Float64Array(n), cw = new Float64Array(n), acc = 0;
    for (i = 0; i < n; i++) { xs[i] = values[order[i]]; acc += weights[order[i]]; cw[i] = acc - 0.5 * weights[order[i]]; }
    for (i = 0; i < n; i++) { cw[i] /= acc; }
    return qs.map(function (q) {
      if (q <= cw[0]) { return xs[0]; }
      if (q >= cw[n - 1]) { return xs[n - 1]; }
      var lo = 0, hi = n - 1;
      while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (cw[mid] <= q) { lo = mid; } else { hi = mid; } }
      return xs[lo] + (q - cw[lo]) * (xs[hi] - xs[lo]) / (cw[hi] - cw[lo]);
    });
  }

  function mean(values) {
    var s = 0;
    for (var i = 0; i < values.length; i++) { s += values[i]; }
    return s / values.length;
  }

  function wmean(values, w) {
    var s = 0, t = 0;
    for (var i = 0; i < values.length; i++) { s += values[i] * w[i]; t += w[i]; }
    return s / t;
  }

  function summary(values, ci) {  // model.answer.summary (unweighted)
    var sorted = Float64Array.from(values).sort();
    return { mean: mean(values), median: quantile(sorted, 0.5), lower: quantile(sorted, (1 - ci) / 2),
             upper: quantile(sorted, (1 + ci) / 2) };
  }

  function probSummary(logOdds, ci, w) {  // model.answer.probability_summary
    var p = logOdds.map(expit);
    if (!w) {
      var s = summary(logOdds, ci);
      return { mean: mean(p), median: expit(s.median), lower: expit(s.lower), upper: expit(s.upper) };
    }
    var q = weightedQuantiles(logOdds, w, [0.5, (1 - ci) / 2, (1 + ci) / 2]);
    return { mean: wmean(p, w), median: expit(q[0]), lower: expit(q[1]), upper: expit(q[2]) };
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

  function signed(x, digits) { return (x >= 0 ? "+" : "") + x.toFixed(digits); }

  // --- the findings as entered ---------------------------------------------------------------------

  function value(id) { var v = $(id).value; return v === "unknown" ? null : v; }

  /* The level used for computation (model.findings.Patient.level: at_diagnosis as not in remission). */
  function level(values, name) {
    var v = values[name];
    return name === "remission" && v === RULES.at_diagnosis ? "not_in_remission" : v;
  }

  function percentInput(id) {
    var x = parseFloat($(id).value) / 100;
    return x > 0 && x < 1 ? x : null;
  }

  /* Everything the query needs; ``error`` names a bad input. */
  function readInputs(model) {
    var values = {};
    RULES.findings.forEach(function (name) { values[name] = value(name); });
    var nlp = parseInt($("n-lps").value, 10), csf = [];
    for (var i = 1; i <= nlp; i++) { csf.push({ result: $("lp-" + i + "-result").value, method: $("lp-" + i + "-method").value }); }
    var inp = { values: values, csf: csf, ci: parseFloat($("ci").value), pretest: null, thresholds: null, error: null,
                active: model.causes.map(function (c) { return c === INF || $("cause-" + c).checked; }) };
    if ($("base-pretest").checked) {
      inp.pretest = percentInput("pretest");
      if (inp.pretest === null) { inp.error = "give a pretest probability between 0.1 and 99.9 (percent)"; }
    }
    if ($("own-thresholds").checked) {
      var low = percentInput("threshold-low"), high = percentInput("threshold-high");
      if (low === null || high === null || !(low < high)) {
        inp.error = "give decision thresholds with 0 < lower < upper < 100 (percent)";
      } else {
        inp.thresholds = { low: low, high: high };
      }
    }
    return inp;
  }

  /* The observed findings in clinical order (model.answer.players); no context players with a pretest. */
  function players(model, inp) {
    var out = [], v = inp.values;
    if (inp.pretest === null) {
      CONTEXT.forEach(function (name) {
        if (v[name] !== null) { out.push({ kind: "context", finding: name, value: level(v, name), label: name + ": " + level(v, name) }); }
      });
    }
    TREE.forEach(function (name) {
      if (v[name] !== null) { out.push({ kind: "level", finding: name, value: v[name], label: name + ": " + v[name], level: levelIdx(model, name, v[name]) }); }
    });
    inp.csf.forEach(function (lp, i) {
      var code = lp.result + ":" + lp.method;
      out.push({ kind: "lp", finding: "csf", index: i + 1, value: code, label: "LP " + (i + 1) + " " + code,
                 level: levelIdx(model, "csf_" + lp.method, lp.result) });
    });
    if (v.csf_profile !== null) { out.push({ kind: "profile", finding: "csf_profile", value: v.csf_profile, label: "csf_profile: " + v.csf_profile }); }
    if (v.mri !== null) { out.push({ kind: "level", finding: "mri", value: v.mri, label: "mri: " + v.mri, level: levelIdx(model, "mri", v.mri) }); }
    return out;
  }

  // --- the game: log P(c) + log p(findings | c) per draw ------------------------------------------

  function Game(model, inp) {
    var n = model.n, C = model.C, K = model.K, s, c, k;
    this.model = model;
    this.inp = inp;
    this.players = players(model, inp);
    this.active = inp.active;
    this.firstMethod = inp.csf.length ? inp.csf[0].method : model.default_method;
    this.base = new Float64Array(n * C);
    this.offset = null;
    if (inp.pretest === null) {
      this.base.set(model.logPrior);
    } else {  // model.answer.answer with --pretest: the context sets the other causes' shares only
      var ctx = {};
      CONTEXT.forEach(function (name) { ctx[name] = level(inp.values, name); });
      var full = ctxTerm(model, ctx), off = new Float64Array(n * K), lc = new Float64Array(C), q = new Float64Array(C);
      for (s = 0; s < n; s++) {
        for (c = 0; c < C; c++) {
          lc[c] = lseAt(full, s * K, model.byCause[c]);
          q[c] = c !== model.inf && inp.active[c] ? model.logPrior[s * C + c] + lc[c] : -Infinity;
        }
        var z = logsumexp(q);
        for (c = 0; c < C; c++) {
          this.base[s * C + c] = c === model.inf ? Math.log(inp.pretest) : q[c] - z + Math.log(1 - inp.pretest);
        }
        for (k = 0; k < K; k++) { off[s * K + k] = full[s * K + k] - lc[model.component_cause[k]]; }
      }
      this.offset = off;
    }
  }

  /* log p(x_prefix, k | c(k)) per draw and component (n x K) after each prefix of the players, from
   * none to all (the tree and LP terms accumulate; the context and profile terms are the prefix's). */
  Game.prototype.prefixComponents = function () {
    var model = this.model, n = model.n, K = model.K, L = model.L, s, k, m;
    var ctx = {}, profile = null, lp1 = null, acc = new Float64Array(n * K), out = [];
    for (m = 0; m <= this.players.length; m++) {
      if (m > 0) {
        var p = this.players[m - 1];
        if (p.kind === "context") { ctx[p.finding] = p.value; }
        else if (p.kind === "profile") { profile = p.value; }
        else {
          for (s = 0; s < n; s++) { for (k = 0; k < K; k++) { acc[s * K + k] += model.levelLp[(s * K + k) * L + p.level]; } }
          if (p.kind === "lp" && p.index === 1) { lp1 = this.inp.csf[0]; }
        }
      }
      var base = this.offset || ctxTerm(model, ctx), a = new Float64Array(n * K), joint = -1, marg = null;
      if (profile !== null) {
        if (lp1 !== null) { joint = levelIdx(model, "csf_profile_" + lp1.result, profile); }
        else {
          var fm = this.firstMethod;
          marg = RESULTS.map(function (r) { return [levelIdx(model, "csf_" + fm, r), levelIdx(model, "csf_profile_" + r, profile)]; });
        }
      }
      for (var sk = 0; sk < n * K; sk++) {
        var t = base[sk] + acc[sk], row = sk * L;
        if (joint >= 0) { t += model.levelLp[row + joint]; }
        else if (marg !== null) {
          t += logaddexp(model.levelLp[row + marg[0][0]] + model.levelLp[row + marg[0][1]],
                         model.levelLp[row + marg[1][0]] + model.levelLp[row + marg[1][1]]);
        }
        a[sk] = t;
      }
      out.push(a);
    }
    return out;
  };

  /* log of the sum of exp(x[off + i]) over the indices i of ``idx``. */
  function lseAt(x, off, idx) {
    var m = -Infinity, i, v;
    for (i = 0; i < idx.length; i++) { v = x[off + idx[i]]; if (v > m) { m = v; } }
    if (!isFinite(m)) { return m; }
    var t = 0;
    for (i = 0; i < idx.length; i++) { t += Math.exp(x[off + idx[i]] - m); }
    return m + Math.log(t);
  }

  /* log P(c) + log p(x | c) per draw and cause (n x C); ``extra``: level indices of a further result. */
  Game.prototype.logJoint = function (comp, extra) {
    var model = this.model, n = model.n, C = model.C, K = model.K, L = model.L;
    var out = new Float64Array(n * C), a = new Float64Array(K), s, c, k, i;
    extra = extra || [];
    for (s = 0; s < n; s++) {
      for (k = 0; k < K; k++) {
        var t = comp[s * K + k], row = (s * K + k) * L;
        for (i = 0; i < extra.length; i++) { t += model.levelLp[row + extra[i]]; }
        a[k] = t;
      }
      for (c = 0; c < C; c++) {
        out[s * C + c] = this.active[c] ? this.base[s * C + c] + lseAt(a, 0, model.byCause[c]) : -Infinity;
      }
    }
    return out;
  };

  Game.prototype.logOdds = function (lj) {
    var model = this.model, n = model.n, C = model.C, out = new Float64Array(n), others = [];
    for (var c = 0; c < C; c++) { if (c !== model.inf && this.active[c]) { others.push(c); } }
    for (var s = 0; s < n; s++) { out[s] = lj[s * C + model.inf] - lseAt(lj, s * C, others); }
    return out;
  };

  /* P(c | x) per cause (arrays over draws) and log P(x) over the causes weighed, per draw. */
  Game.prototype.softmax = function (lj) {
    var model = this.model, n = model.n, C = model.C, probs = [], lse = new Float64Array(n), c, s;
    for (c = 0; c < C; c++) { probs.push(new Float64Array(n)); }
    for (s = 0; s < n; s++) {
      var z = logsumexp(lj.subarray(s * C, (s + 1) * C));
      lse[s] = z;
      for (c = 0; c < C; c++) { probs[c][s] = this.active[c] ? Math.exp(lj[s * C + c] - z) : 0; }
    }
    return { probs: probs, logPx: lse };
  };

  function leadingOf(model, means, active) {
    var best = -1, who = null;
    model.causes.forEach(function (c, j) { if (active[j] && means[j] > best) { best = means[j]; who = c; } });
    return who;
  }

  // --- what the next test could do, the decision ---------------------------------------------------

  /* Each pending test and its results with their level indices (model.answer._test_outcomes). */
  function testOutcomes(model, inp) {
    var out = [];
    if (inp.csf.length < MAX_LPS) {
      METHODS.forEach(function (method) {
        var results = [];
        RESULTS.forEach(function (r) {
          var j = levelIdx(model, "csf_" + method, r);
          if (inp.csf.length || inp.values.csf_profile !== null) { results.push({ result: r, extra: [j] }); }
          else {
            model.levels.filter(function (key) { return key[0] === "csf_profile_" + r; }).forEach(function (key) {
              results.push({ result: r + ", " + key[1], extra: [j, levelIdx(model, key[0], key[1])] });
            });
          }
        });
        out.push({ test: "lp_" + method, results: results });
      });
    }
    if (inp.values.mri === null) {
      out.push({ test: "mri", results: model.levels.filter(function (key) { return key[0] === "mri"; })
        .map(function (key) { return { result: key[1], extra: [levelIdx(model, "mri", key[1])] }; }) });
    }
    return out;
  }

  function nextTests(game, full, lj, ci) {
    var model = game.model, n = model.n, C = model.C, logPx = game.softmax(lj).logPx;
    return testOutcomes(model, game.inp).map(function (t) {
      return { test: t.test, outcomes: t.results.map(function (o) {
        var ljr = game.logJoint(full, o.extra), sm = game.softmax(ljr), pr = new Float64Array(n);
        for (var s = 0; s < n; s++) { pr[s] = Math.exp(sm.logPx[s] - logPx[s]); }
        var means = [];
        for (var c = 0; c < C; c++) { means.push(game.active[c] ? wmean(sm.probs[c], pr) : 0); }
        var ps = summary(pr, ci);
        return { result: o.result, probability: ps, pr: pr, pInf: sm.probs[model.inf],
                 after: probSummary(game.logOdds(ljr), ci, pr), leading: leadingOf(model, means, game.active) };
      }) };
    });
  }

  function zone(p, low, high) { return p < low ? "no_test" : p > high ? "treat" : "test"; }

  function utility(p, d) { return Math.max(0, p * d.benefit - (1 - p) * d.harm); }

  /* model.decision.test_interval: where testing beats not testing and treating, over every result. */
  function testInterval(pInf, pOther, harm, benefit, testHarm) {
    var a = pInf.map(function (x) { return x * benefit; }), b = pOther.map(function (x) { return x * harm; });
    var treat = harm / (harm + benefit), knots = [0, 1, treat];
    a.forEach(function (ai, r) { if (ai + b[r] > 0) { knots.push(Math.min(1, Math.max(0, b[r] / (ai + b[r])))); } });
    knots.sort(function (x, y) { return x - y; });
    knots = knots.filter(function (k, i) { return i === 0 || k !== knots[i - 1]; });
    var g = knots.map(function (p) {
      var w = 0;
      a.forEach(function (ai, r) { w += Math.max(0, p * ai - (1 - p) * b[r]); });
      return w - Math.max(0, p * benefit - (1 - p) * harm) - testHarm;
    });
    var i = g.findIndex(function (x) { return x > 0; });
    if (i < 0) { return [treat, treat]; }
    var j = g.length - 1;
    while (!(g[j] > 0)) { j--; }
    var low = i === 0 ? knots[0] : knots[i - 1] + (knots[i] - knots[i - 1]) * (-g[i - 1]) / (g[i] - g[i - 1]);
    var high = j === g.length - 1 ? knots[j] : knots[j] + (knots[j + 1] - knots[j]) * g[j] / (g[j] - g[j + 1]);
    return [low, high];
  }

  /* model.decision.decide (unweighted draws). */
  function decide(pMean, tests, negCurves, thresholds) {
    var d = RULES.decision, rows = [];
    tests.forEach(function (t) {
      var pr = t.outcomes.map(function (o) { return mean(o.pr); });
      var joint = t.outcomes.map(function (o) {
        var s = 0;
        for (var i = 0; i < o.pr.length; i++) { s += o.pr[i] * o.pInf[i]; }
        return s / o.pr.length;
      });
      var after = joint.map(function (j, r) { return j / Math.max(pr[r], 1e-300); });
      var se = 0, fp = 0;
      after.forEach(function (a, r) { if (a > pMean) { se += joint[r]; fp += pr[r] - joint[r]; } });
      se /= Math.max(pMean, 1e-300);
      fp /= Math.max(1 - pMean, 1e-300);
      var ab = testInterval(joint.map(function (j) { return j / Math.max(pMean, 1e-300); }),
                            joint.map(function (j, r) { return (pr[r] - j) / Math.max(1 - pMean, 1e-300); }),
                            d.harm, d.benefit, d.test_harm[t.test]);
      var tt = ab[0], trx = ab[1];
      rows.push({ test: t.test, sensitivity: se, false_positive_rate: fp, testing_threshold: tt,
                  test_treatment_threshold: trx, useful: tt < trx, pr: pr, after: after });
    });
    var useful = rows.filter(function (r) { return r.useful; }), low, high, source = d.source;
    var treatment = d.harm / (d.harm + d.benefit);
    if (thresholds !== null) { low = thresholds.low; high = thresholds.high; source = "your thresholds"; }
    else if (useful.length) {
      low = Math.min.apply(null, useful.map(function (r) { return r.testing_threshold; }));
      high = Math.max.apply(null, useful.map(function (r) { return r.test_treatment_threshold; }));
    } else { low = high = treatment; }
    var action = zone(pMean, low, high);
    var outTests = rows.map(function (r) {
      var change = r.after.map(function (a) { return zone(a, low, high) !== action; }), pc = 0, eu = 0;
      r.after.forEach(function (a, i) { if (change[i]) { pc += r.pr[i]; } eu += r.pr[i] * utility(a, d); });
      return { test: r.test, can_change_action: change.some(Boolean), probability_of_change: pc,
               value_of_information: eu - utility(pMean, d) - d.test_harm[r.test], sensitivity: r.sensitivity,
               false_positive_rate: r.false_positive_rate, testing_threshold: r.testing_threshold,
               test_treatment_threshold: r.test_treatment_threshold };
    });
    var toLow = {};
    Object.keys(negCurves).forEach(function (m) {
      var k = negCurves[m].findIndex(function (q) { return q < low; });
      toLow[m] = k < 0 ? null : k + 1;
    });
    return { thresholds: { low: low, high: high, treatment: treatment, source: source }, probability: pMean,
             action: action, action_text: d.action_text[action], tests: outTests, negative_lps_to_low: toLow };
  }

  /* Mean P(infiltration) after 1, 2, ... further negative LPs of each method (model.answer.negative_curves). */
  function negativeCurves(game, full) {
    var model = game.model, out = {};
    METHODS.forEach(function (m) {
      var neg = levelIdx(model, "csf_" + m, "negative"), curve = [], extra = [];
      for (var k = 1; k <= MAX_LPS - game.inp.csf.length; k++) {
        extra.push(neg);
        curve.push(mean(game.softmax(game.logJoint(full, extra)).probs[model.inf]));
      }
      out[m] = curve;
    });
    return out;
  }

  // --- what to do now: the trigger grammar of model/guidance.py ------------------------------------

  function has(o, key) { return o !== null && typeof o === "object" && Object.prototype.hasOwnProperty.call(o, key); }

  /* model.guidance.holds: ``values`` the findings as given (unknown: null), ``csf`` the LPs,
   * ``means`` the mean probability of each cause weighed, ``action`` the decision's. */
  function holds(cond, values, csf, means, action) {
    if (cond === "always") { return true; }
    if (has(cond, "all")) { return cond.all.every(function (c) { return holds(c, values, csf, means, action); }); }
    if (has(cond, "any")) { return cond.any.some(function (c) { return holds(c, values, csf, means, action); }); }
    if (has(cond, "not")) { return !holds(cond.not, values, csf, means, action); }
    if (has(cond, "finding")) {
      if (cond.finding === "csf") {
        if (has(cond, "count_below")) { return csf.length < cond.count_below; }
        if (cond.all_negative) { return csf.length > 0 && csf.every(function (lp) { return lp.result === "negative"; }); }
        return csf.length === 0;
      }
      var v = has(values, cond.finding) ? values[cond.finding] : null;
      return cond.unknown ? v === null : cond.in.indexOf(v) >= 0;
    }
    if (has(cond, "cause")) {
      if (!has(means, cond.cause)) { return false; }  // a cause not weighed
      return has(cond, "above") ? means[cond.cause] > cond.above : means[cond.cause] < cond.below;
    }
    if (has(cond, "decision")) { return cond.decision.indexOf(action) >= 0; }
    return false;
  }

  /* A trigger in the words of its grammar (priors/actions.yaml), for the reader to check. */
  function triggerText(cond) {
    if (cond === "always") { return "always"; }
    var list = function (key) { return cond[key].map(triggerText).join("; "); };
    if (has(cond, "all")) { return "all of (" + list("all") + ")"; }
    if (has(cond, "any")) { return "any of (" + list("any") + ")"; }
    if (has(cond, "not")) { return "not (" + triggerText(cond.not) + ")"; }
    if (has(cond, "finding")) {
      if (cond.finding === "csf") {
        if (has(cond, "count_below")) { return "fewer than " + cond.count_below + " LP(s) recorded"; }
        if (cond.all_negative) { return "every LP recorded negative"; }
        return "no LP recorded";
      }
      return cond.unknown ? cond.finding + " unknown" : cond.finding + " is " + cond.in.join(" or ");
    }
    if (has(cond, "cause")) {
      return "P(" + cond.cause + ") " + (has(cond, "above") ? "above " + cond.above : "below " + cond.below);
    }
    if (has(cond, "decision")) { return "decision is " + cond.decision.join(" or "); }
    return JSON.stringify(cond);
  }

  function hallmarkWarnings(model, inp) {
    var out = [], hallmarks = model.settings.hallmarks || {};
    model.causes.forEach(function (c, j) {
      if (inp.active[j]) { return; }
      (hallmarks[c] || []).forEach(function (mark) {
        if (level(inp.values, mark.finding) === mark.value) {
          out.push(mark.finding + ": " + mark.value + " is a hallmark of " + causeName(c) + ", which is not weighed here");
        }
      });
    });
    return out;
  }

  function scopeNotes(model, inp) {
    var out = [], scope = model.settings.scope;
    var squash = function (t) { return t.split(/\s+/).filter(Boolean).join(" "); };
    if (inp.values.forehead === "spared") { out.push(squash(scope.central)); }
    if (inp.values.remission === RULES.at_diagnosis) { out.push(squash(scope.at_diagnosis)); }
    return out;
  }

  // --- the answer ---------------------------------------------------------------------------------

  function currentModel() {
    var name = $("variant").value;
    for (var i = 0; i < MODELS.length; i++) { if (MODELS[i].variant === name) { return prepare(MODELS[i]); } }
    return prepare(MODELS[0]);
  }

  function compute() {
    var model = currentModel(), inp = readInputs(model);
    if (inp.error !== null) { return { error: inp.error }; }
    var game = new Game(model, inp), ci = inp.ci, np = game.players.length, C = model.C;
    var comps = game.prefixComponents(), joints = [], lo = [], m;
    for (m = 0; m <= np; m++) {
      joints.push(game.logJoint(comps[m]));
      lo.push(game.logOdds(joints[m]));
    }
    var full = comps[np], lj = joints[np];
    var post = game.softmax(lj).probs, prior = game.softmax(joints[0]).probs;
    var causes = [], means = [], guidanceMeans = {};
    model.causes.forEach(function (c, j) {
      means.push(inp.active[j] ? mean(post[j]) : 0);
      if (!inp.active[j]) { return; }
      var sm = summary(post[j], ci);
      guidanceMeans[c] = sm.mean;
      causes.push({ cause: c, mean: sm.mean, median: sm.median, lower: sm.lower, upper: sm.upper,
                    prior: mean(prior[j]) });
    });
    var steps = [];
    for (m = 1; m <= np; m++) {
      var contrib = new Float64Array(model.n);
      for (var s = 0; s < model.n; s++) { contrib[s] = lo[m][s] - lo[m - 1][s]; }
      var pm = game.softmax(joints[m]).probs.map(function (x, j) { return inp.active[j] ? mean(x) : 0; });
      steps.push({ label: game.players[m - 1].label, lr: summary(contrib, ci), after: probSummary(lo[m], ci),
                   leading: leadingOf(model, pm, inp.active) });
    }
    var p0 = prior.map(function (x, j) { return inp.active[j] ? mean(x) : 0; });
    var pPost = probSummary(lo[np], ci);
    var tests = nextTests(game, full, lj, ci);
    var decision = decide(pPost.mean, tests, negativeCurves(game, full), inp.thresholds);
    var actions = RULES.actions.filter(function (a) { return holds(a.when, inp.values, inp.csf, guidanceMeans, decision.action); });
    return { model: model, ci: ci, pretest: inp.pretest, prior: probSummary(lo[0], ci),
             priorLeading: leadingOf(model, p0, inp.active), steps: steps, post: pPost, causes: causes,
             leading: leadingOf(model, means, inp.active), tests: tests, decision: decision, actions: actions,
             scope: scopeNotes(model, inp), warnings: hallmarkWarnings(model, inp), nCauses: C };
  }

  // --- the page -----------------------------------------------------------------------------------

  function clear(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }

  function cell(tr, text, header) {
    var td = document.createElement(header ? "th" : "td");
    if (header) { td.setAttribute("scope", "row"); }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function element(tag, text, cls) {
    var el = document.createElement(tag);
    if (text !== undefined) { el.textContent = text; }
    if (cls) { el.className = cls; }
    return el;
  }

  function render() {
    var r = compute(), res = $("result");
    if (r.error) {
      $("p-mean").textContent = "...";
      $("p-interval").textContent = r.error;
      res.removeAttribute("data-mean");
      clear($("differential-body"));
      clear($("waterfall-body"));
      $("decision").hidden = true;
      $("actions").hidden = true;
      return;
    }
    $("decision").hidden = false;
    $("actions").hidden = false;
    var ciPct = Math.round(100 * r.ci) + "% CrI";
    ["mean", "median", "lower", "upper"].forEach(function (k) { res.setAttribute("data-" + k, String(r.post[k])); });
    res.setAttribute("data-leading", r.leading);
    $("p-mean").textContent = percent(r.post.mean);
    $("p-interval").textContent = ciPct + " " + percent(r.post.lower) + " to " + percent(r.post.upper);
    $("p-median").textContent = percent(r.post.median);
    $("p-against").textContent = r.causes.filter(function (c) { return c.cause !== INF; })
      .map(function (c) { return causeName(c.cause); }).join(", ");
    $("p-leading").textContent = causeName(r.leading);
    $("p-draws").textContent = r.model.n + " posterior draws, " + r.model.variant + " variant";
    $("p-base").textContent = (r.pretest !== null ? "pretest (set by you)" : "before any finding") + ": mean " +
      percent(r.prior.mean) + " (" + ciPct + " " + percent(r.prior.lower) + " to " + percent(r.prior.upper) + ")";
    $("p-scope").textContent = r.scope.length ? " (only if the palsy is peripheral)" : "";
    var notes = $("notes");
    clear(notes);
    r.scope.forEach(function (t) { var li = element("li", "Out of scope: " + t); li.setAttribute("data-kind", "scope"); notes.appendChild(li); });
    r.warnings.forEach(function (t) { var li = element("li", "Warning: " + t); li.setAttribute("data-kind", "warning"); notes.appendChild(li); });
    notes.hidden = !notes.firstChild;
    var body = $("differential-body");
    clear(body);
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
    drawActions(r);
    drawDecision(r);
    drawWaterfall(r);
  }

  function drawActions(r) {
    var list = $("actions-list");
    clear(list);
    r.actions.forEach(function (a, i) {
      var li = element("li");
      li.setAttribute("data-action", a.id);
      li.appendChild(element("span", a.text, "action-text"));
      if (i < RULES.page_one) { li.classList.add("page-one"); }
      var more = element("details");
      more.appendChild(element("summary", "why, sources and trigger"));
      more.appendChild(element("p", a.detail));
      more.appendChild(element("p", "Sources: " + a.refs.map(function (k) { return RULES.references[k] || k; }).join("; "), "muted"));
      more.appendChild(element("p", "Shown when: " + triggerText(a.when) + " (priors/actions.yaml, " + a.id + ")", "muted trigger"));
      li.appendChild(more);
      list.appendChild(li);
    });
    $("actions-count").textContent = r.actions.length + " of " + RULES.actions.length + " actions apply; the clinician report's page 1 shows the first " + RULES.page_one + ".";
  }

  function drawDecision(r) {
    var d = r.decision, th = d.thresholds, box = $("decision-line");
    box.setAttribute("data-action", d.action);
    box.setAttribute("data-low", String(th.low));
    box.setAttribute("data-high", String(th.high));
    box.setAttribute("data-probability", String(d.probability));
    box.textContent = "Decision on the mean P(infiltration) " + percent(d.probability) + " (thresholds " +
      percent(th.low) + " and " + percent(th.high) + ", from " + th.source + "): " + d.action_text;
    var body = $("decision-tests");
    clear(body);
    d.tests.forEach(function (t) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-test", t.test);
      tr.setAttribute("data-can-change", String(t.can_change_action));
      tr.setAttribute("data-probability-of-change", String(t.probability_of_change));
      tr.setAttribute("data-voi", String(t.value_of_information));
      cell(tr, testName(t.test), true);
      cell(tr, t.can_change_action ? "could change it (probability " + percent(t.probability_of_change) + ")" : "cannot change it");
      cell(tr, signed(t.value_of_information, 4));
      cell(tr, percent(t.testing_threshold) + " to " + percent(t.test_treatment_threshold));
      body.appendChild(tr);
    });
    $("decision-no-tests").hidden = d.tests.length > 0;
    var neg = $("negative-lps"), parts = [];
    Object.keys(d.negative_lps_to_low).forEach(function (m) {
      var k = d.negative_lps_to_low[m];
      neg.setAttribute("data-" + m, k === null ? "none" : String(k));
      parts.push((m === "flow" ? "flow cytometry" : m) + ": " + (k === null ? "not reachable within " + MAX_LPS + " LPs" : k));
    });
    neg.textContent = "Further negative LPs to fall below " + percent(th.low) + ": " + parts.join("; ") + ".";
    var nb = $("next-tests-body");
    clear(nb);
    r.tests.forEach(function (t) {
      t.outcomes.forEach(function (o, i) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-test", t.test);
        tr.setAttribute("data-result", o.result);
        tr.setAttribute("data-probability", String(o.probability.mean));
        tr.setAttribute("data-after", String(o.after.mean));
        tr.setAttribute("data-leading", o.leading);
        cell(tr, i === 0 ? testName(t.test) : "", true);
        cell(tr, o.result.replace(/_/g, " "));
        cell(tr, percent(o.probability.mean));
        cell(tr, percent(o.after.mean));
        cell(tr, causeName(o.leading));
        nb.appendChild(tr);
      });
    });
  }

  function drawWaterfall(r) {
    var tbody = $("waterfall-body");
    clear(tbody);
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

  function syncInputs() {
    $("pretest").disabled = !$("base-pretest").checked;
    var own = $("own-thresholds").checked;
    $("threshold-low").disabled = !own;
    $("threshold-high").disabled = !own;
  }

  function onChange() { syncLps(); syncInputs(); render(); }

  document.querySelectorAll("#controls select, #controls input").forEach(function (el) {
    el.addEventListener("change", onChange);
    if (el.type === "number") { el.addEventListener("input", onChange); }
  });
  $("reset").addEventListener("click", function () {
    document.getElementById("controls").reset();
    onChange();
  });
  window.palsyTeach = { compute: compute, render: render, percent: percent, holds: holds, triggerText: triggerText };
  onChange();
  document.body.setAttribute("data-ready", "true");
}());

/* palsy interactive page: the differential of a facial palsy in leukemia, computed in this browser from
 * tables exported by the code that answers (model/teach.py page_tables), with a classroom mode, the case
 * carried in the address's fragment and patient files saved and loaded. No network.
 *
 * The kernel (what the browser computes; everything else is a lookup in the tables): per draw s, component
 * k and whether blasts circulate (b: absent, present; summed over exactly, as model/game.py), for the
 * findings known,
 *   a[s,k]   = sum of log P(level | k) over the tree findings (level_lp)
 *            + the CSF profile's term given the first LP's class (level_lp)
 *   c[s,k,b] = log P(context known, b, k | cause of k)   (a sum of P(stratum, k | cause) over the strata the
 *              known context allows; built once from the rate model's log parameters x 0/1 incidences)
 *            + per LP, log sum over its result patterns of P(pattern | k, tap, b)   (lp.patterns)
 *   log p(findings, k | cause) = a + log(exp c[..absent] + exp c[..present]);
 *   lj[s,c] = log P(c) + logsumexp over the components of c;  P(c | findings) = softmax over the causes weighed.
 * Summaries as model/summaries.py: the mean of P over draws (the headline), quantiles of the log odds
 * mapped through expit, weighted for a library case left out (its PSIS weights come with the tables).
 * The decision's thresholds and value of information are left to the clinician report.
 */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }
  var DATA = JSON.parse($("palsy-data").textContent);
  var SC = DATA.schema, LABELS = DATA.labels, RULES = DATA.rules, INF = "infiltration";
  var LPN = SC.lp.name, PROFILE = SC.profile, MAX_LPS = SC.lp.max_lps;
  var FINDINGS = {};
  SC.findings.forEach(function (f) { FINDINGS[f.name] = f; });
  var CATEGORICAL = SC.findings.filter(function (f) { return f.role !== "lp"; }).map(function (f) { return f.name; });
  var MODELS = {};

  // --- numbers -------------------------------------------------------------------------------------------

  function f32(b64) {
    var bin = atob(b64), n = bin.length, u = new Uint8Array(n);
    for (var i = 0; i < n; i++) { u[i] = bin.charCodeAt(i); }
    return new Float32Array(u.buffer);
  }

  function lse(xs, off, len, stride) {
    var m = -Infinity, i, v;
    stride = stride || 1;
    for (i = 0; i < len; i++) { v = xs[off + i * stride]; if (v > m) { m = v; } }
    if (!isFinite(m)) { return m; }
    var s = 0;
    for (i = 0; i < len; i++) { s += Math.exp(xs[off + i * stride] - m); }
    return m + Math.log(s);
  }

  function expit(x) { return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)); }

  function quantile(sorted, q) {  // numpy's default (linear)
    var h = (sorted.length - 1) * q, lo = Math.floor(h), hi = Math.ceil(h);
    return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
  }

  function weightedQuantiles(values, w, qs) {  // model/summaries.py weighted_quantile
    var n = values.length, order = new Uint32Array(n), i;
    for (i = 0; i < n; i++) { order[i] = i; }
    order.sort(function (a, b) { return values[a] - values[b]; });
    var xs = new Float64Array(n), cw = new Float64Array(n), acc = 0;
    for (i = 0; i < n; i++) { xs[i] = values[order[i]]; acc += w[order[i]]; cw[i] = acc - 0.5 * w[order[i]]; }
    for (i = 0; i < n; i++) { cw[i] /= acc; }
    return qs.map(function (q) {
      if (q <= cw[0]) { return xs[0]; }
      if (q >= cw[n - 1]) { return xs[n - 1]; }
      var lo = 0, hi = n - 1;
      while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (cw[mid] <= q) { lo = mid; } else { hi = mid; } }
      return xs[lo] + (q - cw[lo]) * (xs[hi] - xs[lo]) / (cw[hi] - cw[lo]);
    });
  }

  function wmean(x, w) {
    var s = 0, t = 0, i;
    if (!w) { for (i = 0; i < x.length; i++) { s += x[i]; } return s / x.length; }
    for (i = 0; i < x.length; i++) { s += x[i] * w[i]; t += w[i]; }
    return s / t;
  }

  function quantiles(x, w, qs) {
    if (w) { return weightedQuantiles(x, w, qs); }
    var sorted = Float64Array.from(x).sort();
    return qs.map(function (q) { return quantile(sorted, q); });
  }

  function summary(x, ci, w) {  // model/summaries.py summary
    var q = quantiles(x, w, [(1 - ci) / 2, 0.5, (1 + ci) / 2]);
    return { mean: wmean(x, w), lower: q[0], median: q[1], upper: q[2] };
  }

  function probSummary(lo, ci, w) {  // model/summaries.py probability_summary
    var q = quantiles(lo, w, [(1 - ci) / 2, 0.5, (1 + ci) / 2]);
    return { mean: wmean(lo.map(expit), w), lower: expit(q[0]), median: expit(q[1]), upper: expit(q[2]) };
  }

  /* Never 0% or 100% (reports/wording.py percent). */
  function percent(p) {
    if (p < 0.001) { return "<0.1%"; }
    if (p > 0.999) { return ">99.9%"; }
    var t = (100 * p).toFixed(1) + "%";
    if (t === "0.0%") { return "<0.1%"; }
    if (t === "100.0%") { return ">99.9%"; }
    return t;
  }

  /* A factor on the odds (reports/wording.py factor). */
  function factor(x) {
    if (x >= 100) { return "x " + Math.round(x).toLocaleString("en"); }
    if (x >= 10) { return "x " + x.toFixed(1); }
    var q = Number(x.toPrecision(2));  // two significant digits below 1, written out (never "x 1e-7"), as wording.factor
    if (q > 0 && q < 1) { return "x " + q.toFixed(1 - Math.floor(Math.log10(q))); }
    if (q === 0) { return "x 0"; }
    return "x " + x.toFixed(2);  // 0.996 and up print as 1.00 does, not as "x 1"
  }

  function odds(p) { return p / (1 - p); }

  /* A probability with its interval, as the page's tables print it: "32.2% (5.9% to 68.8%)"; the headers say mean
   * and the interval's mass (a teacher's review, s16: some probabilities had none). */
  function withInterval(s) { return percent(s.mean) + " (" + percent(s.lower) + " to " + percent(s.upper) + ")"; }

  // --- the tables ----------------------------------------------------------------------------------------

  function model(variant) {
    if (MODELS[variant]) { return MODELS[variant]; }
    var m = JSON.parse($("palsy-model-" + variant).textContent);
    var S = m.n, K = m.components.length, C = m.causes.length, N = m.n_strata, L = m.levels.length, s, j, i, k, c, idx;
    m.S = S; m.K = K; m.C = C; m.N = N; m.L = L;
    m.inf = m.causes.indexOf(INF);
    m.levelIndex = {};
    m.levels.forEach(function (key, jj) { m.levelIndex[key] = jj; });
    m.byCause = m.causes.map(function () { return []; });
    m.component_cause.forEach(function (cc, kk) { m.byCause[cc].push(kk); });
    m.levelLp = f32(m.level_lp);
    m.patterns = f32(m.lp.patterns);
    m.weightArrays = {};
    Object.keys(m.weights).forEach(function (id) { m.weightArrays[id] = f32(m.weights[id]); });
    var sf = f32(m.share_features), rf = f32(m.rate_features), ff = f32(m.form_features);
    var Js = m.share_incidence.length, Jr = m.rate_incidence.length, Jf = m.form_incidence.length;
    m.logPrior = new Float64Array(S * C);
    m.pSK = new Float32Array(S * K * N);
    var ls = new Float64Array(N), joint = new Float64Array(C * N), total = new Float64Array(C), form = new Float64Array(K * N);
    for (s = 0; s < S; s++) {
      ls.fill(0);
      for (j = 0; j < Js; j++) { idx = m.share_incidence[j]; for (i = 0; i < idx.length; i++) { ls[idx[i]] += sf[s * Js + j]; } }
      for (i = 0; i < C * N; i++) { joint[i] = m.rate_fixed[i]; }
      for (j = 0; j < Jr; j++) { idx = m.rate_incidence[j]; for (i = 0; i < idx.length; i++) { joint[idx[i]] += rf[s * Jr + j]; } }
      for (c = 0; c < C; c++) { for (i = 0; i < N; i++) { joint[c * N + i] += ls[i]; } total[c] = lse(joint, c * N, N); }
      var z = lse(total, 0, C);
      for (c = 0; c < C; c++) { m.logPrior[s * C + c] = total[c] - z; }
      form.fill(0);
      for (j = 0; j < Jf; j++) { idx = m.form_incidence[j]; for (i = 0; i < idx.length; i++) { form[idx[i]] += ff[s * Jf + j]; } }
      for (k = 0; k < K; k++) {
        c = m.component_cause[k];
        for (i = 0; i < N; i++) { m.pSK[(s * K + k) * N + i] = Math.exp(joint[c * N + i] - total[c] + form[k * N + i]); }
      }
    }
    m.blastsSet = {};
    m.blasts_strata.forEach(function (n) { m.blastsSet[n] = true; });
    m.cache = {};
    MODELS[variant] = m;
    return m;
  }

  function keepStrata(m, ctx) {
    var want = m.context.map(function (name, ax) {
      var v = ctx[name];
      return v === null || v === undefined ? -1 : m.context_levels[ax].indexOf(v);
    });
    var keep = [];
    for (var n = 0; n < m.N; n++) {
      var ok = true;
      for (var a = 0; a < want.length; a++) { if (want[a] >= 0 && m.strata[n][a] !== want[a]) { ok = false; break; } }
      if (ok) { keep.push(n); }
    }
    return keep;
  }

  /* log P(context known, blasts b, k | cause of k) for b = absent, present: two arrays (S x K). */
  function contextTerms(m, ctx) {
    var key = JSON.stringify(m.context.map(function (n) { return ctx[n] || null; }));
    if (m.cache[key]) { return m.cache[key]; }
    var keep = keepStrata(m, ctx), S = m.S, K = m.K, N = m.N, i;
    var t0 = new Float64Array(S * K), t1 = new Float64Array(S * K);
    for (var sk = 0; sk < S * K; sk++) {
      var a0 = 0, a1 = 0, base = sk * N;
      for (i = 0; i < keep.length; i++) {
        if (m.blastsSet[keep[i]]) { a1 += m.pSK[base + keep[i]]; } else { a0 += m.pSK[base + keep[i]]; }
      }
      t0[sk] = Math.log(a0);
      t1[sk] = Math.log(a1);
    }
    m.cache[key] = [t0, t1];
    return m.cache[key];
  }

  function levelIdx(m, item, level) {
    var j = m.levelIndex[item + "|" + level];
    if (j === undefined) { throw new Error("no level " + item + " " + level); }
    return j;
  }

  function patternMask(m, results) {  // model/lp.py obs_mask
    var methods = m.lp.methods;
    return m.lp.pattern_results.map(function (pr) {
      return (results[methods[0]] === undefined || results[methods[0]] === pr[0]) &&
             (results[methods[1]] === undefined || results[methods[1]] === pr[1]) ? 1 : 0;
    });
  }

  function positiveMask(m, methodsDone) {  // model/lp.py positive_mask
    var methods = m.lp.methods;
    return m.lp.pattern_results.map(function (pr) {
      return (methodsDone.indexOf(methods[0]) >= 0 && pr[0] === "positive") ||
             (methodsDone.indexOf(methods[1]) >= 0 && pr[1] === "positive") ? 1 : 0;
    });
  }

  /* P(an LP's patterns in ``mask`` | k, blasts b) per draw and component (S x K), given the tap. */
  function lpProb(m, mask, traumatic, b) {
    var S = m.S, K = m.K, U = m.lp.n_unique, t = m.lp.statuses.indexOf(traumatic || "unknown");
    var out = new Float64Array(S * K), s, k, p;
    for (s = 0; s < S; s++) {
      for (k = 0; k < K; k++) {
        var o = (((t * 2 + b) * S + s) * U + m.lp.component_unique[k]) * 4, v = 0;
        for (p = 0; p < 4; p++) { if (mask[p]) { v += m.patterns[o + p]; } }
        out[s * K + k] = v;
      }
    }
    return out;
  }

  function logaddexp(x, y) {
    var mx = x > y ? x : y;
    if (mx === -Infinity) { return mx; }
    return mx + Math.log(Math.exp(x - mx) + Math.exp(y - mx));
  }

  // --- the patient and the game ----------------------------------------------------------------------------

  /* The level a finding is computed as (model/findings.py Patient.level: a patient-only level's stand-in). */
  function levelOf(state, name) {
    var v = state.values[name];
    if (v === null || v === undefined) { return null; }
    var f = FINDINGS[name];
    return f.answered_as && f.answered_as[v] ? f.answered_as[v] : v;
  }

  function lpPositive(lp) { return Object.keys(lp.results).some(function (k) { return lp.results[k] === "positive"; }); }

  /* The observed findings in clinical order (model/game.py players). */
  function players(state, withContext) {
    var out = [];
    SC.findings.forEach(function (f) {
      if (SC.scope.indexOf(f.name) >= 0) { return; }
      if (!withContext && f.role === "context") { return; }
      if (f.name === LPN) {
        state.csf.forEach(function (lp, i) { out.push({ finding: LPN, index: i + 1, lp: lp }); });
      } else if (levelOf(state, f.name) !== null) {
        out.push({ finding: f.name, value: levelOf(state, f.name), role: f.role });
      }
    });
    return out;
  }

  function Game(m, state, active) {
    var S = m.S, C = m.C, K = m.K, s, c, k;
    this.m = m; this.state = state; this.active = active;
    this.pretest = state.pretest;
    this.players = players(state, state.pretest === null);
    this.first = state.csf.length ? state.csf[0] : null;
    this.base = new Float64Array(S * C);
    this.offset = null;
    this.fixed = {};
    if (state.pretest === null) {
      this.base.set(m.logPrior);
    } else {  // --pretest: P(infiltration) given; the others keep their shares given the context
      var self = this;
      SC.context.forEach(function (name) { self.fixed[name] = levelOf(state, name); });
      var ct = contextTerms(m, this.fixed), full = new Float64Array(S * K), lc = new Float64Array(C), q = new Float64Array(C);
      for (k = 0; k < S * K; k++) { full[k] = logaddexp(ct[0][k], ct[1][k]); }
      this.offset = new Float64Array(S * K);
      for (s = 0; s < S; s++) {
        for (c = 0; c < C; c++) {
          lc[c] = lseIdx(full, s * K, m.byCause[c]);
          q[c] = c !== m.inf && active[c] ? m.logPrior[s * C + c] + lc[c] : -Infinity;
        }
        var z = lse(q, 0, C);
        for (c = 0; c < C; c++) {
          this.base[s * C + c] = c === m.inf ? Math.log(state.pretest) : q[c] - z + Math.log(1 - state.pretest);
        }
        for (k = 0; k < K; k++) { this.offset[s * K + k] = -lc[m.component_cause[k]]; }
      }
    }
  }

  function lseIdx(x, off, idx) {
    var mx = -Infinity, i, v;
    for (i = 0; i < idx.length; i++) { v = x[off + idx[i]]; if (v > mx) { mx = v; } }
    if (!isFinite(mx)) { return mx; }
    var t = 0;
    for (i = 0; i < idx.length; i++) { t += Math.exp(x[off + idx[i]] - mx); }
    return mx + Math.log(t);
  }

  /* The terms of the first ``n`` players: ``a`` (S x K, whatever the blasts) and ``c`` (two S x K arrays, by
   * blasts absent and present), and the profile's marginal term by blasts when it is in them. */
  Game.prototype.components = function (n) {
    var m = this.m, S = m.S, K = m.K, L = m.L, sk, ctx = {}, self = this, b;
    Object.keys(this.fixed).forEach(function (kk) { ctx[kk] = self.fixed[kk]; });
    var prefix = this.players.slice(0, n);
    prefix.forEach(function (p) { if (p.role === "context") { ctx[p.finding] = p.value; } });
    var ct = contextTerms(m, ctx), a = new Float64Array(S * K), c = [Float64Array.from(ct[0]), Float64Array.from(ct[1])];
    if (this.offset) { for (sk = 0; sk < S * K; sk++) { a[sk] = this.offset[sk]; } }
    var hasLp1 = false, profile = null, marg = null;
    prefix.forEach(function (p) {
      if (p.lp) {
        for (b = 0; b < 2; b++) {
          var pr = lpProb(m, patternMask(m, p.lp.results), p.lp.traumatic, b);
          for (sk = 0; sk < S * K; sk++) { c[b][sk] += Math.log(pr[sk]); }
        }
        if (p.index === 1) { hasLp1 = true; }
      } else if (p.finding === PROFILE) {
        profile = p.value;
      } else if (p.role !== "context") {
        var j = levelIdx(m, p.finding, p.value);
        for (sk = 0; sk < S * K; sk++) { a[sk] += m.levelLp[sk * L + j]; }
      }
    });
    if (profile !== null) {
      var jp = levelIdx(m, m.profile_items.positive, profile), jn = levelIdx(m, m.profile_items.negative, profile);
      if (hasLp1) {
        var jj = lpPositive(this.first) ? jp : jn;
        for (sk = 0; sk < S * K; sk++) { a[sk] += m.levelLp[sk * L + jj]; }
      } else {  // the first LP's class marginalised (model/game.py profile_marginal), by blasts
        var methods = this.first ? Object.keys(this.first.results) : m.lp.methods;
        marg = [new Float64Array(S * K), new Float64Array(S * K)];
        for (b = 0; b < 2; b++) {
          var ppos = lpProb(m, positiveMask(m, methods), this.first ? this.first.traumatic : null, b);
          for (sk = 0; sk < S * K; sk++) {
            marg[b][sk] = Math.log(ppos[sk] * Math.exp(m.levelLp[sk * L + jp]) + (1 - ppos[sk]) * Math.exp(m.levelLp[sk * L + jn]));
            c[b][sk] += marg[b][sk];
          }
        }
      }
    }
    return { a: a, c: c, profile: profile, marg: marg };
  };

  /* log p(x, k | cause) per draw and component from the terms, with a further result's terms ``extra``
   * ({a: S x K, c: [S x K, S x K]}, either optional) added. */
  function combine(cmp, extra) {
    var n = cmp.a.length, out = new Float64Array(n), ea = extra && extra.a, ec = extra && extra.c;
    for (var sk = 0; sk < n; sk++) {
      out[sk] = cmp.a[sk] + (ea ? ea[sk] : 0) +
        logaddexp(cmp.c[0][sk] + (ec ? ec[0][sk] : 0), cmp.c[1][sk] + (ec ? ec[1][sk] : 0));
    }
    return out;
  }

  Game.prototype.logJoint = function (a) {
    var m = this.m, S = m.S, C = m.C, K = m.K, out = new Float64Array(S * C);
    for (var s = 0; s < S; s++) {
      for (var c = 0; c < C; c++) { out[s * C + c] = this.base[s * C + c] + lseIdx(a, s * K, m.byCause[c]); }
    }
    return out;
  };

  Game.prototype.logOdds = function (lj) {
    var m = this.m, S = m.S, C = m.C, out = new Float64Array(S), others = [];
    for (var c = 0; c < C; c++) { if (c !== m.inf && this.active[c]) { others.push(c); } }
    for (var s = 0; s < S; s++) { out[s] = lj[s * C + m.inf] - lseIdx(lj, s * C, others); }
    return out;
  };

  /* P(c | findings) per cause (arrays over draws), and log P(findings) over the causes weighed per draw. */
  Game.prototype.softmax = function (lj) {
    var m = this.m, S = m.S, C = m.C, probs = [], lpx = new Float64Array(S), act = [], c, s;
    for (c = 0; c < C; c++) { probs.push(new Float64Array(S)); if (this.active[c]) { act.push(c); } }
    for (s = 0; s < S; s++) {
      var z = lseIdx(lj, s * C, act);
      lpx[s] = z;
      for (c = 0; c < C; c++) { probs[c][s] = this.active[c] ? Math.exp(lj[s * C + c] - z) : 0; }
    }
    return { probs: probs, logPx: lpx };
  };

  // --- the answer -------------------------------------------------------------------------------------------

  function leadingOf(m, means, active) {
    var best = -1, who = null;
    m.causes.forEach(function (c, j) { if (active[j] && means[j] > best) { best = means[j]; who = c; } });
    return who;
  }

  /* The causes tied with the leader: their difference is within the Monte Carlo error (model/teach.py ties). */
  function tiedWith(m, probs, lead, active, w) {
    var j0 = m.causes.indexOf(lead), out = [], ess = m.ess;
    if (w) {  // PSIS weights spend effective draws, as summaries.tied_with: ess times their own efficiency
      var sw = 0, s2 = 0, k;
      for (k = 0; k < w.length; k++) { sw += w[k]; }
      for (k = 0; k < w.length; k++) { s2 += (w[k] / sw) * (w[k] / sw); }
      ess = ess / (w.length * s2);
    }
    m.causes.forEach(function (c, j) {
      if (j === j0 || !active[j]) { return; }
      var d = probs[j0].map(function (x, s) { return x - probs[j][s]; });
      var mean = wmean(d, w), v = wmean(d.map(function (x) { return (x - mean) * (x - mean); }), w);
      if (mean <= m.tie_mc_errors * Math.sqrt(v) / Math.sqrt(Math.max(ess, 1))) { out.push(c); }
    });
    return out;
  }

  function causeMeans(g, sm, w) {
    return g.m.causes.map(function (c, j) { return g.active[j] ? wmean(sm.probs[j], w) : 0; });
  }

  /* Each pending test of the schema and its results, as a further term per component (model/lookahead.py). */
  function nextTests(g, full, lj, ci, w) {
    var m = g.m, state = g.state, out = [], baseSm = g.softmax(lj), SK = m.S * m.K;
    Object.keys(SC.next_tests).forEach(function (name) {
      var test = SC.next_tests[name], results = [];
      if (test.reads === LPN) {
        if (state.csf.length >= MAX_LPS) { return; }
        var combos = [{}];
        test.methods.forEach(function (meth) {
          var next = [];
          combos.forEach(function (cmb) {
            SC.lp.results.forEach(function (r) { var x = Object.assign({}, cmb); x[meth] = r; next.push(x); });
          });
          combos = next;
        });
        combos.forEach(function (res) {
          var code = test.methods.map(function (meth) { return meth + "=" + res[meth]; }).join(",");
          var c = [0, 1].map(function (b) {
            var pr = lpProb(m, patternMask(m, res), null, b), e = new Float64Array(SK);
            for (var q = 0; q < SK; q++) { e[q] = Math.log(pr[q]); }
            return e;
          });
          var pos = Object.keys(res).some(function (x) { return res[x] === "positive"; });
          var item = m.profile_items[pos ? "positive" : "negative"];
          if (state.csf.length === 0 && full.profile !== null) {  // the first LP of a known profile
            var j = levelIdx(m, item, full.profile);
            for (var b = 0; b < 2; b++) {
              for (var q = 0; q < SK; q++) { c[b][q] += m.levelLp[q * m.L + j] - full.marg[b][q]; }
            }
            results.push({ result: code, extra: { c: c } });
          } else if (state.csf.length === 0) {  // the first LP reveals its CSF profile too
            FINDINGS[PROFILE].levels.forEach(function (lv) {
              var jj = levelIdx(m, item, lv), a = new Float64Array(SK);
              for (var q2 = 0; q2 < SK; q2++) { a[q2] = m.levelLp[q2 * m.L + jj]; }
              results.push({ result: code + "; " + lv, extra: { a: a, c: c } });
            });
          } else {
            results.push({ result: code, extra: { c: c } });
          }
        });
      } else if (levelOf(state, test.reads) === null) {
        FINDINGS[test.reads].levels.forEach(function (lv) {
          var jj = levelIdx(m, test.reads, lv), a = new Float64Array(SK);
          for (var q = 0; q < SK; q++) { a[q] = m.levelLp[q * m.L + jj]; }
          results.push({ result: lv, extra: { a: a } });
        });
      } else { return; }
      out.push({ test: name, outcomes: results.map(function (o) {
        var ljr = g.logJoint(combine(full, o.extra)), sm = g.softmax(ljr), pr = new Float64Array(m.S);
        for (var s = 0; s < m.S; s++) { pr[s] = Math.exp(sm.logPx[s] - baseSm.logPx[s]); }
        var means = causeMeans(g, sm, w), lead = leadingOf(m, means, g.active);  // as model/lookahead.py
        return { result: o.result, probability: summary(pr, ci, w), after: probSummary(g.logOdds(ljr), ci, w),
                 leading: lead, tied: tiedWith(m, sm.probs, lead, g.active, w) };
      }) });
    });
    return out;
  }

  function compute(state) {
    var m = model(state.variant), active = m.causes.map(function (c) { return state.causes.indexOf(c) >= 0; });
    var g = new Game(m, state, active), n = g.players.length, ci = state.ci;
    var key = state.id && m.aliases && m.aliases[state.id] ? m.aliases[state.id] : state.id;  // a case under another id
    var w = key && m.weightArrays[key] ? m.weightArrays[key] : null;
    var joints = [], lo = [], steps = [], full = null, k;
    for (k = 0; k <= n; k++) {
      var cmp = g.components(k);
      if (k === n) { full = cmp; }
      joints.push(g.logJoint(combine(cmp, null)));
      lo.push(g.logOdds(joints[k]));
    }
    var smPrior = g.softmax(joints[0]), smPost = g.softmax(joints[n]);
    var prevMeans = causeMeans(g, smPrior, w);
    for (k = 1; k <= n; k++) {
      var sm = g.softmax(joints[k]), mm = causeMeans(g, sm, w), lead = leadingOf(m, mm, active);
      steps.push({ player: g.players[k - 1], means: mm, after: probSummary(lo[k], ci, w), leading: lead,
                   tied: tiedWith(m, sm.probs, lead, active, w), lr: odds(mm[m.inf]) / odds(prevMeans[m.inf]) });
      prevMeans = mm;
    }
    var postMeans = causeMeans(g, smPost, w), leading = leadingOf(m, postMeans, active);
    var causes = [];
    m.causes.forEach(function (c, j) {
      if (!active[j]) { return; }
      var s = summary(smPost.probs[j], ci, w);
      causes.push({ cause: c, mean: s.mean, lower: s.lower, upper: s.upper, prior: wmean(smPrior.probs[j], w) });
    });
    var priorMeans = causeMeans(g, smPrior, w), priorLead = leadingOf(m, priorMeans, active);
    return { m: m, state: state, ci: ci, weighted: !!w, post: probSummary(lo[n], ci, w), prior: probSummary(lo[0], ci, w),
             priorLeading: priorLead, priorTied: tiedWith(m, smPrior.probs, priorLead, active, w),
             causes: causes, leading: leading, tied: tiedWith(m, smPost.probs, leading, active, w), steps: steps,
             tests: nextTests(g, full, joints[n], ci, w), active: active,
             means: postMeans };
  }

  // --- what to do now: the actions' triggers, with the decision left to the clinician report --------------

  function has(o, key) { return o !== null && typeof o === "object" && Object.prototype.hasOwnProperty.call(o, key); }

  function contaminated(lp, state) {
    var c = SC.lp.contamination;
    return lp.traumatic === "yes" && levelOf(state, c[0]) === c[1];
  }

  /* model/guidance.py holds in three values: true, false, or null (a trigger this page does not read, or the
   * decision when none is given): null is shown as "may apply, see the clinician report". */
  function holds(cond, state, means, decision) {
    if (cond === "always") { return true; }
    var parts, v;
    if (has(cond, "all") || has(cond, "any")) {
      var isAll = has(cond, "all");
      parts = (isAll ? cond.all : cond.any).map(function (c) { return holds(c, state, means, decision); });
      if (isAll) {
        if (parts.indexOf(false) >= 0) { return false; }
        return parts.indexOf(null) >= 0 ? null : true;
      }
      if (parts.indexOf(true) >= 0) { return true; }
      return parts.indexOf(null) >= 0 ? null : false;
    }
    if (has(cond, "not")) { v = holds(cond.not, state, means, decision); return v === null ? null : !v; }
    if (has(cond, "finding")) {
      if (cond.finding === LPN) {
        var csf = state.csf, pos = csf.filter(lpPositive);
        if (has(cond, "count_below")) { return csf.length < cond.count_below; }
        if (cond.all_negative) { return csf.length > 0 && pos.length === 0; }
        if (cond.any_positive) { return pos.length > 0; }
        if (cond.clean_positive) { return pos.some(function (lp) { return !contaminated(lp, state); }); }
        if (cond.atraumatic_after_positive) {
          var last = -1;
          csf.forEach(function (lp, i) { if (lpPositive(lp)) { last = i; } });
          return last >= 0 && csf.slice(last + 1).some(function (lp) { return lp.traumatic === "no"; });
        }
        if (cond.contaminated_positive) { return pos.length > 0 && pos.every(function (lp) { return contaminated(lp, state); }); }
        if (has(cond, "without")) { return !csf.some(function (lp) { return lp.results[cond.without] !== undefined; }); }
        if (cond.unknown) { return csf.length === 0; }
        return null;
      }
      v = has(state.values, cond.finding) ? state.values[cond.finding] : null;
      if (cond.unknown) { return v === null; }
      return has(cond, "in") ? cond["in"].indexOf(v) >= 0 : null;
    }
    if (has(cond, "cause")) {
      if (!has(means, cond.cause)) { return false; }
      return has(cond, "above") ? means[cond.cause] > cond.above : means[cond.cause] < cond.below;
    }
    if (has(cond, "decision") && decision) { return cond.decision.indexOf(decision) >= 0; }
    return null;  // the decision when none is given, or a trigger this page does not read
  }

  /* The decisions the mean P(infiltration) allows (model/decision.py): the page does not compute the thresholds,
   * but the upper one is never below the treatment threshold and the lower never above it or the testing floor,
   * so below the treatment threshold the decision is never 'treat' and at or above the floor never 'no_test'. */
  function possibleDecisions(p) {
    var d = RULES.decision;
    if (!d || p === undefined) { return [null]; }
    var out = [];
    if (p < Math.min(d.treatment, d.floor > 0 ? d.floor : d.treatment)) { out.push("no_test"); }
    out.push("test");
    if (p > d.treatment) { out.push("treat"); }
    return out;
  }

  function triggerText(cond) {
    if (cond === "always") { return "always"; }
    var list = function (key) { return cond[key].map(triggerText).join("; "); };
    if (has(cond, "all")) { return "all of (" + list("all") + ")"; }
    if (has(cond, "any")) { return "any of (" + list("any") + ")"; }
    if (has(cond, "not")) { return "not (" + triggerText(cond.not) + ")"; }
    if (has(cond, "cause")) { return "P(" + cond.cause + ") " + (has(cond, "above") ? "above " + cond.above : "below " + cond.below); }
    if (has(cond, "decision")) { return "the decision is " + cond.decision.join(" or ") + " (clinician report)"; }
    return JSON.stringify(cond);
  }

  // --- state: controls, fragment, files --------------------------------------------------------------------

  function emptyState() {
    var v = {};
    CATEGORICAL.forEach(function (n) { v[n] = null; });
    return { id: "", values: v, csf: [], variant: DATA.variants[0], ci: DATA.ci, pretest: null,
             causes: model(DATA.variants[0]).causes.slice() };
  }

  function readControls() {
    var st = emptyState();
    st.id = $("patient-id").value.trim();
    CATEGORICAL.forEach(function (n) { var x = $("f-" + n).value; st.values[n] = x === "unknown" ? null : x; });
    var nlp = parseInt($("n-lps").value, 10);
    st.problems = [];
    for (var i = 1; i <= nlp; i++) {
      var res = {};
      SC.lp.methods.forEach(function (meth) { var x = $("lp-" + i + "-" + meth).value; if (x !== "not_done") { res[meth] = x; } });
      var tr = $("lp-" + i + "-traumatic").value;
      if (!Object.keys(res).length) {  // an LP without a result is not one (the command line refuses it)
        st.problems.push("LP " + i + " has no result: give at least one of " + SC.lp.methods.join(", ") + "; it is left out");
        continue;
      }
      st.csf.push({ results: res, traumatic: tr === "unknown" ? null : tr });
    }
    st.variant = $("variant").value;
    st.ci = parseFloat($("ci").value);
    if ($("own-pretest").checked) {
      var p = parseFloat($("pretest").value) / 100;
      st.pretest = p > 0 && p < 1 ? p : NaN;
    }
    st.causes = model(st.variant).causes.filter(function (c) { return c === INF || $("cause-" + c).checked; });
    return st;
  }

  function writeControls(st) {
    $("patient-id").value = st.id || "";
    CATEGORICAL.forEach(function (n) { $("f-" + n).value = st.values[n] === null ? "unknown" : st.values[n]; });
    $("n-lps").value = String(st.csf.length);
    for (var i = 1; i <= MAX_LPS; i++) {
      var lp = st.csf[i - 1];
      $("lp-" + i).hidden = !lp;
      SC.lp.methods.forEach(function (meth) {
        $("lp-" + i + "-" + meth).value = lp && lp.results[meth] !== undefined ? lp.results[meth] : "not_done";
      });
      $("lp-" + i + "-traumatic").value = lp && lp.traumatic ? lp.traumatic : "unknown";
    }
    $("variant").value = st.variant;
    $("ci").value = String(st.ci);
    $("own-pretest").checked = st.pretest !== null;
    if (st.pretest !== null) { $("pretest").value = String(Math.round(st.pretest * 1000) / 10); }
    model(st.variant).causes.forEach(function (c) { if (c !== INF) { $("cause-" + c).checked = st.causes.indexOf(c) >= 0; } });
    syncLps();
  }

  function lpCode(lp) {
    var parts = SC.lp.methods.filter(function (meth) { return lp.results[meth] !== undefined; })
      .map(function (meth) { return meth + "=" + lp.results[meth]; });
    if (lp.traumatic) { parts.push("traumatic=" + lp.traumatic); }
    return parts.join(",");
  }

  /* One LP from the command line's forms: cytology=negative,flow=positive[,traumatic=no] or v2 negative:flow. */
  function parseLp(text, where) {
    var res = {}, traumatic = null;
    text = text.trim();
    if (text.indexOf("=") < 0) {
      var bits = text.split(":");
      if (bits.length !== 2 || SC.lp.results.indexOf(bits[0]) < 0 || SC.lp.methods.indexOf(bits[1]) < 0) {
        throw new Error(where + ": " + JSON.stringify(text) + " is not an LP; give e.g. cytology=negative,flow=positive or negative:flow");
      }
      res[bits[1]] = bits[0];
      return { results: res, traumatic: null };
    }
    text.split(",").forEach(function (part) {
      var kv = part.split("="), key = (kv[0] || "").trim(), val = (kv[1] || "").trim();
      if (kv.length !== 2 || !key) { throw new Error(where + ": " + JSON.stringify(text) + " is not an LP"); }
      if (key === "traumatic") {
        if (val !== "unknown" && SC.lp.traumatic.indexOf(val) < 0) { throw new Error(where + ".traumatic: " + JSON.stringify(val) + "; allowed: " + SC.lp.traumatic.join(", ") + ", unknown"); }
        traumatic = val === "unknown" ? null : val;
      } else if (SC.lp.methods.indexOf(key) >= 0) {
        if (val === "unknown" || val === "not_done") { return; }
        if (SC.lp.results.indexOf(val) < 0) { throw new Error(where + "." + key + ": " + JSON.stringify(val) + "; allowed: " + SC.lp.results.join(", ")); }
        res[key] = val;
      } else {
        throw new Error(where + ": unknown key " + JSON.stringify(key) + "; allowed: " + SC.lp.methods.join(", ") + ", traumatic");
      }
    });
    if (!Object.keys(res).length) { throw new Error(where + ": no result; give at least one of " + SC.lp.methods.join(", ")); }
    return { results: res, traumatic: traumatic };
  }

  var FLAG_KEYS = ["id", "variant", "ci", "pretest", "causes", "mode", "step"];

  /* The findings of an address fragment, with the command line's names (dashes or underscores) and levels. */
  function parseFragment(hash) {
    var st = emptyState(), errors = [], mode = null, step = false;
    hash = hash.replace(/^#/, "");
    if (!hash) { return { state: st, errors: errors, mode: mode, step: step }; }
    hash.split("&").forEach(function (part) {
      if (!part) { return; }
      var eq = part.indexOf("=");
      var key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq)).trim().replace(/-/g, "_");
      var val = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " ")).trim();
      try {
        if (key === LPN) {
          if (st.csf.length >= MAX_LPS) { throw new Error(LPN + ": at most " + MAX_LPS + " LPs"); }
          st.csf.push(parseLp(val, LPN + "[" + (st.csf.length + 1) + "]"));
        } else if (FINDINGS[key]) {
          var f = FINDINGS[key];
          if (val === "unknown" || val === "") { st.values[key] = null; }
          else if (f.allowed.indexOf(val) < 0) { throw new Error(key + ": " + JSON.stringify(val) + " is not allowed; allowed: " + f.allowed.join(", ") + ", unknown"); }
          else { st.values[key] = val; }
        } else if (key === "id") { st.id = val; }
        else if (key === "variant") {
          if (DATA.variants.indexOf(val) < 0) { throw new Error("variant: " + JSON.stringify(val) + "; allowed: " + DATA.variants.join(", ")); }
          st.variant = val;
        } else if (key === "ci") {
          var ci = parseFloat(val);
          if (!(ci > 0 && ci < 1)) { throw new Error("ci: " + JSON.stringify(val) + "; give a number between 0 and 1"); }
          st.ci = ci;
        } else if (key === "pretest") {
          var p = parseFloat(val);
          if (!(p > 0 && p < 1)) { throw new Error("pretest: " + JSON.stringify(val) + "; give a probability strictly between 0 and 1"); }
          st.pretest = p;
        } else if (key === "causes") {
          var all = model(st.variant).causes;
          var cs = val === "all" ? all.slice() : val.split(",").map(function (x) { return x.trim(); });
          if (cs.indexOf(INF) < 0 || cs.length < 2 || cs.some(function (x) { return all.indexOf(x) < 0; })) {
            throw new Error("causes: " + JSON.stringify(val) + "; give all, or two or more of " + all.join(", ") + " including " + INF);
          }
          st.causes = cs;
        } else if (key === "mode") { mode = val; }
        else if (key === "step") { step = true; }  // one finding at a time on these findings, from the first
        else { throw new Error(key + ": not a finding; allowed: " + CATEGORICAL.concat([LPN], FLAG_KEYS).join(", ")); }
      } catch (e) { errors.push(e.message); }
    });
    return { state: st, errors: errors, mode: mode, step: step };
  }

  /* The findings of a state as the address writes them (the same findings, the same text). */
  function findingsOf(st) {
    var parts = [];
    SC.findings.forEach(function (f) {
      if (f.name === LPN) { st.csf.forEach(function (lp) { parts.push(LPN + "=" + lpCode(lp)); }); }
      else if (st.values[f.name] !== null) { parts.push(f.name + "=" + encodeURIComponent(st.values[f.name])); }
    });
    return parts.join("&");
  }

  function fragmentOf(st) {
    var parts = [];
    if (st.id) { parts.push("id=" + encodeURIComponent(st.id)); }
    if (findingsOf(st)) { parts.push(findingsOf(st)); }
    if (st.variant !== DATA.variants[0]) { parts.push("variant=" + st.variant); }
    if (st.ci !== DATA.ci) { parts.push("ci=" + st.ci); }
    if (st.pretest !== null && !isNaN(st.pretest)) { parts.push("pretest=" + st.pretest); }
    if (st.causes.length !== model(st.variant).causes.length) { parts.push("causes=" + st.causes.join(",")); }
    if (document.body.classList.contains("classroom")) { parts.push("mode=classroom"); }
    return parts.join("&");
  }

  function yamlScalar(v) { return /^[A-Za-z0-9_.-]+$/.test(v) && ["yes", "no", "true", "false", "on", "off", "null"].indexOf(v.toLowerCase()) < 0 ? v : JSON.stringify(v); }

  /* The case as a patient file (the command line reads it: palsy posterior --patient FILE). */
  function toYaml(st) {
    var lines = ["# palsy patient file, saved from the interactive page", "id: " + yamlScalar(st.id || "patient"),
                 "description: " + JSON.stringify("saved from the interactive page")];
    SC.findings.forEach(function (f) {
      if (f.name === LPN) {
        if (!st.csf.length) { return; }
        lines.push(LPN + ":");
        st.csf.forEach(function (lp) {
          var kv = SC.lp.methods.filter(function (meth) { return lp.results[meth] !== undefined; })
            .map(function (meth) { return meth + ": " + lp.results[meth]; });
          if (lp.traumatic) { kv.push("traumatic: " + JSON.stringify(lp.traumatic)); }
          lines.push("  - {" + kv.join(", ") + "}");
        });
      } else if (st.values[f.name] !== null) {
        lines.push(f.name + ": " + yamlScalar(st.values[f.name]));
      }
    });
    return lines.join("\n") + "\n";
  }

  function unquote(v) {
    v = v.trim();
    if ((v[0] === '"' && v[v.length - 1] === '"') || (v[0] === "'" && v[v.length - 1] === "'")) { return v.slice(1, -1); }
    return v;
  }

  function flowMap(text, where) {
    text = text.trim();
    if (text[0] !== "{" || text[text.length - 1] !== "}") { throw new Error(where + ": give {cytology: ..., flow: ..., traumatic: ...}"); }
    var out = {};
    text.slice(1, -1).split(",").forEach(function (part) {
      if (!part.trim()) { return; }
      var i = part.indexOf(":");
      if (i < 0) { throw new Error(where + ": " + JSON.stringify(part.trim()) + " is not key: value"); }
      out[part.slice(0, i).trim()] = unquote(part.slice(i + 1));
    });
    return out;
  }

  function boolWord(v) { return v === "true" ? "yes" : v === "false" ? "no" : v; }

  /* A patient file (YAML of the shape palsy writes and reads: scalars, and csf as a list of mappings). */
  function fromYaml(text) {
    var st = emptyState(), errors = [], lines = text.split(/\r?\n/), i = 0, lps = [];
    function lpFrom(map, where) {
      if (has(map, "result") || has(map, "method")) { return parseLp(map.result + ":" + map.method, where); }
      var parts = Object.keys(map).map(function (k) { return k + "=" + boolWord(map[k]); });
      return parseLp(parts.join(","), where);
    }
    while (i < lines.length) {
      var raw = lines[i].replace(/\s+#.*$/, ""), line = raw.trim();
      i++;
      if (!line || line[0] === "#") { continue; }
      if (/^\s/.test(raw)) { errors.push("line " + i + ": unexpected indentation"); continue; }
      var c = line.indexOf(":");
      if (c < 0) { errors.push("line " + i + ": not key: value"); continue; }
      var key = line.slice(0, c).trim(), val = line.slice(c + 1).trim();
      try {
        if (key === LPN) {
          if (val.indexOf("[") === 0) {
            var inner = val.slice(1, val.lastIndexOf("]")), depth = 0, cur = "";
            for (var q = 0; q < inner.length; q++) {
              var ch = inner[q];
              if (ch === "{") { depth++; } if (ch === "}") { depth--; }
              if (ch === "," && depth === 0) { if (cur.trim()) { lps.push(lpFrom(flowMap(cur, LPN), LPN)); } cur = ""; } else { cur += ch; }
            }
            if (cur.trim()) { lps.push(lpFrom(flowMap(cur, LPN), LPN)); }
          } else if (val && val !== "unknown" && val !== "null") {
            throw new Error(LPN + ": give a list of LPs");
          } else {
            while (i < lines.length && /^\s+-/.test(lines[i])) {
              var item = lines[i].replace(/^\s+-\s*/, "").replace(/\s+#.*$/, "");
              i++;
              var map;
              if (item.trim()[0] === "{") { map = flowMap(item, LPN); } else {
                map = {};
                var kv = item.split(":");
                if (kv.length >= 2) { map[kv[0].trim()] = unquote(kv.slice(1).join(":")); }
                while (i < lines.length && /^\s{3,}[A-Za-z]/.test(lines[i]) && !/^\s+-/.test(lines[i])) {
                  var kv2 = lines[i].trim().split(":");
                  map[kv2[0].trim()] = unquote(kv2.slice(1).join(":").replace(/\s+#.*$/, ""));
                  i++;
                }
              }
              lps.push(lpFrom(map, LPN + "[" + (lps.length + 1) + "]"));
            }
          }
        } else if (key === "id") { st.id = unquote(val); }
        else if (key === "description") { continue; }
        else if (FINDINGS[key]) {
          var v = boolWord(unquote(val));
          if (v === "" || v === "unknown" || v === "null" || v === "~") { st.values[key] = null; }
          else if (FINDINGS[key].allowed.indexOf(v) < 0) { throw new Error(key + ": " + JSON.stringify(v) + " is not allowed; allowed: " + FINDINGS[key].allowed.join(", ") + ", unknown"); }
          else { st.values[key] = v; }
        } else { throw new Error(key + ": unknown field; allowed: id, description, " + SC.findings.map(function (f) { return f.name; }).join(", ")); }
      } catch (e) { errors.push(e.message); }
    }
    if (lps.length > MAX_LPS) { errors.push(LPN + ": at most " + MAX_LPS + " LPs"); lps = lps.slice(0, MAX_LPS); }
    st.csf = lps;
    return { state: st, errors: errors };
  }

  // --- the page ---------------------------------------------------------------------------------------------

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }

  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } }

  function causeLabel(c) { return LABELS.causes[c] ? LABELS.causes[c].label : c.replace(/_/g, " "); }
  function causeShort(c) { return LABELS.causes[c] ? LABELS.causes[c].short : c.replace(/_/g, " "); }

  function leadText(lead, tied) {
    var names = [causeShort(lead)].concat(tied.map(causeShort));
    if (names.length === 1) { return names[0]; }
    return names.slice(0, -1).join(", ") + " and " + names[names.length - 1] + ", tied";
  }

  function valueLabel(name, v) { return LABELS.findings[name].levels[v] || v.replace(/_/g, " "); }

  function lpWords(lp) {
    var parts = SC.lp.methods.filter(function (meth) { return lp.results[meth] !== undefined; }).map(function (meth) {
      return LABELS.lp.methods[meth].split(" (")[0] + " " + lp.results[meth];
    });
    return parts.join(", ") + (lp.traumatic ? " (" + LABELS.lp.traumatic[lp.traumatic] + ")" : "");
  }

  function playerText(p) {
    if (p.lp) { return "LP " + p.index + ": " + lpWords(p.lp); }
    return LABELS.findings[p.finding].label + ": " + valueLabel(p.finding, p.value);
  }

  function resultWords(test, result) {
    if (SC.next_tests[test].reads !== LPN) { return valueLabel(SC.next_tests[test].reads, result); }
    var bits = result.split("; "), res = {};
    bits[0].split(",").forEach(function (kv) { var x = kv.split("="); res[x[0]] = x[1]; });
    return lpWords({ results: res, traumatic: null }) + (bits[1] ? "; " + valueLabel(PROFILE, bits[1]) : "");
  }

  function drawStack(r) {
    var bar = $("stack"), list = $("forest");
    clear(bar); clear(list);
    r.causes.forEach(function (c) {
      var col = DATA.palette[c.cause] || { fill: "#777", text: "#fff", hatch: "" };
      var seg = el("div", null, "seg" + (col.hatch ? " hatched" : ""));
      seg.style.width = (100 * c.mean) + "%";
      seg.style.background = col.fill;
      seg.style.color = col.text;
      seg.setAttribute("data-cause", c.cause);
      seg.title = causeLabel(c.cause) + " " + percent(c.mean);
      if (c.mean >= 0.16) { seg.textContent = causeShort(c.cause) + " " + percent(c.mean); }
      else if (c.mean >= 0.06) { seg.textContent = percent(c.mean); }
      bar.appendChild(seg);
      var li = el("li");
      li.setAttribute("data-cause", c.cause);
      var sw = el("span", null, "swatch");
      sw.style.background = col.fill;
      li.appendChild(sw);
      li.appendChild(el("span", causeLabel(c.cause), "fname"));
      li.appendChild(el("span", percent(c.mean), "fmean"));
      var track = el("span", null, "track"), band = el("span", null, "band"), dot = el("span", null, "dot");
      band.style.left = (100 * c.lower) + "%";
      band.style.width = Math.max(0.6, 100 * (c.upper - c.lower)) + "%";
      band.style.background = col.fill;
      dot.style.left = (100 * c.mean) + "%";
      track.appendChild(band); track.appendChild(dot);
      track.setAttribute("aria-hidden", "true");
      li.appendChild(track);
      li.appendChild(el("span", percent(c.lower) + " to " + percent(c.upper), "fci"));
      list.appendChild(li);
    });
  }

  function render() {
    var st = readControls(), msg = $("message");
    // an answer to a question no longer asked is not left on screen: the result is hidden until the pretest is valid
    var stale = st.pretest !== null && isNaN(st.pretest);
    $("result").hidden = stale;
    $("visual").hidden = stale;
    if (stale) {
      msg.textContent = "Give your own pretest P(infiltration) between 0.1 and 99.9 (percent): no answer until then.";
      return null;
    }
    msg.textContent = st.problems.length ? st.problems.join("; ") : (msg.getAttribute("data-kept") || "");
    var r = compute(st), res = $("result"), ci = Math.round(100 * r.ci) + "%";
    ["mean", "median", "lower", "upper"].forEach(function (k) { res.setAttribute("data-" + k, String(r.post[k])); });
    res.setAttribute("data-leading", r.leading);
    res.setAttribute("data-tied", r.tied.join(","));
    $("p-mean").textContent = percent(r.post.mean);
    $("p-interval").textContent = percent(r.post.lower) + " to " + percent(r.post.upper);
    $("p-ci").textContent = ci;
    $("p-lead").textContent = leadText(r.leading, r.tied);
    // "tied" once: the causes are named "..., tied" (a teacher's review, s16: the label said it too)
    $("p-lead-label").textContent = r.tied.length ? "Leading causes (closer than the computation can separate):" : "Leading cause:";
    $("p-against").textContent = r.causes.filter(function (c) { return c.cause !== INF; }).map(function (c) { return causeShort(c.cause); }).join(", ");
    $("p-base").textContent = (r.state.pretest !== null ? "Your pretest: " + percent(r.prior.mean) :
      "Before any finding: " + percent(r.prior.mean) + " (mean; " + ci + " CrI " + percent(r.prior.lower) + " to " +
      percent(r.prior.upper) + ")") +
      (r.weighted ? ". A published case the model learned from: answered with it left out, as palsy posterior does" : "");
    document.querySelectorAll(".ci-mass").forEach(function (e) { e.textContent = ci; });
    $("variant-shown").textContent = r.state.variant;  // which variant the numbers are (s16: the footer named both)
    drawStack(r);
    drawNotes(r);
    scheduleVariantNote(r);
    drawSteps(r);
    drawTests(r);
    drawActions(r);
    RENDERS += 1;
    document.body.setAttribute("data-rendered", String(RENDERS));
    var frag = fragmentOf(st);
    if (history.replaceState) { history.replaceState(null, "", "#" + frag); }
    $("share-link").value = location.href.split("#")[0] + "#" + frag;
    return r;
  }

  /* The other variant's P(infiltration) for the same question (model/answer.py _other_variant: the same causes
   * and pretest, a library case left out by its own weights): only its headline. */
  function otherVariant(r) {
    var others = DATA.variants.filter(function (v) { return v !== r.state.variant; });
    if (!others.length) { return null; }
    var m = model(others[0]), st = Object.assign({}, r.state, { variant: others[0] });
    st.causes = r.state.causes.filter(function (c) { return m.causes.indexOf(c) >= 0; });
    var active = m.causes.map(function (c) { return st.causes.indexOf(c) >= 0; });
    var g = new Game(m, st, active);
    var key = st.id && m.aliases && m.aliases[st.id] ? m.aliases[st.id] : st.id;
    var w = key && m.weightArrays[key] ? m.weightArrays[key] : null;
    return { variant: st.variant, post: probSummary(g.logOdds(g.logJoint(combine(g.components(g.players.length), null))), st.ci, w) };
  }

  /* The variants' disagreement, as palsy posterior's MODEL UNCERTAINTY names it (beyond model.yaml's margin), after
   * the answer is on screen: the other variant's tables are read the first time it is needed. */
  var VARIANT_TIMER = null;

  function scheduleVariantNote(r) {
    if (VARIANT_TIMER !== null) { clearTimeout(VARIANT_TIMER); }
    VARIANT_TIMER = setTimeout(function () {
      VARIANT_TIMER = null;
      drawVariantNote(r);
      document.body.setAttribute("data-variant-note", String(RENDERS));
    }, 0);
  }

  function drawVariantNote(r) {
    var alt = otherVariant(r), margin = r.m.settings.variants ? r.m.settings.variants.differ_by : null;
    if (!alt || margin === null || !(Math.abs(alt.post.mean - r.post.mean) > margin)) { return; }
    var text = "Model uncertainty: the other model variant (" + alt.variant + ") gives a mean of " + percent(alt.post.mean) +
      " (" + Math.round(100 * r.ci) + "% CrI " + percent(alt.post.lower) + " to " + percent(alt.post.upper) + "), more than " +
      Math.round(100 * margin) + " percentage points from this answer: the variants disagree for this patient and the " +
      "published cases cannot yet tell them apart.";
    var here = possibleDecisions(r.post.mean), there = possibleDecisions(alt.post.mean);
    if (here.every(function (d) { return d !== null && there.indexOf(d) < 0; })) {
      text += " Its mean falls in another zone of the decision: the decision would differ under it.";
    } else if (here.join() !== there.join()) {
      text += " The decision may differ under it (its thresholds are in the clinician report).";
    }
    var li = el("li", text), notes = $("notes");
    li.setAttribute("data-kind", "variants");
    notes.appendChild(li);
    notes.hidden = false;
  }

  function drawNotes(r) {
    var notes = $("notes"), st = r.state, scope = r.m.settings.scope;
    clear(notes);
    CATEGORICAL.forEach(function (n) {
      var v = st.values[n], key = v && FINDINGS[n].scope_notes ? FINDINGS[n].scope_notes[v] : null;
      if (key && scope[key]) { var li = el("li", "Out of scope: " + scope[key].split(/\s+/).join(" ")); li.setAttribute("data-kind", "scope"); notes.appendChild(li); }
    });
    var hall = r.m.settings.hallmarks || {};
    r.m.causes.forEach(function (c, j) {
      if (r.active[j]) { return; }
      (hall[c] || []).forEach(function (mk) {
        if (levelOf(st, mk.finding) === mk.value) {
          var li = el("li", "Warning: " + LABELS.findings[mk.finding].label + " (" + valueLabel(mk.finding, mk.value) + ") points to " + causeLabel(c) + ", which is not weighed here");
          li.setAttribute("data-kind", "warning");
          notes.appendChild(li);
        }
      });
    });
    notes.hidden = !notes.firstChild;
  }

  function cell(tr, text, header) {
    var td = el(header ? "th" : "td", text);
    if (header) { td.setAttribute("scope", "row"); }
    tr.appendChild(td);
    return td;
  }

  function drawSteps(r) {
    var body = $("steps-body");
    clear(body);
    var tr = el("tr");
    cell(tr, r.state.pretest !== null ? "your pretest" : "before any finding", true);
    cell(tr, "");
    cell(tr, r.state.pretest !== null ? percent(r.prior.mean) : withInterval(r.prior));  // a pretest is the user's number
    cell(tr, leadText(r.priorLeading, r.priorTied));
    body.appendChild(tr);
    r.steps.forEach(function (s) {
      var row = el("tr");
      cell(row, playerText(s.player), true);
      cell(row, factor(s.lr));
      cell(row, withInterval({ mean: s.means[r.m.inf], lower: s.after.lower, upper: s.after.upper }));
      cell(row, leadText(s.leading, s.tied));
      body.appendChild(row);
    });
  }

  function drawTests(r) {
    var body = $("tests-body");
    clear(body);
    r.tests.forEach(function (t) {
      t.outcomes.forEach(function (o, i) {
        var tr = el("tr");
        tr.setAttribute("data-test", t.test);
        tr.setAttribute("data-result", o.result);
        tr.setAttribute("data-probability", String(o.probability.mean));
        tr.setAttribute("data-after", String(o.after.mean));
        tr.setAttribute("data-after-lower", String(o.after.lower));
        tr.setAttribute("data-after-upper", String(o.after.upper));
        tr.setAttribute("data-leading", o.leading);
        tr.setAttribute("data-tied", o.tied.join(","));
        cell(tr, i === 0 ? LABELS.tests[t.test] : "", true);
        cell(tr, resultWords(t.test, o.result));
        cell(tr, withInterval(o.probability));
        cell(tr, withInterval(o.after));
        cell(tr, leadText(o.leading, o.tied));
        body.appendChild(tr);
      });
    });
    $("tests-none").hidden = r.tests.length > 0;
  }

  function drawActions(r) {
    var list = $("actions-list"), maybe = $("actions-maybe"), means = {};
    clear(list); clear(maybe);
    r.causes.forEach(function (c) { means[c.cause] = c.mean; });
    // each action under every decision the mean allows: shown now when it holds under all of them, as "may
    // apply" under some; an escalation that holds under every one of them, by one action or another, is shown now
    var ds = possibleDecisions(means[INF]);
    var under = RULES.actions.map(function (a) { return ds.map(function (d) { return holds(a.when, r.state, means, d); }); });
    var escalates = ds.every(function (d, k) {
      return RULES.actions.some(function (a, i) { return a.urgency === "escalation" && under[i][k] === true; });
    });
    RULES.actions.forEach(function (a, i) {
      var vs = under[i], v;
      if (vs.every(function (x) { return x === false; })) { return; }
      v = vs.every(function (x) { return x === true; }) || (escalates && a.urgency === "escalation" &&
                                                            vs.indexOf(true) >= 0) ? true : null;
      var li = el("li");
      li.setAttribute("data-action", a.id);
      li.appendChild(el("span", a.text, "action-text"));
      var more = el("details");
      more.appendChild(el("summary", "why, sources and when it applies"));
      more.appendChild(el("p", a.detail));
      more.appendChild(el("p", "Sources: " + a.refs.map(function (k) { return RULES.references[k] || k; }).join("; "), "muted"));
      more.appendChild(el("p", "Applies when: " + triggerText(a.when), "muted"));
      li.appendChild(more);
      (v === true ? list : maybe).appendChild(li);
    });
    $("actions-maybe-box").hidden = !maybe.firstChild;
  }

  function syncLps() {
    var nlp = parseInt($("n-lps").value, 10);
    for (var i = 1; i <= MAX_LPS; i++) {
      var row = $("lp-" + i), shown = i <= nlp;
      if (shown && row.hidden) {  // a new LP starts as negative by every method, tap not stated
        SC.lp.methods.forEach(function (meth) { $("lp-" + i + "-" + meth).value = SC.lp.results[0]; });
        $("lp-" + i + "-traumatic").value = "unknown";
      }
      row.hidden = !shown;
    }
    $("pretest").disabled = !$("own-pretest").checked;
  }

  function showErrors(errors) {
    var text = errors.length ? "Not read from the address or file: " + errors.join("; ") : "";
    $("message").setAttribute("data-kept", text);
    $("message").textContent = text;
  }

  // --- classroom: one finding at a time, predict then reveal ------------------------------------------------

  var STEP = null, RENDERS = 0;

  function presetState(id) {
    if (id === "__current") { return readControls(); }
    var p = DATA.presets.filter(function (x) { return x.id === id; })[0];
    return parseFragment(p.fragment).state;
  }

  function stepItems(st) {  // the findings in clinical order, as controls to set one at a time
    var items = [];
    SC.findings.forEach(function (f) {
      if (f.name === LPN) { st.csf.forEach(function (lp, i) { items.push({ lp: lp, index: i + 1 }); }); }
      else if (st.values[f.name] !== null) { items.push({ finding: f.name, value: st.values[f.name] }); }
    });
    return items;
  }

  function itemText(it) { return it.lp ? "LP " + it.index + ": " + lpWords(it.lp) : LABELS.findings[it.finding].label + ": " + valueLabel(it.finding, it.value); }

  function startSteps() {
    var id = $("case-select").value, target = presetState(id), blank = emptyState();
    blank.variant = $("variant").value;
    blank.ci = parseFloat($("ci").value);
    blank.id = target.id;
    blank.causes = readControls().causes;
    writeControls(blank);
    render();
    STEP = { items: stepItems(target), k: 0, preset: DATA.presets.filter(function (x) { return x.id === id; })[0] || null };
    $("step-panel").hidden = false;
    showStep();
  }

  function showStep() {
    var done = STEP.k >= STEP.items.length;
    $("step-prompt").textContent = done ? "Every finding is revealed." :
      "Next (" + (STEP.k + 1) + " of " + STEP.items.length + "): " + itemText(STEP.items[STEP.k]) +
      ". Will P(infiltration) go up, down, or stay about the same?";
    // the prediction buttons only: the skip button sits in the same group and has its own handler (a teacher's
  // review, s16: each skip revealed twice, the lesson's first LP never shown)
  document.querySelectorAll("#predict button[data-predict]").forEach(function (b) { b.disabled = done; b.setAttribute("aria-pressed", "false"); });
    $("step-skip").disabled = done;
    if (done && STEP.preset && STEP.preset.cause) {
      $("step-reveal").textContent += " The source established: " + STEP.preset.cause + ".";
    }
    if (!done) { $("predict-up").focus(); }
  }

  function applyItem(it) {
    var st = readControls();
    if (it.lp) { st.csf.push(it.lp); } else { st.values[it.finding] = it.value; }
    writeControls(st);
  }

  function reveal(prediction) {
    var before = parseFloat($("result").getAttribute("data-mean"));
    var beforeLead = $("p-lead").textContent;
    applyItem(STEP.items[STEP.k]);
    var r = render(), after = r.post.mean, lr = odds(after) / odds(before);
    var dir = Math.abs(Math.log(lr)) < Math.log(1 + DATA.same_within) ? "same" : lr > 1 ? "up" : "down";
    var words = { up: "up", down: "down", same: "about the same" };
    var text = (prediction ? "You said " + words[prediction] + "; " : "") + "it went " + words[dir] + ": factor on the odds " +
      factor(lr) + ", P(infiltration) " + percent(before) + " to " + percent(after) + " (mean; " + Math.round(100 * r.ci) +
      "% CrI " + percent(r.post.lower) + " to " + percent(r.post.upper) + "). Leading cause: " +
      leadText(r.leading, r.tied) + (leadText(r.leading, r.tied) !== beforeLead ? " (was " + beforeLead + ")" : "") + ".";
    $("step-reveal").textContent = text;
    $("step-reveal").setAttribute("data-direction", dir);
    if (prediction) { $("step-reveal").setAttribute("data-correct", String(prediction === dir)); }
    STEP.k += 1;
    showStep();
  }

  // --- wiring -----------------------------------------------------------------------------------------------

  function onChange() { syncLps(); render(); }

  function load(st, errors, mode, step) {
    writeControls(st);
    showErrors(errors);
    if (mode === "classroom" || step) { setClassroom(true); }
    render();
    if (step) { stepFromStart(st); }
  }

  /* The address's findings one at a time, from none (the guide's classroom link: nothing is revealed before the room
   * has predicted): under the preset that has these findings, or as "the findings set below". */
  function stepFromStart(st) {
    var want = findingsOf(st), p = DATA.presets.filter(function (x) { return findingsOf(parseFragment(x.fragment).state) === want; })[0];
    $("case-select").value = p ? p.id : "__current";
    startSteps();
  }

  function setClassroom(on) {
    document.body.classList.toggle("classroom", on);
    $("classroom-toggle").setAttribute("aria-pressed", String(on));
    $("stepper").hidden = !on;
  }

  document.querySelectorAll("#controls select, #controls input").forEach(function (e) {
    e.addEventListener("change", onChange);
    if (e.type === "number" || e.type === "text") { e.addEventListener("input", onChange); }
  });
  $("reset").addEventListener("click", function () { var st = emptyState(); writeControls(st); showErrors([]); render(); });
  $("classroom-toggle").addEventListener("click", function () {
    setClassroom(!document.body.classList.contains("classroom"));
    render();
  });
  $("copy-link").addEventListener("click", function () {
    $("share-link").select();
    try { document.execCommand("copy"); $("message").textContent = "Link copied: it carries this case."; } catch (e) { /* select only */ }
  });
  $("save").addEventListener("click", function () {
    var st = readControls(), blob = new Blob([toYaml(st)], { type: "text/yaml" }), a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = (st.id || "patient").replace(/[^A-Za-z0-9._-]+/g, "_") + ".yaml";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  });
  $("load").addEventListener("change", function (ev) {
    var file = ev.target.files[0];
    if (!file) { return; }
    var reader = new FileReader();
    reader.onload = function () {
      var got = fromYaml(String(reader.result)), cur = readControls();
      got.state.variant = cur.variant; got.state.ci = cur.ci; got.state.causes = cur.causes;
      load(got.state, got.errors, null);
    };
    reader.readAsText(file);
  });
  $("step-start").addEventListener("click", startSteps);
  $("step-skip").addEventListener("click", function () { reveal(null); });
  // the prediction buttons only: the skip button sits in the same group and has its own handler (a teacher's
  // review, s16: each skip revealed twice, the lesson's first LP never shown)
  document.querySelectorAll("#predict button[data-predict]").forEach(function (b) {
    b.addEventListener("click", function () { b.setAttribute("aria-pressed", "true"); reveal(b.getAttribute("data-predict")); });
  });
  window.addEventListener("hashchange", function () {
    var got = parseFragment(location.hash);
    if (got.step || fragmentOf(got.state) !== fragmentOf(readControls())) { load(got.state, got.errors, got.mode, got.step); }
  });

  window.palsyTeach = { compute: function () { return compute(readControls()); }, parseFragment: parseFragment,
                        open: function (hash) { var got = parseFragment(hash); load(got.state, got.errors, got.mode, got.step); return got.errors; },
                        fragmentOf: fragmentOf, toYaml: toYaml, fromYaml: fromYaml, percent: percent, render: render,
                        readControls: readControls };
  var first = parseFragment(location.hash);
  load(first.state, first.errors, first.mode, first.step);
  document.body.setAttribute("data-ready", "true");
}());

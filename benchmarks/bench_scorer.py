"""Per-request latency of the scorer against the paths a web developer would write, in one run.

Run:  .venv/bin/python benchmarks/bench_scorer.py [--calls 20000] [--memory-calls 1000000]

On the default bundle (and on a larger bundle trained here, to show how cost grows with trees),
interleaved call by call in a fresh random order each round (so that machine drift and cache
warmth hit every path alike), cycling through realistic
requests (decision points of a fresh simulation, not one repeated row), after warm-up:

(a) ``Scorer.decide_one`` end to end from a raw signals dict (session feature values by name, as a
    backend that keeps its own counters holds them), plus a customer dict and the channel context;
(a') the same from a live ``SessionState``;
(b) the naive path: same features and policy, every model through LightGBM's scikit-learn API
    (``predict`` on a one-row DataFrame) — measured on every 10th request, it is slow;
(c) the same with ``Booster.predict`` on one-row numpy arrays;
(d) the bare model evaluation of the same models as the scorer holds them — one stacked model
    (every value model and the offer model in LightGBM's multiclass layout) through the C API
    single-row fast path, one call, with no features or policy: the floor of this technique;
(e) reading ``Decision.reasons`` of an offer (computed lazily, off the decision's path);
(f) ``decide_one`` for a known customer from the customer dict, and (f') the same with the customer's
    profile prepared once for the session (``Scorer.prepare_customer``), on the known customers' requests.

Also ``decide_many`` rows/s against ``Booster.predict`` of the same models on the same rows (both on
one thread), the import time of the scorer, and resident memory after loading and after
``--memory-calls`` calls. The machine's load average is printed with the figures.
Prints a table and writes it with the machine's description to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from nextchannel.features import SESSION_FEATURES, SessionState
from nextchannel.policy import choose, eligibility
from nextchannel.profile import history_of, profile_one
from nextchannel.scorer import Scorer, _dev_name, _lang_name
from nextchannel.simulation import simulate
from nextchannel.training import TrainConfig, context_frame, train


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def requests(n_sessions: int, seed: int) -> list[tuple]:
    """(signals dict, SessionState, customer dict, context dict, now) per decision point."""
    sim = simulate(n_sessions, seed=seed)
    ev = sim.events
    by_session = {sid: g.to_dict("records") for sid, g in ev.groupby("session_id", sort=False)}
    ctx_cols = [c for c in sim.decisions.columns if c.startswith(("open_", "wait_", "lang_ok_"))]
    out = []
    for r in sim.decisions.itertuples(index=False):
        st = SessionState(r.session_id)
        for e in by_session[r.session_id]:
            if e["ts"] > r.ts:
                break
            st.update({k: v for k, v in e.items() if v is not None and v == v})
        signals = {"session_id": r.session_id, "ts": r.ts, **st.features_one(r.ts)}
        cust = history_of(r.customer_id, contacts=sim.contacts, customers=sim.customers) if isinstance(r.customer_id, str) else None
        ctx = {c: getattr(r, c) for c in ctx_cols}
        ctx = {k: (bool(v) if not k.startswith("wait_") else float(v)) for k, v in ctx.items()}
        out.append((signals, st, cust, ctx, float(r.ts)))
    return out


class NaivePaths:
    """(b) and (c): the same features and policy, models through LightGBM's Python APIs."""

    def __init__(self, scorer: Scorer) -> None:
        ms = scorer.model_set
        self.ms = ms
        self.names = list(ms.feature_names)
        self.value_cols = self.names + list(ms.value_model.context_features_)
        self.value = ms.value_model.boosters_
        self.offer = ms.offer_model.booster_
        self.skl_value = [self._sklearn(b, len(self.value_cols)) for b in self.value]
        self.skl_offer = self._sklearn(self.offer, len(self.names))

    @staticmethod
    def _sklearn(booster: lgb.Booster, n_features: int) -> lgb.LGBMRegressor:
        # A fitted scikit-learn wrapper around the same booster (what a developer loading a model gets).
        reg = lgb.LGBMRegressor(n_estimators=1, verbose=-1, n_jobs=1)
        rng = np.random.default_rng(0)
        reg.fit(pd.DataFrame(rng.normal(size=(30, n_features)), columns=booster.feature_name()), rng.normal(size=30))
        reg._Booster = booster
        return reg

    def _inputs(self, signals, cust, ctx, now):
        feats = {k: signals.get(k, np.nan) for k in SESSION_FEATURES}
        feats.update(profile_one(cust, now, self.ms.profile_config))
        names = self.ms.policy.channels.names
        ctx_row = []
        for c in names:
            ctx_row += [1.0 if ctx.get(f"open_{c}", True) else 0.0, float(ctx.get(f"wait_{c}_s", 0.0)),
                        1.0 if ctx.get(f"lang_ok_{c}", True) else 0.0]
        return feats, ctx_row

    def _policy(self, feats, ev, ctx):
        pol = self.ms.policy
        names = pol.channels.names
        ok, why = eligibility(pol, device=_dev_name(feats["device"]), language=_lang_name(feats["language"]),
                              offers_shown=feats["offers_shown"], time_since_dismiss_s=feats["time_since_dismiss_s"],
                              contacts_started=feats["contacts_started"],
                              open_=[ctx.get(f"open_{c}", True) for c in names],
                              wait_s=[ctx.get(f"wait_{c}_s", 0.0) for c in names],
                              lang_ok=[ctx.get(f"lang_ok_{c}", True) for c in names],
                              opted_out=[feats.get(f"prof_optout_{c}", 0) >= 1 for c in names])
        return choose(pol, np.asarray(ev), ok, 0.0), why

    def sklearn_path(self, signals, cust, ctx, now):
        feats, ctx_row = self._inputs(signals, cust, ctx, now)
        xv = pd.DataFrame([[feats[n] for n in self.names] + ctx_row], columns=self.value_cols)
        ev = [float(m.predict(xv)[0]) for m in self.skl_value]
        tau = float(self.skl_offer.predict(xv[self.names])[0])
        return self._policy(feats, ev, ctx), tau

    def booster_path(self, signals, cust, ctx, now):
        feats, ctx_row = self._inputs(signals, cust, ctx, now)
        xv = np.array([[feats[n] for n in self.names] + ctx_row])
        ev = [float(b.predict(xv, num_threads=1)[0]) for b in self.value]
        tau = float(self.offer.predict(xv[:, : len(self.names)], num_threads=1)[0])
        return self._policy(feats, ev, ctx), tau


def bare_models(scorer: Scorer, reqs: list[tuple]) -> tuple:
    """(d): the scorer's own stacked predictor on prefilled rows (no features, no policy)."""
    c = scorer._c
    st = c.buffers()
    rows = []
    for signals, state, cust, ctx, now in reqs:
        scorer.decide_one(signals, cust, ctx, now=now)  # leaves this request's full row in the buffer
        rows.append(st.row.copy())
    return st, rows


def pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) / 1000.0
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "p99.9": float(np.percentile(a, 99.9)), "n": len(xs)}


def latency(scorer: Scorer, reqs: list[tuple], calls: int) -> dict[str, dict]:
    naive = NaivePaths(scorer)
    st, rows = bare_models(scorer, reqs)
    stack_p, row = st.stack_p, st.row
    offers = [r for r in reqs if scorer.decide_one(r[0], r[2], r[3], now=r[4]).offer] or reqs
    known = [r for r in reqs if r[2]]
    prepared = [scorer.prepare_customer(r[2]) for r in known]  # before timing: a backend prepares once per session
    t = {"a": [], "a_state": [], "b": [], "c": [], "d": [], "e": [], "f": [], "f_prepared": []}
    pc = time.perf_counter_ns
    n = len(reqs)
    for i in range(300):  # warm-up
        s, state, cust, ctx, now = reqs[i % n]
        scorer.decide_one(s, cust, ctx, now=now)
        naive.booster_path(s, cust, ctx, now)
    def run_a(s, state, cust, ctx, now, i):
        t0 = pc(); scorer.decide_one(s, cust, ctx, now=now); t["a"].append(pc() - t0)

    def run_a_state(s, state, cust, ctx, now, i):
        t0 = pc(); scorer.decide_one(state, cust, ctx, now=now); t["a_state"].append(pc() - t0)

    def run_c(s, state, cust, ctx, now, i):
        t0 = pc(); naive.booster_path(s, cust, ctx, now); t["c"].append(pc() - t0)

    def run_d(s, state, cust, ctx, now, i):
        row[:] = rows[i % n]
        t0 = pc()
        stack_p()
        t["d"].append(pc() - t0)

    def run_e(s, state, cust, ctx, now, i):
        s, state, cust, ctx, now = offers[i % len(offers)]
        d = scorer.decide_one(s, cust, ctx, now=now)
        t0 = pc(); d.reasons; t["e"].append(pc() - t0)

    def run_f(s, state, cust, ctx, now, i):
        s, state, cust, ctx, now = known[i % len(known)]
        t0 = pc(); scorer.decide_one(s, cust, ctx, now=now); t["f"].append(pc() - t0)

    def run_f_prepared(s, state, cust, ctx, now, i):
        s, state, _, ctx, now = known[i % len(known)]
        cust = prepared[i % len(known)]
        t0 = pc(); scorer.decide_one(s, cust, ctx, now=now); t["f_prepared"].append(pc() - t0)

    def run_b(s, state, cust, ctx, now, i):
        if i % 10 == 0:
            t0 = pc(); naive.sklearn_path(s, cust, ctx, now); t["b"].append(pc() - t0)

    paths = [run_a, run_a_state, run_b, run_c, run_d, run_e, run_f, run_f_prepared]
    order_rng = np.random.default_rng(0)
    gc.disable()
    try:
        for i in range(calls):
            req = reqs[i % n]
            # a fresh order every round: cache warmth and drift fall on every path alike
            for k in order_rng.permutation(len(paths)):
                paths[k](*req, i)
            if i % 2000 == 0:
                gc.collect()
    finally:
        gc.enable()
    return {k: pct(v) for k, v in t.items()}


def batch_throughput(scorer: Scorer, n_sessions: int) -> dict[str, float]:
    sim = simulate(n_sessions, seed=77)
    from nextchannel.features import features_many

    d = sim.decisions
    X = features_many(d[["session_id", "ts", "customer_id"]], events=sim.events, customers=sim.customers, contacts=sim.contacts)
    ms = scorer.model_set
    frame = pd.concat([d[["session_id", "ts"]], X[list(ms.feature_names)], context_frame(d, ms.policy.channels)], axis=1)
    M = np.column_stack([frame[list(ms.feature_names)].to_numpy(float),
                         frame[list(ms.value_model.context_features_)].to_numpy(float)])
    res = {"rows": len(frame)}
    quiet = Scorer(ms, n_reasons=0)
    two = Scorer(ms, n_jobs=2)

    def booster_predict(threads: int) -> list:
        return [b.predict(M, num_threads=threads) for b in ms.value_model.boosters_] + \
            [ms.offer_model.booster_.predict(M[:, : len(ms.feature_names)], num_threads=threads)]

    paths = [("decide_many", lambda: scorer.decide_many(frame)),
             ("decide_many without reasons", lambda: quiet.decide_many(frame)),
             ("decide_many, 2 threads", lambda: two.decide_many(frame)),
             ("Booster.predict (same models)", lambda: booster_predict(1)),
             ("Booster.predict (same models), 2 threads", lambda: booster_predict(2)),
             # the models alone: one C call on the whole stack against ModelStack's model-by-model batch
             ("stack, one call", lambda: scorer._c.stack.raw.predict_many(M)),
             ("stack, model by model", lambda: [fb.predict_many(np.ascontiguousarray(M[:, :fb.num_features]))
                                                for fb in scorer._c.stack.parts("raw")]),
             ("stack, groups of models", lambda: scorer._c.stack.predict_many(M))]
    ts: dict[str, list[float]] = {name: [] for name, _ in paths}
    for _ in range(5):  # interleaved rounds
        for name, fn in paths:
            t0 = time.perf_counter(); fn(); ts[name].append(time.perf_counter() - t0)
    for name, _ in paths:
        res[name] = len(frame) / statistics.median(ts[name])
    return res


def reasons_tight_loop(scorer: Scorer, reqs: list[tuple], calls: int = 5000) -> float:
    """p50 µs of reading an offer's reasons right after its decision, nothing in between (warm caches)."""
    offers = [r for r in reqs if scorer.decide_one(r[0], r[2], r[3], now=r[4]).offer] or reqs
    ts = []
    for i in range(calls):
        s, _, cust, ctx, now = offers[i % len(offers)]
        d = scorer.decide_one(s, cust, ctx, now=now)
        t0 = time.perf_counter_ns(); d.reasons; ts.append(time.perf_counter_ns() - t0)
    return float(np.percentile(ts, 50)) / 1000.0


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import nextchannel.scorer; print(time.perf_counter() - t)"
    xs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
          for _ in range(5)]
    return statistics.median(xs)


def memory(scorer: Scorer, reqs: list[tuple], calls: int) -> dict[str, float]:
    n = len(reqs)
    for i in range(2000):
        s, _, cust, ctx, now = reqs[i % n]
        scorer.decide_one(s, cust, ctx, now=now)
    gc.collect()
    before = rss_mb()
    for i in range(calls):
        s, _, cust, ctx, now = reqs[i % n]
        scorer.decide_one(s, cust, ctx, now=now)
    gc.collect()
    return {"rss_after_load_mb": before, "rss_after_calls_mb": rss_mb(), "calls": calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--memory-calls", type=int, default=1_000_000)
    ap.add_argument("--request-sessions", type=int, default=1500)
    ap.add_argument("--large", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t_start = time.perf_counter()
    machine = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "lightgbm": lgb.__version__, "numpy": np.__version__,
               "pandas": pd.__version__, "platform": platform.platform()}
    print("machine:", json.dumps(machine))
    t_import = import_time()
    scorer = Scorer.load()
    rss_loaded = rss_mb()
    reqs = requests(args.request_sessions, seed=2024)
    print(f"requests: {len(reqs):,} decision points of {args.request_sessions:,} simulated sessions (seed 2024)")
    bundles = {"default": scorer}
    if args.large:
        sim = simulate(20_000, seed=5)
        big = train(decisions=sim.decisions, events=sim.events, customers=sim.customers, contacts=sim.contacts,
                    config=TrainConfig(guard=False, n_estimators=100, value_n_estimators=300, value_num_leaves=31,
                                offer_n_estimators=150, offer_num_leaves=15))
        path = Path(tempfile.mkdtemp()) / "large"
        big.save(path)
        bundles["large"] = Scorer.load(path)
    results = {}
    for name, sc in bundles.items():
        ms = sc.model_set
        trees = sum(b.num_trees() for b in ms.value_model.boosters_) + ms.offer_model.booster_.num_trees()
        stacked = sc._c.stack.num_iterations * sc._c.stack.num_models
        print(f"\n== bundle {name}: {trees:,} trees ({len(ms.actions)} value models + offer model), one stacked model of "
              f"{stacked:,} trees (padded) evaluated in one call per decision; load average {os.getloadavg()[0]:.2f}")
        lat = latency(sc, reqs, args.calls)
        results[name] = {"trees": trees, "latency": lat}
        rows = [("(a) decide_one from a signals dict", "a"), ("(a') decide_one from a SessionState", "a_state"),
                ("(b) naive: sklearn predict on 1-row DataFrames", "b"), ("(c) naive: Booster.predict on 1-row arrays", "c"),
                ("(d) bare models: the stack through the C API fast path", "d"),
                ("(e) reading the lazy reasons of an offer", "e"),
                ("(f) decide_one, known customer from the dict", "f"),
                ("(f') decide_one, known customer prepared", "f_prepared")]
        print(f"{'path':<50} {'calls':>7} {'p50 µs':>9} {'p90 µs':>9} {'p99 µs':>9} {'p99.9 µs':>9}")
        for label, k in rows:
            q = lat[k]
            print(f"{label:<50} {q['n']:>7} {q['p50']:>9.1f} {q['p90']:>9.1f} {q['p99']:>9.1f} {q['p99.9']:>9.1f}")
        a, b, c, d = (lat[k]["p50"] for k in ("a", "b", "c", "d"))
        ratios = {"b/a": b / a, "c/a": c / a, "a/d": a / d}
        results[name]["ratios_p50"] = ratios
        results[name]["trees_stacked"] = stacked
        print(f"reading an offer's reasons: p50 {lat['e']['p50']:.1f} µs (goal <= ~30); a prepared profile saves "
              f"{lat['f']['p50'] - lat['f_prepared']['p50']:.1f} µs at p50 per known customer's request "
              f"({lat['f']['p50']:.1f} -> {lat['f_prepared']['p50']:.1f} µs)")
        results[name]["reasons_tight_loop_p50_us"] = tight = reasons_tight_loop(sc, reqs)
        print(f"reading an offer's reasons right after its decision, nothing in between: p50 {tight:.1f} µs")
        print(f"p50 ratios: (a) is {ratios['b/a']:.1f}x faster than (b) [goal >= 150], {ratios['c/a']:.1f}x faster than (c) "
              f"[goal >= 10]; (a) = {ratios['a/d']:.2f}x (d) [goal <= 1.5]; quiet-machine goals p50 <= 25 µs, "
              f"p99 <= 60 µs")
    if "large" in results:
        d_small, d_large = results["default"]["latency"]["d"]["p50"], results["large"]["latency"]["d"]["p50"]
        extra = results["large"]["trees_stacked"] - results["default"]["trees_stacked"]
        per_tree = (d_large - d_small) * 1000 / extra
        results["ns_per_extra_tree"] = per_tree
        print(f"\ncost per extra tree (bare stack, p50): {per_tree:.1f} ns ({extra:,} more stacked trees)")
    bt = batch_throughput(scorer, 4000)
    results["batch"] = bt
    ref = bt['Booster.predict (same models)']
    print(f"\ndecide_many (one thread): {bt['decide_many']:,.0f} rows/s ({bt['decide_many'] / ref:.2f}x) and without "
          f"reasons {bt['decide_many without reasons']:,.0f} rows/s ({bt['decide_many without reasons'] / ref:.2f}x) vs "
          f"Booster.predict of the same models on the same rows (one thread) {ref:,.0f} rows/s ({bt['rows']:,} rows) "
          f"[goal >= 1x]; load average {os.getloadavg()[0]:.2f}")
    ref2 = bt['Booster.predict (same models), 2 threads']
    print(f"with 2 threads (Scorer(n_jobs=2), Booster.predict(num_threads=2)): decide_many {bt['decide_many, 2 threads']:,.0f} "
          f"rows/s = {bt['decide_many, 2 threads'] / ref:.2f}x one-thread Booster.predict, "
          f"{bt['decide_many, 2 threads'] / ref2:.2f}x two-thread Booster.predict ({ref2:,.0f} rows/s)")
    groups = scorer._c.stack.group_bounds
    print(f"the models alone, {bt['rows']:,} rows: the stack in one call {bt['stack, one call']:,.0f} rows/s "
          f"({bt['stack, one call'] / ref:.2f}x), model by model {bt['stack, model by model']:,.0f} rows/s "
          f"({bt['stack, model by model'] / ref:.2f}x), in {len(groups)} groups of models {groups} "
          f"(ModelStack.predict_many) {bt['stack, groups of models']:,.0f} rows/s ({bt['stack, groups of models'] / ref:.2f}x)")
    mem = memory(scorer, reqs, args.memory_calls)
    mem["rss_after_import_and_load_mb"] = rss_loaded
    results["memory"] = mem
    results["import_s"] = t_import
    print(f"import nextchannel.scorer: {t_import * 1000:.0f} ms (median of 5 fresh processes)")
    print(f"resident memory: {rss_loaded:.0f} MB after loading; {mem['rss_after_load_mb']:.0f} MB before and "
          f"{mem['rss_after_calls_mb']:.0f} MB after {mem['calls']:,} decide_one calls")
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "scorer_latency.json.tmp"
    tmp.write_text(json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=1, default=float))
    tmp.replace(out / "scorer_latency.json")
    print(f"written {out / 'scorer_latency.json'}; the benchmark took {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()

"""Your own data, measured: the learned policy on per-decision features and a reward column, and the guard.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/eval_own_data.py
      [--train-sessions 10000] [--test-sessions 5000] [--seeds 5] [--timing-rows 100000] [--n-estimators 150]
      [--logging-policy uniform|rule_epsilon] [--out eval_own_data.json]

1. **Own logs from the simulator.** For each seed, simulate a world (logged by a uniformly random
   policy — a randomised campaign — or, with ``--logging-policy rule_epsilon``, by the trigger rule
   with 30% exploration), keep only what a team's own campaign log would hold — 20 aggregated per-decision
   columns (renamed as a team would name them, two of them text categories), the per-request
   channel context, the logged action, its propensity and the logged ``reward`` — no events, no
   funnel columns. Train with ``train(decisions, features=...)`` (default settings, guard on). On
   a fresh simulation (seed + 1000) compute exact values from the oracle columns ``ev_<action>``:
   the learned policy, the best constant action (the constant with the highest true value, taken
   where eligible), never offering, the full-information learner (the same features and tree budget
   trained on every action's true expected reward — which no real log has), and the oracle.
   Also with ``reward_model="pooled"``. **Guard false-fallback rate**: how often the guard fell
   back to a constant on these worlds, where personalisation pays (goal 0 of 5).
2. **A world where personalisation does not pay**: the same features and logged actions, with the
   reward replaced by ``f(x) + effect(action) + noise`` — a baseline that depends on the features,
   plus an effect per action that does not. **Guard false-keep rate**: how often the guard kept the
   learned policy (goal 0 of 5).
   **Shrinkage** toward the best constant: the learned policy leaves the constant only where its
   estimated gain over it exceeds a margin (in reward standard deviations); true value per margin.
3. **Speed**: time to train on ``--timing-rows`` decisions with 20 own features (guard on), and
   ``Scorer.decide_many`` rows/s on them.
4. **Online Shoppers** (the real data shipped in ``nextchannel.datasets``): the AUC of the offer
   model's need-for-help fallback (label: an engaged session — at least 10 product pages and 5
   minutes on them — that did not buy; 30% stratified hold-out, 150 trees) with and without the
   look-ahead ``PageValues``.

Prints tables and writes ``benchmarks/results/<--out>``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from nextchannel.errors import PersonalisationNotBetterWarning
from nextchannel.features import features_many
from nextchannel.policy import PolicyConfig, eligibility_frame
from nextchannel.schema import DEVICES, PAGE_TYPES
from nextchannel.scorer import Scorer
from nextchannel.simulation import SimConfig, simulate
from nextchannel.training import TrainConfig, context_frame, train

#: The 20 per-decision columns a team would have, under the names it would give them.
OWN_COLUMNS = {
    "dwell_current_s": "Time on page (s)", "session_duration_s": "Session length (s)",
    "idle_current_page_s": "Idle on page (s)", "idle_total_s": "Idle, total (s)", "back_navigations": "Back clicks",
    "revisits": "Pages revisited", "form_errors": "Form errors", "cart_removals": "Cart removals",
    "searches_no_result": "Searches: no result", "exit_intents": "Exit intents", "help_views": "Help pages seen",
    "pages_viewed": "Pages viewed", "funnel_stage": "Funnel stage", "cart_value": "Cart value (€)",
    "hour_of_day": "Hour", "is_known": "Logged in?", "prof_n_contacts": "Past contacts",
    "prof_days_since_last": "Days since last contact", "page_type": "Page type", "device": "Device",
}


def own_log(n_sessions: int, seed: int, cfg: SimConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(decisions without funnel columns, own features, true values ev_<action>) of a simulated world."""
    sim = simulate(n_sessions, seed=seed, config=cfg)
    d = sim.decisions
    f = features_many(d[["session_id", "ts", "customer_id"]], events=sim.events, customers=sim.customers, contacts=sim.contacts)
    own = f[list(OWN_COLUMNS)].rename(columns=OWN_COLUMNS)
    own["Page type"] = [PAGE_TYPES[int(v)] if v == v and v >= 0 else None for v in own["Page type"]]
    own["Device"] = [DEVICES[int(v)] if v == v and v >= 0 else None for v in own["Device"]]
    own["Logged in?"] = own["Logged in?"] > 0
    ctx = [c for c in d.columns if c.startswith(("open_", "wait_", "lang_ok_"))]
    log = d[["action", "propensity", "reward", *ctx]].copy()
    ev = d[[c for c in d.columns if c.startswith("ev_")]]
    return log.set_axis(own.index), own, ev.set_axis(own.index)


#: Shrinkage margins tried (in reward standard deviations).
SHRINK_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def _true_value(actions: np.ndarray, ev: np.ndarray) -> float:
    return float(ev[np.arange(len(ev)), actions].mean())


def _open(log: pd.DataFrame, pol: PolicyConfig) -> np.ndarray:
    """The actions the policy may take per decision (open, wait under the limit, language served): the
    same rule for every policy compared, as the scorer applies it to an own-data bundle."""
    return eligibility_frame(pol, pd.DataFrame(index=log.index), context_frame(log, pol.channels))


def full_information(X: pd.DataFrame, ev: pd.DataFrame, Xt: pd.DataFrame, pol: PolicyConfig, trees: int) -> np.ndarray:
    """Every action's true expected reward learned from the same features (no real log has these)."""
    M, Mt = (pd.get_dummies(x, columns=["Page type", "Device"], dtype=float).astype(float) for x in (X, Xt))
    Mt = Mt.reindex(columns=M.columns, fill_value=0.0)
    params = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.05, "min_data_in_leaf": 40,
              "verbose": -1, "num_threads": 1, "seed": 0}
    return np.column_stack([lgb.train(params, lgb.Dataset(M.to_numpy(), ev[f"ev_{a}"].to_numpy()),
                                      num_boost_round=trees).predict(Mt.to_numpy())
                            for a in pol.actions])


def one_seed(seed: int, args: argparse.Namespace, cfg: SimConfig, tcfg: TrainConfig) -> dict:
    pol = PolicyConfig.from_sim(cfg)
    log, X, ev = own_log(args.train_sessions, seed, cfg)
    tlog, Xt, evt = own_log(args.test_sessions, seed + 1000, cfg)
    E = evt[[f"ev_{a}" for a in pol.actions]].to_numpy()
    open_t = _open(tlog, pol)
    out: dict = {"seed": seed, "train_rows": len(log), "test_rows": len(tlog)}
    for name, rm in (("per_action", "per_action"), ("pooled", "pooled")):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PersonalisationNotBetterWarning)
            ms = train(log, features=X, policy=pol, config=TrainConfig(**{**tcfg.to_dict(), "reward_model": rm}))
        g = ms.evaluation["guard"]
        a = pd.Index(pol.actions).get_indexer(Scorer(ms, n_reasons=0).decide_many(tlog, features=Xt)["action"])
        # the learned policy itself, even where the guard fell back (what personalisation would have given)
        learned = Scorer(ms.__class__(ms.channel_model, ms.value_model, ms.offer_model, ms.policy, ms.profile_config,
                                      feature_spec=ms.feature_spec), n_reasons=0).decide_many(tlog, features=Xt)
        a_learned = pd.Index(pol.actions).get_indexer(learned["action"])
        # shrinkage toward the guard's best constant c: leave c only where the learned gain over it
        # exceeds delta (in units of the reward's standard deviation); delta 0 is the learned policy
        evt_hat = ms.expected_values(ms.feature_spec.transform(Xt), context_frame(tlog, pol.channels))
        c = pol.actions.index(g["best_constant"])
        sd = float(log["reward"].std())
        base_a = np.where(open_t[:, c], c, 0)
        gain = np.where(open_t, evt_hat, -np.inf).max(axis=1) - evt_hat[np.arange(len(evt_hat)), base_a]
        a_star = np.argmax(np.where(open_t, evt_hat, -np.inf), axis=1)
        shrink = {f"{dl:g}": _true_value(np.where(gain > dl * sd, a_star, base_a), E) for dl in SHRINK_GRID}
        out[name] = {"train_s": round(time.perf_counter() - t0, 1), "fell_back": ms.constant_action is not None,
                     "shrinkage_true_values": shrink,
                     "warned": any(issubclass(w.category, PersonalisationNotBetterWarning) for w in caught),
                     "bundle_value": _true_value(a, E), "learned_value": _true_value(a_learned, E),
                     "guard_verdict": g["verdict"], "guard_best_constant": g["best_constant"],
                     "guard_difference": g["learned_minus_best_constant"]}
    const_values = {act: _true_value(np.where(open_t[:, j], j, 0), E) for j, act in enumerate(pol.actions)}
    best_const = max(const_values, key=const_values.get)
    fi = full_information(X, ev, Xt, pol, tcfg.n_estimators)
    a_fi = np.argmax(np.where(open_t, fi, -np.inf), axis=1)
    out.update(never=const_values["none"], best_constant=const_values[best_const], best_constant_action=best_const,
               full_information=_true_value(a_fi, E), oracle=float(np.where(open_t, E, -np.inf).max(axis=1).mean()))
    # 2. the same logs where actions' effects do not depend on the features
    rng = np.random.default_rng(seed)
    effect = {act: float(np.mean(ev[f"ev_{act}"]) - np.mean(ev["ev_none"])) for act in pol.actions}
    base = ev["ev_none"].to_numpy()
    flat = log.assign(reward=base + log["action"].map(effect).to_numpy() + rng.normal(0, log["reward"].std(), len(log)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PersonalisationNotBetterWarning)
        ms_flat = train(flat, features=X, policy=pol, config=tcfg)
    out["constant_world"] = {"fell_back": ms_flat.constant_action is not None,
                             "constant": ms_flat.constant_action,
                             "true_best_constant": max(effect, key=effect.get),
                             "guard_verdict": ms_flat.evaluation["guard"]["verdict"],
                             "guard_difference": ms_flat.evaluation["guard"]["learned_minus_best_constant"]}
    return out


def timing(rows: int, tcfg: TrainConfig) -> dict:
    """Train on ``rows`` synthetic decisions with 20 own features (16 numeric, 2 text, 1 bool, 1 categorical)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"metric {i}": rng.normal(size=rows) for i in range(16)})
    X["region"] = rng.choice(["north", "south", "east", "west", None], rows)
    X["plan"] = rng.choice(["basic", "plus", "pro"], rows)
    X["newsletter?"] = rng.random(rows) < 0.3
    X["segment"] = pd.Categorical(rng.choice(list("ABCDEFGH"), rows))
    chans = ["E-Mail", "SMS", "Call"]
    action = rng.choice(["none", *chans], rows)
    gain = {"E-Mail": X["metric 0"] > 0, "SMS": X["plan"] == "pro", "Call": X["newsletter?"]}
    r = sum(np.where(action == c, np.where(g, 1.0, -0.5), 0.0) for c, g in gain.items()) + rng.normal(0, 1, rows)
    d = pd.DataFrame({"action": action, "propensity": 0.25, "reward": r})
    t0 = time.perf_counter()
    ms = train(d, features=X, policy=PolicyConfig(channels=chans), config=tcfg)
    train_s = time.perf_counter() - t0
    sc = Scorer(ms)
    sc.decide_many(X.head(1000))
    t0 = time.perf_counter()
    out = sc.decide_many(X)
    many_s = time.perf_counter() - t0
    sc0 = Scorer(ms, n_reasons=0)
    t0 = time.perf_counter()
    sc0.decide_many(X)
    many0_s = time.perf_counter() - t0
    one = [{k: X[k].iat[i] for k in X.columns} for i in range(2000)]
    t0 = time.perf_counter()
    for r_ in one:
        sc.decide_one(r_)
    one_us = (time.perf_counter() - t0) / len(one) * 1e6
    return {"rows": rows, "features": X.shape[1], "train_s": round(train_s, 1),
            "decide_many_rows_per_s": round(rows / many_s), "decide_many_no_reasons_rows_per_s": round(rows / many0_s),
            "decide_one_mean_us": round(one_us, 1), "offer_rate": float(out["offer"].mean()),
            "guard_verdict": ms.evaluation["guard"]["verdict"]}


def online_shoppers(trees: int = 150) -> dict:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from nextchannel.datasets import load_online_shoppers
    from nextchannel.featurespec import FeatureSpec
    from nextchannel.models import OfferModel

    raw = load_online_shoppers()
    engaged = raw[(raw["ProductRelated"] >= 10) & (raw["ProductRelated_Duration"] >= 300)].reset_index(drop=True)
    y = (~engaged["Revenue"]).to_numpy()
    tr, te = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=0)
    out = {"sessions": int(len(y)), "label_rate": float(y.mean())}
    for name, drop in (("with_PageValues", ["Revenue"]), ("without_PageValues", ["Revenue", "PageValues"])):
        spec = FeatureSpec.fit(engaged.drop(columns=drop))
        X = spec.transform(engaged.drop(columns=drop))
        m = OfferModel(n_estimators=trees, categorical_features=spec.categorical_internal)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NoRandomisationWarning: expected, there are no offers
            m.fit(X.iloc[tr], np.full(len(tr), "none"), np.zeros(len(tr)), np.ones(len(tr)), need=y[tr])
        out[name] = round(float(roc_auc_score(y[te], m.predict(X.iloc[te]))), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-sessions", type=int, default=10_000)
    ap.add_argument("--test-sessions", type=int, default=5_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--timing-rows", type=int, default=100_000)
    ap.add_argument("--n-estimators", type=int, default=150)
    ap.add_argument("--logging-policy", default="uniform", choices=["uniform", "rule_epsilon"],
                    help="the simulator's logging policy: uniform (a randomised campaign) or rule_epsilon")
    ap.add_argument("--out", default="eval_own_data.json", help="file name under benchmarks/results/")
    args = ap.parse_args()
    cfg = SimConfig(logging_policy=args.logging_policy)
    tcfg = TrainConfig(n_estimators=args.n_estimators)
    runs = []
    for seed in range(1, args.seeds + 1):
        r = one_seed(seed, args, cfg, tcfg)
        runs.append(r)
        norm = lambda v: (v - r["never"]) / (r["oracle"] - r["never"])  # noqa: E731
        print(f"seed {seed}: {r['train_rows']:,} train / {r['test_rows']:,} test decisions | true value per decision "
              f"(normalised: never 0, oracle 1)")
        for k in ("never", "best_constant", "full_information", "oracle"):
            label = f"always {r['best_constant_action']!r}" if k == "best_constant" else k
            print(f"  {label:<26} {r[k]:8.4f}  {norm(r[k]):6.3f}")
        for k in ("per_action", "pooled"):
            v = r[k]
            print(f"  learned ({k:<10})      {v['learned_value']:8.4f}  {norm(v['learned_value']):6.3f}   bundle "
                  f"{v['bundle_value']:.4f}, guard: {v['guard_verdict']} vs {v['guard_best_constant']!r} "
                  f"(diff {v['guard_difference']['difference']:+.4f} [{v['guard_difference']['low']:+.4f}, "
                  f"{v['guard_difference']['high']:+.4f}]){' -> FELL BACK' if v['fell_back'] else ''}, "
                  f"train {v['train_s']} s")
            print("    shrinkage toward the best constant, true value by margin (reward sd): "
                  + ", ".join(f"{k}: {x:.4f}" for k, x in v["shrinkage_true_values"].items()))
        c = r["constant_world"]
        print(f"  constant-effect world: guard {c['guard_verdict']} (diff {c['guard_difference']['difference']:+.4f} "
              f"[{c['guard_difference']['low']:+.4f}, {c['guard_difference']['high']:+.4f}]) -> "
              f"{'fell back to ' + repr(c['constant']) if c['fell_back'] else 'KEPT the learned policy'} "
              f"(true best constant {c['true_best_constant']!r})", flush=True)
    # a fallback is wrong only where the learned policy's true value beat the best constant's
    summary = {
        "fell_back_per_action": sum(r["per_action"]["fell_back"] for r in runs),
        "fell_back_pooled": sum(r["pooled"]["fell_back"] for r in runs),
        "false_fallback_per_action": sum(r["per_action"]["fell_back"] and r["per_action"]["learned_value"]
                                         > r["best_constant"] for r in runs),
        "false_fallback_pooled": sum(r["pooled"]["fell_back"] and r["pooled"]["learned_value"] > r["best_constant"]
                                     for r in runs),
        "false_keep": sum(not r["constant_world"]["fell_back"] for r in runs), "seeds": len(runs),
    }
    for k in ("per_action", "pooled"):
        summary[f"mean_normalised_{k}"] = float(np.mean([(r[k]["learned_value"] - r["never"]) / (r["oracle"] - r["never"])
                                                         for r in runs]))
    for k in ("best_constant", "full_information"):
        summary[f"mean_normalised_{k}"] = float(np.mean([(r[k] - r["never"]) / (r["oracle"] - r["never"]) for r in runs]))
    print(f"\nguard on the simulator's own-data worlds: fell back {summary['fell_back_per_action']} of {len(runs)} "
          f"(per-action) / {summary['fell_back_pooled']} of {len(runs)} (pooled); wrongly (the learned policy was truly "
          f"better than the best constant) {summary['false_fallback_per_action']} / {summary['false_fallback_pooled']}; "
          f"on the constant-effect worlds it wrongly kept the learned policy {summary['false_keep']} of {len(runs)}")
    print("mean normalised value: " + ", ".join(f"{k[16:]} {v:.3f}" for k, v in summary.items() if k.startswith("mean_")))
    for k in ("per_action", "pooled"):
        summary[f"shrinkage_mean_gain_over_learned_{k}"] = {
            dl: float(np.mean([r[k]["shrinkage_true_values"][dl] - r[k]["learned_value"] for r in runs]))
            for dl in runs[0][k]["shrinkage_true_values"]}
        print(f"shrinkage ({k}): mean true-value change vs the learned policy by margin: "
              + ", ".join(f"{dl}: {v:+.4f}" for dl, v in summary[f"shrinkage_mean_gain_over_learned_{k}"].items()))
    t = timing(args.timing_rows, tcfg)
    print(f"\nspeed: train on {t['rows']:,} decisions x {t['features']} own features (guard on): {t['train_s']} s; "
          f"decide_many {t['decide_many_rows_per_s']:,} rows/s with reasons, {t['decide_many_no_reasons_rows_per_s']:,} "
          f"without; decide_one {t['decide_one_mean_us']} µs mean")
    shop = online_shoppers()
    print(f"Online Shoppers ({shop['sessions']:,} engaged sessions, label rate {shop['label_rate']:.3f}): need-for-help "
          f"AUC {shop['with_PageValues']:.4f} with PageValues (look-ahead), {shop['without_PageValues']:.4f} without")
    res = {"runs": runs, "summary": summary, "timing": t, "online_shoppers": shop, "args": vars(args),
           "machine": {"python": platform.python_version(), "lightgbm": lgb.__version__}}
    out = Path(__file__).resolve().parent / "results" / args.out
    out.write_text(json.dumps(res, indent=1, default=float))
    print(f"written {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()

"""Evaluate the learned policy against baselines, the full-information learner and the oracle.

Run:  .venv/bin/python benchmarks/eval_policy.py [--train-sessions 120000] [--test-sessions 20000]
                                                   [--worlds default,phone_costly,long_queues,mobile_heavy]

For each world: simulate training logs (seed 1, logged by the simulator's exploring logging
policy), train with :func:`nextchannel.training.train` on the logged, partial feedback only; then on a
fresh simulation with seeds never used in training (1001, 1002) compute every policy's exact value
from the oracle columns ``ev_<action>``:

    normalised value(π) = (V(π) − V(never offer)) / (V(reference) − V(never offer))

with two references: the **oracle** (best action knowing the latent state, among open channels)
and the **full-information learner** — the same features and the same tree budget, trained on
every action's true expected reward (which no real log has), choosing the best eligible action
under the same policy rules, deployed through the same :class:`Scorer` machinery (its value model
is fitted to the true values instead of distilled from the funnel). Baselines: never offer, always offer chat (when eligible), a trigger
rule ("offer chat after 30 s idle on cart or checkout"), and the logging policy. Also: offers to
visitors who needed no help (share of all decision points), and the expected calibration error of
the acceptance probabilities on the test logs' logged offers.

**Closed loop** (beside the one-step figures): each policy deciding live in fresh simulated sessions
(seeds 2001, 2002; ``--closed-loop-sessions`` each), the consequences of its offers played out;
realised value per session (mean reward summed over the session) with a 95% interval across
sessions, offers per session, the share of offers that went to visitors who needed none, and the
normalised value (V − V(never)) / (V(full-information) − V(never)) with its 95% interval.

Prints a table per world and writes ``benchmarks/results/eval_policy.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nextchannel.diagnostics import expected_calibration_error
from nextchannel.features import PAGE_TYPES, features_many
from nextchannel.policy import PolicyConfig, eligibility
from nextchannel.schema import DEVICES, LANGUAGES
from nextchannel.scorer import Scorer
from nextchannel.simulation import SimConfig, simulate
from nextchannel.training import TrainConfig, context_frame, train

from closed_loop_common import closed_loop_table, deployable, full_information_model_set

TEST_SEEDS = (1001, 1002)
CLOSED_LOOP_SEEDS = (2001, 2002)


def _eligible(pol: PolicyConfig, X: pd.DataFrame, C: pd.DataFrame) -> np.ndarray:
    """The policy's eligibility per row (same rules for every policy compared)."""
    names = pol.channels.names
    out = np.zeros((len(X), len(pol.actions)), dtype=bool)
    Xv = {c: X[c].to_numpy() for c in ("device", "language", "offers_shown", "time_since_dismiss_s",
                                       "contacts_started")}
    for i in range(len(X)):
        dev = int(Xv["device"][i]) if Xv["device"][i] == Xv["device"][i] else -1
        lang = int(Xv["language"][i]) if Xv["language"][i] == Xv["language"][i] else -1
        ok, _ = eligibility(pol, device=DEVICES[dev] if dev >= 0 else None,
                            language=LANGUAGES[lang] if lang >= 0 else None,
                            offers_shown=Xv["offers_shown"][i], time_since_dismiss_s=Xv["time_since_dismiss_s"][i],
                            contacts_started=Xv["contacts_started"][i],
                            open_=[C[f"open_{c}"].iat[i] > 0 for c in names], wait_s=[C[f"wait_{c}_s"].iat[i] for c in names],
                            lang_ok=[C[f"lang_ok_{c}"].iat[i] > 0 for c in names],
                            opted_out=[X[f"prof_optout_{c}"].iat[i] >= 1 for c in names])
        out[i] = ok
    return out


def run_world(name: str, n_train: int, n_test: int, tcfg: TrainConfig, n_closed: int, offer_margin: float = 0.0) -> dict:
    cfg = SimConfig() if name == "default" else SimConfig.shifted(name)
    pol = dataclasses.replace(PolicyConfig.from_sim(cfg), offer_margin=offer_margin)
    actions = pol.actions
    t0 = time.perf_counter()
    tr = simulate(n_train, seed=1, config=cfg)
    ms = train(decisions=tr.decisions, events=tr.events, customers=tr.customers, contacts=tr.contacts, config=tcfg,
               policy=pol)
    t_train = time.perf_counter() - t0
    scorer = deployable(ms)

    # the full-information learner: same features (+ channel context), same tree budget, same scorer
    fi_ms = full_information_model_set(ms, tr, n_estimators=tcfg.n_estimators, num_leaves=tcfg.num_leaves,
                                       learning_rate=tcfg.learning_rate, min_child_samples=tcfg.min_child_samples,
                                       policy=PolicyConfig.from_sim(cfg))   # margin 0, whatever the learned policy's
    fi_scorer = deployable(fi_ms)

    rows = []
    for seed in TEST_SEEDS:
        te = simulate(n_test, seed=seed, config=cfg)
        d = te.decisions
        ev_true = d[[f"ev_{a}" for a in actions]].to_numpy()
        X = features_many(d[["session_id", "ts", "customer_id"]], events=te.events, customers=te.customers, contacts=te.contacts)[list(ms.feature_names)]
        C = context_frame(d, pol.channels)
        elig = _eligible(pol, X, C)
        open_ = np.column_stack([np.ones(len(d), bool)] + [C[f"open_{c}"].to_numpy() > 0 for c in pol.channels.names])
        learned = scorer.decide_many(d, events=te.events, customers=te.customers, contacts=te.contacts)
        a_learned = pd.Index(actions).get_indexer(learned["action"])
        a_fi = pd.Index(actions).get_indexer(fi_scorer.decide_many(d, events=te.events, customers=te.customers, contacts=te.contacts)["action"])
        chat = actions.index("chat")
        a_chat = np.where(elig[:, chat], chat, 0)
        on_cart = X["page_type"].isin([PAGE_TYPES.index("cart"), PAGE_TYPES.index("checkout")]).to_numpy()
        a_rule = np.where(on_cart & (X["idle_current_page_s"].to_numpy() >= 30) & elig[:, chat], chat, 0)
        a_oracle = np.where(open_, ev_true, -np.inf).argmax(1)
        logged = pd.Index(actions).get_indexer(d["action"])
        idx = np.arange(len(d))
        no_need = ~d["needs_help"].to_numpy(dtype=bool)
        pols = {"never offer": np.zeros(len(d), int), "always chat": a_chat, "trigger rule": a_rule,
                "logging policy": logged, "learned": a_learned, "full-information": a_fi, "oracle": a_oracle}
        for pname, a in pols.items():
            rows.append({"seed": seed, "policy": pname, "value": ev_true[idx, a].mean(), "offer_rate": (a > 0).mean(),
                         "offers_no_need": ((a > 0) & no_need).mean()})
        # calibration of acceptance on the logged offers of the test logs
        P = ms.outcome_probabilities(X, C)
        offered = logged > 0
        p_acc = P["accept"][idx, logged][offered]
        ece = expected_calibration_error(d["accepted"].to_numpy(dtype=float)[offered], p_acc, n_bins=10)
        rows.append({"seed": seed, "policy": "_ece", "value": ece, "offer_rate": np.nan, "offers_no_need": np.nan})
    df = pd.DataFrame(rows)
    ece = df.loc[df.policy == "_ece", "value"].mean()
    tab = df[df.policy != "_ece"].groupby("policy", sort=False)[["value", "offer_rate", "offers_no_need"]].mean()
    v0, vo, vf = tab.loc["never offer", "value"], tab.loc["oracle", "value"], tab.loc["full-information", "value"]
    tab["norm_vs_oracle"] = (tab["value"] - v0) / (vo - v0)
    tab["norm_vs_full_info"] = (tab["value"] - v0) / (vf - v0)
    closed = None
    if n_closed:
        closed = closed_loop_table({"never offer": "never", "trigger rule": "rule", "logging policy": "logging",
                                    "learned": scorer, "full-information": fi_scorer, "oracle": "oracle"},
                                   cfg, n_closed, CLOSED_LOOP_SEEDS)
    guard = ms.evaluation.get("guard")
    return {"world": name, "table": tab, "closed_loop": closed, "ece_accept": float(ece),
            "guard": None if guard is None else {"keeps_learned": guard["keeps_learned"], "rule": tcfg.guard_rule,
                                                 "shipped": "learned" if ms.constant_action is None else f"always {ms.constant_action}",
                                                 **guard["learned_minus_best_constant"]},
            "train_rows": int(ms.meta["rows"]), "train_sessions": n_train,
            "test_rows": int(len(df) and len(d)) * len(TEST_SEEDS), "train_s": t_train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-sessions", type=int, default=120_000)
    ap.add_argument("--test-sessions", type=int, default=20_000)
    ap.add_argument("--worlds", default="default,phone_costly,long_queues,mobile_heavy")
    ap.add_argument("--n-estimators", type=int, default=TrainConfig.n_estimators)
    ap.add_argument("--num-leaves", type=int, default=TrainConfig.num_leaves)
    ap.add_argument("--closed-loop-sessions", type=int, default=20_000,
                    help="sessions per closed-loop seed (0: one-step figures only)")
    ap.add_argument("--offer-margin", type=float, default=0.0,
                    help="PolicyConfig.offer_margin given to train (0.25 is what the README recommends; default 0)")
    ap.add_argument("--guard", choices=("off", "on", "warn"), default="off",
                    help="train()'s guard: off (the default here, as before), on (what train() does by default: "
                         "a learned policy the guard refuses ships as the best constant), warn")
    ap.add_argument("--out", default="benchmarks/results/eval_policy.json")
    args = ap.parse_args()
    guard = {"off": False, "on": True, "warn": "warn"}[args.guard]
    tcfg = TrainConfig(guard=guard, n_estimators=args.n_estimators, num_leaves=args.num_leaves)
    print(f"offer margin {args.offer_margin:g}, guard {args.guard}")
    print(f"machine: {platform.machine()}, python {platform.python_version()}; train config {tcfg.to_json()}")
    results = []
    for w in args.worlds.split(","):
        r = run_world(w, args.train_sessions, args.test_sessions, tcfg, args.closed_loop_sessions, args.offer_margin)
        results.append(r)
        if r["guard"] is not None:
            g = r["guard"]
            print(f"   guard ({g['rule']}): learned - best constant {g['difference']:+.4f} [{g['low']:+.4f}, "
                  f"{g['high']:+.4f}] per decision; ships {g['shipped']}")
        print(f"\n== world: {w} — trained on {r['train_rows']:,} logged decisions ({r['train_sessions']:,} sessions) "
              f"in {r['train_s']:.0f} s; tested on seeds {TEST_SEEDS} ({r['test_rows']:,} decision points)")
        print(r["table"].round(4).to_string())
        t = r["table"]
        print(f"   learned/full-information = {t.loc['learned', 'norm_vs_full_info']:.3f} "
              f"(goal >= {0.90 if w == 'default' else 0.85}); full-information/oracle = "
              f"{t.loc['full-information', 'norm_vs_oracle']:.3f}; learned/oracle = {t.loc['learned', 'norm_vs_oracle']:.3f}")
        print(f"   offers to visitors with no need: learned {t.loc['learned', 'offers_no_need']:.4f} vs trigger rule "
              f"{t.loc['trigger rule', 'offers_no_need']:.4f} of decision points; ECE of acceptance = {r['ece_accept']:.4f}")
        cl = r["closed_loop"]
        if cl is not None:
            print(f"-- closed loop: each policy deciding live, {args.closed_loop_sessions:,} sessions x seeds "
                  f"{CLOSED_LOOP_SEEDS}; value = realised reward per session, 95% interval across sessions")
            cols = ["value", "ci_low", "ci_high", "norm_vs_full_info", "norm_ci_low", "norm_ci_high",
                    "offers_per_session", "needless_offer_share", "solved_rate", "left_annoyed_rate"]
            print(cl[cols].round(4).to_string())
            print(f"   closed-loop learned/full-information = {cl.loc['learned', 'norm_vs_full_info']:.3f} "
                  f"[{cl.loc['learned', 'norm_ci_low']:.3f}, {cl.loc['learned', 'norm_ci_high']:.3f}]; "
                  f"needless offer share learned {cl.loc['learned', 'needless_offer_share']:.3f} vs trigger rule "
                  f"{cl.loc['trigger rule', 'needless_offer_share']:.3f} "
                  f"(ratio {cl.loc['learned', 'needless_offer_share'] / cl.loc['trigger rule', 'needless_offer_share']:.2f}, goal <= 0.5)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = [{**{k: v for k, v in r.items() if k not in ("table", "closed_loop")},
                "table": r["table"].reset_index().to_dict("records"),
                "closed_loop": None if r["closed_loop"] is None else r["closed_loop"].reset_index().to_dict("records")}
               for r in results]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"train_config": tcfg.to_dict(), "offer_margin": args.offer_margin, "results": payload},
                              indent=1, default=float))
    tmp.replace(out)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()

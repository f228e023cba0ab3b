"""Learning curve: how much of the full-information learner's gain the learned policy reaches, by log size.

Run:  flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/learning_curve.py \\
          [--sizes 10000,20000,60000,120000] [--world default] [--variant NAME:key=value,key=value ...]

For each size n: simulate n logged sessions (seed 1, the world's exploring logging policy), train
each variant with the public ``train`` (default ``TrainConfig()`` plus its overrides; ``offer_margin``
goes to the ``PolicyConfig`` given to ``train``, so the guard tests it) on the logged, partial
feedback only, and fit the full-information learner on the *same* sessions (same features, every
action's true value, deployed through the same Scorer with margin 0). Then, on fresh seeds:

* one-step: both policies' exact value (``ev`` of the chosen action) at the decision points of
  ``--test-sessions`` sessions logged by the logging policy (seed 1001);
  (``--log-epsilon`` changes the exploration share of the *training* logs only)
* closed loop: each policy deciding live in the same ``--closed-loop-sessions`` sessions (seed
  2001: every policy meets the same visitors), value = expected reward summed over each session;

and normalised = (V − V(never)) / (V(full-information) − V(never)), its closed-loop interval paired
by visitor. With ``guard=warn`` the guard's verdict is recorded (``guard_verdict``; "better" or the
constant the bundle would have fallen back to) while the learned policy is measured. Prints one row
per size and variant and appends them to ``benchmarks/results/learning_curve.jsonl``.

The guard study (which rule of ``TrainConfig.guard_rule`` to trust): train with ``guard=warn`` — the
guard's figures then hold every rule's decision on the same cross-fitted estimates
(``guard_keeps``) while the learned policy is measured — over several training logs
(``--log-seeds 1,2,3``); what ``train`` ships under a rule is the learned policy where the rule keeps
it and the constant otherwise (``shipped_<rule>`` rows of the summary, closed-loop value normalised).
Two benchmark-only variant keys make learners that are truly worse, to measure protection:
``offer_margin=-10`` (offer everywhere) and ``shuffle_outcomes=true`` (the logged funnel outcomes
permuted within each logged action: the features say nothing); ``closed_loop=false`` skips a
variant's closed-loop run (its one-step true value is still measured).

The optimizer's-curse test (every row; ``--curse`` prints them from ``--out``): the learned policy
offers where its *estimated* gain over "none" (value model: best channel EV − none EV) beats the
margin; with noisy EVs and a maximum over the channels that estimate is biased upward where it
offers. At the fresh decision points of the one-step test the row records the offer rate, the share
of offers to visitors who needed no help (the simulator's ``needs_help``), and the mean of
(estimated − true gain) where the policy offers (``gain_bias_offered``; true gain from the
simulator's ``ev_<action>``) beside the same over every point and channel (``gain_bias_all``), per
channel (``by_channel``), split by need (``gain_bias_offered_needless`` / ``_needed``) and by
where in the session (``by_segment``: the point's trigger, first/second/later point). Variants may
set ``pessimism=K`` (``TrainConfig.pessimism``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from nextchannel import PolicyConfig, TrainConfig, simulate, train
from nextchannel.features import features_many
from nextchannel.policy import eligibility_frame, greedy_many
from nextchannel.training import GUARD_RULES, context_frame

from closed_loop_common import (Z95, append_rows, closed_loop_table, deployable, full_information_model_set,
                                 parse_variant, world_config)


def one_step_actions(scorer, te) -> np.ndarray:
    """The scorer's action (column of ``scorer.actions``) at every logged decision point of ``te``."""
    d = te.decisions
    return pd.Index(scorer.actions).get_indexer(scorer.decide_many(d, events=te.events, customers=te.customers,
                                                                   contacts=te.contacts)["action"])


def one_step_value(scorer, te, acts: np.ndarray | None = None) -> float:
    d = te.decisions
    acts = one_step_actions(scorer, te) if acts is None else acts
    ev = d[[f"ev_{a}" for a in scorer.actions]].to_numpy()
    return float(ev[np.arange(len(d)), acts].mean())


def model_inputs(ms, te) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model set's features and channel context at the decision points of ``te``."""
    d = te.decisions
    X = features_many(d[["session_id", "ts", "customer_id"]], events=te.events, customers=te.customers, contacts=te.contacts, profile_config=ms.profile_config)[list(ms.feature_names)]
    return X, context_frame(d, ms.policy.channels)


def one_step_channel_model(ms, te, X: pd.DataFrame | None = None, C: pd.DataFrame | None = None) -> float:
    """The greedy policy on the channel model's own EVs (before distillation into the value model)."""
    d = te.decisions
    if X is None or C is None:
        X, C = model_inputs(ms, te)
    a = greedy_many(ms.policy, ms.channel_expected_values(X, C), eligibility_frame(ms.policy, X, C))
    ev = d[[f"ev_{x}" for x in ms.actions]].to_numpy()
    return float(ev[np.arange(len(d)), a].mean())


def gain_bias(ms, te, acts: np.ndarray, X: pd.DataFrame, C: pd.DataFrame) -> dict:
    """The optimizer's-curse test at fresh decision points: estimated against true gain over "none".

    ``acts`` are the scorer's actions; the estimated gain of a channel is its value-model EV (what the
    scorer decides with) minus that of "none", the true gain the simulator's ``ev_<channel>`` −
    ``ev_none``. Returns, over the decision points where the learned policy offers: the mean of
    (estimated − true) gain (``gain_bias_offered``), the mean estimated and true gains, the offer
    rate, the share of offers to visitors who needed no help (``needs_help`` false); the same bias
    over *every* decision point and channel (``gain_bias_all``: a bias the selection did not make);
    and per channel its offer share, bias where offered and needless share.
    """
    d = te.decisions
    est = ms.expected_values(X, C)
    true = d[[f"ev_{a}" for a in ms.actions]].to_numpy(dtype=float)
    est_gain, true_gain = est[:, 1:] - est[:, :1], true[:, 1:] - true[:, :1]
    offered = acts > 0
    idx = np.flatnonzero(offered)
    e, t = est_gain[idx, acts[idx] - 1], true_gain[idx, acts[idx] - 1]
    needless = ~d["needs_help"].to_numpy(dtype=bool)
    out = {"offer_rate_fresh": float(offered.mean()),
           "needless_share_fresh": float(needless[offered].mean()) if offered.any() else float("nan"),
           "est_gain_offered": float(e.mean()) if len(idx) else float("nan"),
           "true_gain_offered": float(t.mean()) if len(idx) else float("nan"),
           "gain_bias_offered": float((e - t).mean()) if len(idx) else float("nan"),
           "gain_bias_all": float((est_gain - true_gain).mean()), "by_channel": {}, "by_segment": {}}
    for who, m in (("needless", needless[offered]), ("needed", ~needless[offered])):
        out[f"gain_bias_offered_{who}"] = float((e - t)[m].mean()) if m.any() else float("nan")
    # where in the session: the decision point's trigger and its position among the session's points
    pos = d.groupby("session_id", sort=False).cumcount().to_numpy()
    segment = d["trigger"].astype(str).to_numpy() + np.where(pos == 0, "/first", np.where(pos == 1, "/second", "/later"))
    for seg in sorted(set(segment)):
        m = segment == seg
        mo = m & offered
        out["by_segment"][seg] = {
            "points": float(m.mean()), "offer_rate": float(mo.sum() / m.sum()),
            "needless_share": float(needless[mo].mean()) if mo.any() else float("nan"),
            "gain_bias": float((e - t)[m[idx]].mean()) if mo.any() else float("nan"),
            "true_gain": float(t[m[idx]].mean()) if mo.any() else float("nan")}
    for j, ch in enumerate(ms.actions[1:], start=1):
        m = acts == j
        out["by_channel"][ch] = {
            "offer_rate": float(m.mean()),
            "gain_bias": float((est_gain[m, j - 1] - true_gain[m, j - 1]).mean()) if m.any() else float("nan"),
            "true_gain": float(true_gain[m, j - 1].mean()) if m.any() else float("nan"),
            "needless_share": float(needless[m].mean()) if m.any() else float("nan")}
    return out


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean per-session difference a − b of two policies on the same visitors, with its 95% interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    half = Z95 * float(d.std(ddof=1)) / float(np.sqrt(len(d)))
    return {"difference": float(d.mean()), "low": float(d.mean()) - half, "high": float(d.mean()) + half}


def curse_summary(rows: list[dict]) -> list[str]:
    """Per run (size, variant, training log): the optimizer's-curse figures beside the closed-loop ratio."""
    lines = ["size  variant                    log  offer rate  needless  est gain  true gain  bias (offered)  "
             "bias (all)  one-step  closed loop"]
    for r in rows:
        if "gain_bias_offered" not in r:
            continue
        lines.append(f"{r['train_sessions'] // 1000:>3}k  {r['label']:<26} {r.get('log_seed')!s:>3}  "
                     f"{r['offer_rate_fresh']:10.3f}  {r['needless_share_fresh']:8.3f}  {r['est_gain_offered']:+8.3f}  "
                     f"{r['true_gain_offered']:+9.3f}  {r['gain_bias_offered']:+14.3f}  {r['gain_bias_all']:+10.3f}  "
                     f"{r['one_step_norm']:8.3f}  {r['closed_norm']:11.3f}")
        per = ", ".join(f"{ch} {v['offer_rate']:.3f} ({v['gain_bias']:+.2f}, needless {v['needless_share']:.2f})"
                        for ch, v in r["by_channel"].items() if v["offer_rate"] > 0)
        lines.append(f"      offer rate by channel (bias, needless share): {per}")
        if "by_segment" in r:
            seg = ", ".join(f"{k} {v['offer_rate']:.3f} ({v['gain_bias']:+.2f}, needless {v['needless_share']:.2f})"
                            for k, v in r["by_segment"].items())
            lines.append(f"      offer rate by segment (bias, needless share): {seg}")
            lines.append(f"      bias where it offers to visitors who needed no help {r['gain_bias_offered_needless']:+.3f}, "
                         f"who needed help {r['gain_bias_offered_needed']:+.3f}")
        if "fi_gain_bias_offered" in r:
            lines.append(f"      full-information learner (true values, same features): offers {r['fi_offer_rate_fresh']:.3f}, "
                         f"needless {r['fi_needless_share_fresh']:.3f}; bias where it offers {r['fi_gain_bias_offered']:+.3f} "
                         f"(needed no help {r['fi_gain_bias_offered_needless']:+.3f}, needed help "
                         f"{r['fi_gain_bias_offered_needed']:+.3f}), over every point and channel {r['fi_gain_bias_all']:+.3f}")
        d = r.get("closed_minus_first_variant")
        if d:
            lines.append(f"      closed-loop value per session minus {r['first_variant']}'s: {d['difference']:+.4f} "
                         f"[{d['low']:+.4f}, {d['high']:+.4f}] (paired by visitor)")
    return lines


def variant_summary(rows: list[dict]) -> list[str]:
    """Per size and variant, over its training logs: mean and range of the closed-loop ratio, mean one-step
    ratio, offer rate, needless share and gain bias where it offers (fresh decision points)."""
    lines = []
    for n, label in sorted({(r["train_sessions"], r["label"]) for r in rows if "gain_bias_offered" in r}):
        rs = [r for r in rows if r["train_sessions"] == n and r["label"] == label and "gain_bias_offered" in r]
        cl = [r["closed_norm"] for r in rs]
        mean = (lambda k: float(np.mean([r[k] for r in rs])))
        lines.append(f"n={n:,} {label} (log seeds {[r.get('log_seed') for r in rs]}): closed loop mean {np.mean(cl):.2f} "
                     f"(range {min(cl):.2f}-{max(cl):.2f}), one-step mean {mean('one_step_norm'):.2f} (range "
                     f"{min(r['one_step_norm'] for r in rs):.2f}-{max(r['one_step_norm'] for r in rs):.2f}), offer rate "
                     f"{mean('offer_rate_fresh'):.3f}, needless share {mean('needless_share_fresh'):.2f}, gain bias where "
                     f"it offers {mean('gain_bias_offered'):+.3f}")
    return lines


#: Variant keys of this script only (not TrainConfig or PolicyConfig fields).
SCRIPT_KEYS = ("shuffle_outcomes", "closed_loop")


def split_script_keys(spec: str) -> tuple[str, dict[str, bool]]:
    """``spec`` without this script's own keys, and their values (``"name:a=1,shuffle_outcomes=true"``)."""
    name, _, sets = spec.partition(":")
    keep, own = [], {}
    for item in (x for x in sets.split(",") if x):
        k, _, v = item.partition("=")
        if k in SCRIPT_KEYS:
            own[k] = v.lower() in ("1", "true", "yes")
        else:
            keep.append(item)
    return f"{name}:{','.join(keep)}", own


def shuffle_outcomes(decisions: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The funnel outcomes (accepted, success, left) permuted within each logged action."""
    rng = np.random.default_rng(seed)
    d = decisions.copy()
    cols = [c for c in ("accepted", "success", "left") if c in d.columns]
    for _, idx in d.groupby("action", observed=True).indices.items():
        d.iloc[idx, [d.columns.get_loc(c) for c in cols]] = d.iloc[idx[rng.permutation(len(idx))]][cols].to_numpy()
    return d


def guard_summary(rows: list[dict]) -> list[str]:
    """Per size and variant, over the training logs: how often each guard rule keeps the learned policy,
    the mean closed-loop normalised value of what ``train`` ships under it, and the guard's estimates
    (DR and clipped DR difference to the best constant) beside the true one-step learned − never."""
    lines = []
    keys = sorted({(r["train_sessions"], r["label"]) for r in rows if r.get("guard_keeps")})
    for n, label in keys:
        rs = [r for r in rows if r["train_sessions"] == n and r["label"] == label and r.get("guard_keeps")]
        seeds = [r.get("log_seed") for r in rs]
        parts = []
        for rule in GUARD_RULES:
            kept = sum(bool(r["guard_keeps"][rule]) for r in rs)
            shipped = [r["closed_shipped_norm"][rule] for r in rs]
            mean = np.mean(shipped) if shipped and not np.isnan(shipped).any() else float("nan")
            parts.append(f"{rule} keeps {kept}/{len(rs)}, ships {mean:.2f}")
        lines.append(f"n={n:,} {label} (log seeds {seeds}): " + "; ".join(parts))
        for r in rs:
            cg = r["guard_clipped"]
            lines.append(f"    seed {r.get('log_seed')}: true one-step learned - never {r['one_step_learned_minus_never']:+.3f}, "
                         f"DR {r['guard_difference']:+.3f} [{r['guard_low']:+.3f}, {r['guard_high']:+.3f}], clipped "
                         f"{cg['difference']:+.3f} [{cg['low']:+.3f}, {cg['high']:+.3f}] (vs {r['guard_best_constant']}); "
                         f"closed-loop learned {r['closed_norm']:.2f}")
    return lines


def spread_summary(rows: list[dict], world: str, margin: float) -> list[str]:
    """What the closed-loop ratio moves with across the saved runs of a world at one offer margin.

    Spearman rank correlations, over the distinct runs (a re-run with the same figures counts once), of
    the closed-loop learned / full-information ratio with the share of offers sent to visitors who
    needed none, the offers per session and the one-step ratio: an association across runs, not a cause.
    """
    df = pd.DataFrame([r for r in rows if r.get("world") == world and r.get("offer_margin") == margin])
    if df.empty or "closed_norm" not in df:
        return [f"no closed-loop rows of world {world!r} at offer margin {margin}"]
    df = df[df["closed_norm"].notna()].drop_duplicates(subset=["train_sessions", "one_step_norm", "closed_norm"])
    lines = [f"{world}, offer margin {margin}: {len(df)} distinct runs "
             f"({', '.join(f'{n // 1000}k' for n in sorted(df['train_sessions']))}); "
             "Spearman correlation with the closed-loop ratio:"]
    for col, what in (("needless_share_learned", "share of offers to visitors who needed none"),
                      ("offers_per_session_learned", "offers per session"), ("one_step_norm", "one-step ratio")):
        lines.append(f"    {what:<46} {df[col].corr(df['closed_norm'], method='spearman'):+.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,20000,60000,120000")
    ap.add_argument("--world", default="default")
    ap.add_argument("--test-sessions", type=int, default=20_000)
    ap.add_argument("--closed-loop-sessions", type=int, default=30_000)
    ap.add_argument("--variant", action="append", default=[],
                    help="name:key=value,... (TrainConfig fields or offer_margin); default: TrainConfig() as is")
    ap.add_argument("--log-epsilon", type=float, default=None,
                    help="exploration share of the training logs' rule_epsilon logging policy (default: the world's, 0.3)")
    ap.add_argument("--log-seeds", default="1", help="seeds of the training logs, one run per seed (guard study)")
    ap.add_argument("--out", default="benchmarks/results/learning_curve.jsonl")
    ap.add_argument("--summarise", action="store_true",
                    help="only print the guard summary of the rows already in --out (rows with the guard's figures)")
    ap.add_argument("--spread", type=float, default=None, metavar="MARGIN",
                    help="only print what the closed-loop ratio moves with across the runs in --out of --world at "
                         "this offer margin (Spearman correlations)")
    ap.add_argument("--curse", action="store_true",
                    help="only print the optimizer's-curse figures (estimated - true gain where the learned policy "
                         "offers, at fresh decision points) of the rows in --out that have them")
    args = ap.parse_args()
    if args.curse:
        rows = [json.loads(x) for x in Path(args.out).read_text().splitlines() if x.strip()]
        print("\n".join(curse_summary(rows) + variant_summary(rows)))
        return
    if args.spread is not None:
        rows = [json.loads(x) for x in Path(args.out).read_text().splitlines() if x.strip()]
        print("\n".join(spread_summary(rows, args.world, args.spread)))
        return
    if args.summarise:
        rows = [json.loads(x) for x in Path(args.out).read_text().splitlines() if x.strip()]
        sizes = {int(x) for x in args.sizes.split(",")}
        print("\n".join(guard_summary([r for r in rows if r["train_sessions"] in sizes and r["world"] == args.world])))
        return
    cfg = world_config(args.world)
    train_cfg = cfg if args.log_epsilon is None else dataclasses.replace(cfg, epsilon=args.log_epsilon)
    pol = PolicyConfig.from_sim(cfg)
    split = [split_script_keys(v) for v in args.variant or ["default"]]
    variants = [parse_variant(v, TrainConfig(), pol) for v, _ in split]
    own = {name: o for (name, _, _), (_, o) in zip(variants, split)}
    for name, tcfg, vpol in variants:
        print(f"world {args.world}; variant {name}: offer margin {vpol.offer_margin:g}, train config {tcfg.to_json()}")
    te = simulate(args.test_sessions, seed=1001, config=cfg)
    v_never_1 = float(te.decisions["ev_none"].mean())
    rows_run = []
    for n, log_seed in [(int(x), int(s)) for x in args.sizes.split(",") for s in args.log_seeds.split(",")]:
        tr = simulate(n, seed=log_seed, config=train_cfg)
        learned, sets, train_s = {}, {}, {}
        for name, tcfg, vpol in variants:
            t0 = time.perf_counter()
            dec = shuffle_outcomes(tr.decisions, log_seed) if own[name].get("shuffle_outcomes") else tr.decisions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # the guard's verdict is recorded below
                sets[name] = train(decisions=dec, events=tr.events, customers=tr.customers,
                                   contacts=tr.contacts, config=tcfg, policy=vpol)
            train_s[name] = time.perf_counter() - t0
            learned[name] = deployable(sets[name])
        first = sets[variants[0][0]]
        fi = full_information_model_set(first, tr, policy=pol)   # margin 0, whatever the variants
        full = deployable(fi)
        fi_acts = one_step_actions(full, te)
        v1_f = one_step_value(full, te, fi_acts)
        # the same test for the full-information learner (true values, same features): the part of the
        # bias that any model of these features has, e.g. the latent need averaged over look-alike visitors
        fi_curse = gain_bias(fi, te, fi_acts, *model_inputs(fi, te))
        fi_curse = {f"fi_{k}": v for k, v in fi_curse.items() if not isinstance(v, dict)}
        cl, per_session = None, {}
        if args.closed_loop_sessions:
            live = {k: v for k, v in learned.items() if own[k].get("closed_loop", True)}
            cl, per_session = closed_loop_table({"never offer": "never", "trigger rule": "rule", **live,
                                                 "full-information": full}, cfg, args.closed_loop_sessions, (2001,),
                                                per_session=True)
        for name, tcfg, vpol in variants:
            ms = sets[name]
            acts = one_step_actions(learned[name], te)
            v1_l = one_step_value(learned[name], te, acts)
            X_te, C_te = model_inputs(ms, te)
            v1_cm = one_step_channel_model(ms, te, X_te, C_te)
            curse = gain_bias(ms, te, acts, X_te, C_te)
            g = ms.evaluation.get("guard", {})
            c = (lambda col, who=name: float(cl.loc[who, col]) if cl is not None and who in cl.index else float("nan"))
            # value per session against the first variant, paired by visitor (same sessions, seed 2001)
            first_name = variants[0][0]
            vs_first = paired_difference(per_session[name], per_session[first_name]) \
                if name in per_session and first_name in per_session and name != first_name else None
            keeps = g.get("keeps_learned", {})
            # what train() ships under each rule: the learned policy, or the constant ("none": never offer)
            shipped = {r: (c("norm_vs_full_info") if keeps.get(r)
                           else 0.0 if g.get("best_constant") == "none" else float("nan")) for r in GUARD_RULES} if g else {}
            row = {"label": name, "world": args.world, "train_sessions": n, "log_seed": log_seed,
                   "shuffle_outcomes": bool(own[name].get("shuffle_outcomes")),
                   "log_epsilon": train_cfg.epsilon, "train_rows": int(ms.meta["rows"]),
                   "train_s": round(train_s[name], 1), "offer_margin": vpol.offer_margin,
                   "guard_verdict": g.get("verdict"), "guard_best_constant": g.get("best_constant"),
                   "guard_difference": (g.get("learned_minus_best_constant") or {}).get("difference"),
                   "guard_low": (g.get("learned_minus_best_constant") or {}).get("low"),
                   "guard_high": (g.get("learned_minus_best_constant") or {}).get("high"),
                   "constant_action": ms.constant_action, "guard_rule": g.get("rule"),
                   "guard_keeps": keeps, "guard_clipped": g.get("learned_minus_best_constant_clipped"),
                   "one_step_learned_minus_never": v1_l - v_never_1,
                   "closed_shipped_norm": shipped,
                   "trees_per_head": {h: int(b.num_trees()) for h, b in ms.channel_model.boosters_.items()}
                   if ms.channel_model is not None else None,
                   "one_step_learned": v1_l, "one_step_full_info": v1_f, "one_step_never": v_never_1,
                   "one_step_norm": (v1_l - v_never_1) / (v1_f - v_never_1),
                   "one_step_channel_model_norm": (v1_cm - v_never_1) / (v1_f - v_never_1),
                   "closed_learned": c("value"), "closed_full_info": c("value", "full-information"),
                   "closed_never": c("value", "never offer"),
                   "closed_norm": c("norm_vs_full_info"), "closed_norm_low": c("norm_ci_low"),
                   "closed_norm_high": c("norm_ci_high"),
                   "needless_share_learned": c("needless_offer_share"),
                   "closed_rule": c("value", "trigger rule"),
                   "needless_share_rule": c("needless_offer_share", "trigger rule"),
                   "offers_per_session_learned": c("offers_per_session"),
                   **curse, **fi_curse, "pessimism": ms.evaluation.get("pessimism"),
                   "closed_minus_first_variant": vs_first, "first_variant": variants[0][0],
                   "train_config": tcfg.to_dict()}
            print(f"n={n:>7,d} {name}: trained {row['train_s']:6.0f} s  one-step learned/full-info "
                  f"{row['one_step_norm']:.3f} (channel model's own EVs {row['one_step_channel_model_norm']:.3f})  "
                  f"closed-loop {row['closed_norm']:.3f} [{row['closed_norm_low']:.3f}, {row['closed_norm_high']:.3f}]  "
                  f"(values: learned {v1_l:.4f} / {row['closed_learned']:.4f}, full-info {v1_f:.4f} / "
                  f"{row['closed_full_info']:.4f}, never {v_never_1:.4f} / {row['closed_never']:.4f}; needless offer "
                  f"share {row['needless_share_learned']:.3f}, the rule's {row['needless_share_rule']:.3f}; offers/session "
                  f"{row['offers_per_session_learned']:.3f}; guard {row['guard_verdict']} vs {row['guard_best_constant']} "
                  f"{row['guard_difference']} [{row['guard_low']}, {row['guard_high']}]; trees {row['trees_per_head']})",
                  flush=True)
            if vs_first:
                print(f"    log seed {log_seed}, {name}: closed-loop value per session minus {first_name}'s "
                      f"{vs_first['difference']:+.4f} [{vs_first['low']:+.4f}, {vs_first['high']:+.4f}] (paired by visitor)",
                      flush=True)
            print(f"    log seed {log_seed}, {name}: at fresh decision points offers {curse['offer_rate_fresh']:.3f}, "
                  f"needless {curse['needless_share_fresh']:.3f}; where it offers, estimated gain over none "
                  f"{curse['est_gain_offered']:+.4f}, true {curse['true_gain_offered']:+.4f}, bias "
                  f"{curse['gain_bias_offered']:+.4f} (over every point and channel {curse['gain_bias_all']:+.4f})",
                  flush=True)
            if g:
                cg = row["guard_clipped"]
                print(f"    log seed {log_seed}, {name}: true one-step learned - never {row['one_step_learned_minus_never']:+.4f}"
                      f" per decision; guard DR {row['guard_difference']:+.4f} [{row['guard_low']:+.4f}, "
                      f"{row['guard_high']:+.4f}], clipped at {cg['max_weight']:g} {cg['difference']:+.4f} [{cg['low']:+.4f}, "
                      f"{cg['high']:+.4f}]; keeps learned: {keeps}; closed-loop normalised of what train() ships: "
                      + ", ".join(f"{r} {v:.3f}" for r, v in shipped.items()), flush=True)
            rows_run += append_rows(args.out, [row])
    if any(r.get("guard_keeps") for r in rows_run):
        print("\n".join(guard_summary(rows_run)))
    print("\n".join(curse_summary(rows_run) + variant_summary(rows_run)))


if __name__ == "__main__":
    main()

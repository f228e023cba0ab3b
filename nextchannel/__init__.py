"""nextchannel: decide whether to offer help to a website visitor now, and on which channel.

The package namespace is the map of the public API: each name lives in the module of its concept
and is imported from there on first use (PEP 562), so that ``import nextchannel`` — and above all
the web scorer — never pays for the simulator, the evaluation tools or matplotlib.

Examples
--------
>>> import nextchannel as nc
>>> nc.ChannelCatalogue.default().names[:2]
('chat', 'callback')
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors
    "NextChannelError": "errors", "ValidationError": "errors", "ConfigError": "errors", "BundleError": "errors",
    "PolicyError": "errors", "NextChannelWarning": "errors", "ConstantModelWarning": "errors",
    "PersonalisationNotBetterWarning": "errors", "DriftWarning": "errors",
    # vocabulary
    "Channel": "schema", "ChannelCatalogue": "schema", "validate_event": "schema", "validate_events": "schema",
    "Limits": "schema", "ContextSpec": "context",
    # features and profiles
    "SessionState": "features", "features_many": "features", "feature_names": "features",
    "FeatureSpec": "featurespec",
    "ProfileConfig": "profile", "profile_one": "profile", "profiles_many": "profile", "history_of": "profile",
    "validate_contacts": "profile", "PreparedProfile": "profile", "prepare_one": "profile",
    # simulator
    "SimConfig": "simulation", "ChannelSim": "simulation", "SimResult": "simulation", "simulate": "simulation",
    # learners, training, model sets, scorer
    "ChannelModel": "models", "OfferModel": "models", "ValueModel": "models", "RewardModel": "models",
    "NoRandomisationWarning": "models",
    "TrainConfig": "training", "train": "training", "ModelSet": "modelset", "Scorer": "scorer",
    # policy and decision
    "PolicyConfig": "policy", "Decision": "policy",
    # the weekly learning loop
    "run_learning_loop": "learning_loop", "LoopResult": "learning_loop",
    # bundles
    "write_bundle": "bundle", "read_bundle": "bundle", "verify_bundle": "bundle", "Bundle": "bundle",
    "publish": "bundle", "current_version": "bundle",
    # evaluation
    "dm": "evaluate", "ips": "evaluate", "snips": "evaluate", "dr": "evaluate", "Estimate": "evaluate",
    "estimate_policy_value": "evaluate",
    "qini_curve": "diagnostics", "uplift_curve": "diagnostics", "qini_auc": "diagnostics",
    "uplift_auc": "diagnostics", "uplift_at_k": "diagnostics", "calibration_curve": "diagnostics",
    "expected_calibration_error": "diagnostics",
    "compare": "evaluate", "Comparison": "evaluate", "policy_value_true": "evaluate", "normalised_value": "evaluate",
    "psi": "drift", "feature_psi": "drift", "action_mix": "drift", "measure_drift": "drift", "Drift": "drift",
    "channel_demand": "demand", "what_if": "demand", "ChannelDemand": "demand",
    "retrain": "jobs", "RetrainResult": "jobs",
    "policy_facts": "facts", "PolicyFacts": "facts", "write_report": "report", "report_from_files": "report",
    # data: shipped data sets; analytics exports -> event logs
    "load_online_shoppers": "datasets",
    "events_from_ga4": "adapters", "events_from_snowplow": "adapters", "events_from_segment": "adapters",
    "AdapterReport": "adapters",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nextchannel' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nextchannel.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

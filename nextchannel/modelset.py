"""A trained model set: value model + offer model (+ channel model) + policy + the feature specification, and its bundle.

Where it sits: training → **model set → bundle** → scorer. :func:`nextchannel.training.train` makes
one; :meth:`ModelSet.save` writes it as a bundle folder (manifest, LightGBM text models, JSON
metadata and calibration; checksums; atomic) and :meth:`ModelSet.load` reads one back, refusing a
bundle whose files are missing, corrupt, tampered with or made for another feature schema.

Bundle layout::

    manifest.json        library and format version, feature names, the feature specification of the
                         user's own columns and the schema hash covering both, channels, policy,
                         training window and size, evaluation figures (the guard's), sha256 of every file
    channel_accept.txt   LightGBM text, one per channel-model head (funnel outcomes only)
    channel_success.txt
    channel_leave.txt
    offer.txt            LightGBM text of the offer model
    value_<action>.txt   LightGBM text of the value model, one per action (what the scorer evaluates;
                         ``value_<i>.txt`` for an action whose name is not a plain file name)
    models.json          learners' parameters and metadata, the feature specification, the guard's
                         constant action if it fell back
    calibration.json     isotonic calibration tables of the channel-model heads (funnel outcomes only)
    policy.json          the PolicyConfig

A model set learned from a plain ``reward`` column has no channel model: its value model was
learned from the rewards directly.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from nextchannel.bundle import Bundle, feature_schema_hash, publish, read_bundle, write_bundle
from nextchannel.calibration import Calibrator
from nextchannel.errors import BundleError, ValidationError
from nextchannel.featurespec import FeatureSpec
from nextchannel.modelinputs import CONTEXT_COLUMNS, HEADS, LEARNER_PARAMS, context_columns
from nextchannel.modelinputs import lgb_names as _lgb_names
from nextchannel.modeltext import ModelTextSummary, check_model_text
from nextchannel.policy import PolicyConfig, expected_values
from nextchannel.profile import ProfileConfig

if TYPE_CHECKING:  # the learners import LightGBM's Python package and scikit-learn: only when used
    import pandas as pd

    from nextchannel.models import ChannelModel, OfferModel, ValueModel

__all__ = ["ModelSet", "DEFAULT_BUNDLE", "value_file_names", "guard_phrase", "evaluation_lines",
           "plausible_value_range"]

def _default_bundle() -> Path:
    """``models/default`` of the source tree, or its copy installed as package data."""
    source = Path(__file__).resolve().parent.parent / "models" / "default"
    if source.is_dir():
        return source
    return Path(__file__).resolve().parent / "default_bundle"


#: The bundle shipped with the repository (``models/default``), loaded by ``Scorer.load()``.
DEFAULT_BUNDLE = _default_bundle()
_MODEL_FILES = ("offer.txt", "models.json", "policy.json")
_CHANNEL_FILES = tuple(f"channel_{h}.txt" for h in HEADS) + ("calibration.json",)
_PLAIN_FILE = re.compile(r"[A-Za-z0-9_-]{1,100}")


def value_file_names(actions: tuple[str, ...]) -> list[str]:
    """Bundle file of each action's value model: ``value_<action>.txt``, or ``value_<i>.txt`` for every
    action when some action's name is not a plain file name (spaces, unicode, punctuation).

    Examples
    --------
    >>> value_file_names(("none", "chat")), value_file_names(("none", "Spring E-Mail"))
    (['value_none.txt', 'value_chat.txt'], ['value_0.txt', 'value_1.txt'])
    """
    if all(_PLAIN_FILE.fullmatch(a) for a in actions) and len({a.lower() for a in actions}) == len(actions):
        return [f"value_{a}.txt" for a in actions]
    return [f"value_{i}.txt" for i in range(len(actions))]


def evaluation_lines(evaluation: Mapping[str, Any]) -> list[str]:
    """The manifest's ``evaluation`` figures in words (what ``nextchannel verify`` prints).

    Examples
    --------
    >>> g = {"folds": 3, "rows": 900, "values": {"learned": {"value": 0.5, "low": 0.4, "high": 0.6},
    ...      "none": {"value": 0.0, "low": -0.1, "high": 0.1}}, "best_constant": "none",
    ...      "learned_minus_best_constant": {"difference": 0.5, "low": 0.38, "high": 0.62},
    ...      "verdict": "better", "decision": "learned"}
    >>> for line in evaluation_lines({"guard": g}):
    ...     print(line)
    guard: cross-fitted DR on 900 logged decisions (3 folds), value per decision with 95% interval
      learned policy         0.5 [0.4, 0.6]
      always 'none'          0 [-0.1, 0.1]
      learned - best constant ('none'): 0.5 [0.38, 0.62] -> better
      the bundle decides with: the learned policy
    """
    g = evaluation.get("guard") if isinstance(evaluation, Mapping) else None
    if not isinstance(g, Mapping):
        return ["evaluation: no guard figures in this bundle"]
    lines = [f"guard: cross-fitted DR on {g.get('rows', '?')} logged decisions ({g.get('folds', '?')} folds), "
             "value per decision with 95% interval"]
    values = dict(g.get("values", {}))
    for name, v in sorted(values.items(), key=lambda kv: kv[0] != "learned"):
        label = "learned policy" if name == "learned" else f"always {name!r}"
        lines.append(f"  {label:<22} {v['value']:.4g} [{v['low']:.4g}, {v['high']:.4g}]")
    d = g.get("learned_minus_best_constant", {})
    lines.append(f"  learned - best constant ({g.get('best_constant')!r}): {d.get('difference', float('nan')):.4g} "
                 f"[{d.get('low', float('nan')):.4g}, {d.get('high', float('nan')):.4g}] -> {g.get('verdict')}")
    rule = f" (guard rule {g['rule']!r})" if isinstance(g.get("rule"), str) else ""  # bundles before the rules: none
    lines.append("  the bundle decides with: " + ("the learned policy" if g.get("decision") == "learned"
                                                  else f"always {g.get('best_constant')!r}") + rule)
    return lines


def guard_phrase(action: str) -> str:
    """The reason every decision of a bundle that fell back to a constant action carries."""
    return f"always {action!r}: personalisation was not better on held-out logs"


class ModelSet:
    """The learners, the policy and the schema they were trained for.

    Parameters
    ----------
    channel_model : ChannelModel (fitted) or None
        Calibrated outcome probabilities per action (the funnel); the value model's teacher. None
        for a model set learned from a plain reward.
    value_model : ValueModel (fitted)
        Expected value of every action; the scorer decides from it.
    offer_model : OfferModel (fitted)
    policy : PolicyConfig
    profile_config : ProfileConfig
    meta : dict
        Training facts: window (first/last ts), rows, sessions, outcome rates, train config.
    evaluation : dict, optional
        Evaluation figures recorded in the manifest.
    feature_spec : FeatureSpec, optional
        Which features the models read (default: the built-in features named by the models).
    constant_action : str, optional
        Set when training's guard found personalisation not better than this single action on
        held-out logs: the scorer then decides with it (when eligible), saying so in the reasons.
    """

    def __init__(self, channel_model: ChannelModel | None, value_model: ValueModel, offer_model: OfferModel,
                 policy: PolicyConfig,
                 profile_config: ProfileConfig | None = None, meta: Mapping[str, Any] | None = None,
                 evaluation: Mapping[str, Any] | None = None, *, feature_spec: FeatureSpec | None = None,
                 constant_action: str | None = None) -> None:
        self._learners: dict[str, Any] = {"channel_model": channel_model, "value_model": value_model,
                                          "offer_model": offer_model}
        self._stored: dict[str, tuple[dict[str, Any], Any]] = {}
        self._setup(policy, profile_config, meta, evaluation, feature_spec, constant_action,
                    channel_actions=None if channel_model is None else tuple(channel_model.actions_),
                    value_actions=tuple(value_model.actions_), input_features=tuple(value_model.input_features_))

    def _setup(self, policy: PolicyConfig, profile_config: ProfileConfig | None, meta: Mapping[str, Any] | None,
               evaluation: Mapping[str, Any] | None, feature_spec: FeatureSpec | None, constant_action: str | None,
               *, channel_actions: tuple[str, ...] | None, value_actions: tuple[str, ...],
               input_features: tuple[str, ...]) -> None:
        self._build_lock = threading.Lock()
        self._input_features = input_features
        self.policy = policy
        self.profile_config = profile_config or ProfileConfig(channels=policy.channels)
        self.meta = dict(meta or {})
        self.evaluation = dict(evaluation or {})
        self.feature_spec = feature_spec if feature_spec is not None else FeatureSpec(input_features)
        self.constant_action = constant_action
        for what, actions in (("channel model", channel_actions), ("value model", value_actions)):
            if actions is not None and actions != policy.actions:
                raise ValidationError(f"{what} actions {list(actions)} differ from the policy's {list(policy.actions)}")
        if self.feature_spec.internal_names != input_features:
            raise ValidationError("the feature specification's inputs differ from the value model's features")
        if constant_action is not None and constant_action not in policy.actions:
            raise ValidationError(f"constant_action must be one of {list(policy.actions)}, got {constant_action!r}")

    @classmethod
    def _from_stored(cls, stored: dict[str, tuple[dict[str, Any], Any]], policy: PolicyConfig,
                     profile_config: ProfileConfig | None, **setup: Any) -> "ModelSet":
        """A model set whose learners are built from their stored state on first use."""
        ms = cls.__new__(cls)
        ms._learners = {}
        ms._stored = dict(stored)
        vm_meta = stored["value_model"][0]
        cm = stored.get("channel_model")
        ms._setup(policy, profile_config, setup.get("meta"), setup.get("evaluation"), setup.get("feature_spec"),
                  setup.get("constant_action"), channel_actions=None if cm is None else tuple(cm[0]["actions"]),
                  value_actions=tuple(vm_meta["actions"]), input_features=tuple(vm_meta["input_features"]))
        return ms

    # -- the learners: built on first use when the model set was read from a bundle --------------
    def _learner(self, name: str) -> Any:
        if name not in self._learners:
            with self._build_lock:
                if name not in self._learners:
                    self._learners[name] = _build_learner(name, *self._stored[name])
        return self._learners[name]

    @property
    def channel_model(self) -> ChannelModel | None:
        """Calibrated outcome probabilities per action (None for a model set learned from a plain reward)."""
        if "channel_model" not in self._learners and "channel_model" not in self._stored:
            return None
        return self._learner("channel_model")

    @property
    def value_model(self) -> ValueModel:
        """Expected value of every action; the scorer decides from it."""
        return self._learner("value_model")

    @property
    def offer_model(self) -> OfferModel:
        return self._learner("offer_model")

    def _state(self, name: str) -> tuple[dict[str, Any], Any]:
        """(metadata, LightGBM text(s)) of a learner, as its bundle stores them (without building it)."""
        if name in self._stored:
            return self._stored[name]
        from nextchannel import models

        return getattr(models, f"{name}_state")(self._learners[name])

    @property
    def value_texts(self) -> list[str]:
        """The value models' LightGBM text, one per action (what the scorer evaluates)."""
        return list(self._state("value_model")[1])

    @property
    def offer_text(self) -> str:
        """The offer model's LightGBM text."""
        return self._state("offer_model")[1]

    @property
    def context_features(self) -> tuple[str, ...]:
        """The value models' channel-context inputs, after the features (``open_<ch>``, ``wait_<ch>_s``, ...)."""
        return tuple(context_columns(self.actions[1:]))

    @property
    def offer_feature_names(self) -> tuple[str, ...]:
        """The offer model's inputs."""
        return tuple(self._state("offer_model")[0]["feature_names"])

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The models' input names (built-in features, then ``f<i>`` for the user's columns)."""
        return self._input_features

    @property
    def outcome(self) -> str:
        """``"funnel"`` (accept/success/leave, with a channel model) or ``"reward"``."""
        funnel = self._learners.get("channel_model") is not None or "channel_model" in self._stored
        return "funnel" if funnel else "reward"

    @property
    def actions(self) -> tuple[str, ...]:
        return self.policy.actions

    @property
    def version(self) -> str:
        """A content hash of the models and policy: the same training gives the same version."""
        if getattr(self, "_version", None) is None:
            self._version = self._content_hash()
        return self._version

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        for name, content in sorted(self._files().items()):
            h.update(name.encode())
            h.update(content.encode() if isinstance(content, str) else json.dumps(content, sort_keys=True).encode())
        return "m-" + h.hexdigest()[:12]

    def outcome_probabilities(self, X: pd.DataFrame, context: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
        if self.channel_model is None:
            raise ValidationError("this model set was learned from a plain reward: it has no funnel (channel) model "
                                  "and so no outcome probabilities; use expected_values")
        return self.channel_model.predict_proba(X, context)

    def channel_expected_values(self, X: pd.DataFrame, context: pd.DataFrame | None = None) -> np.ndarray:
        """EV of every action (n, n_actions) from the channel model's probabilities and the policy's values."""
        p = self.outcome_probabilities(X, context)
        return expected_values(self.policy, p["accept"], p["success"], p["leave"])

    def expected_values(self, X: pd.DataFrame, context: pd.DataFrame) -> np.ndarray:
        """EV of every action (n, n_actions) as the scorer sees them (the value model)."""
        return self.value_model.predict(X, context)

    # -- persistence ----------------------------------------------------------------------------
    def _files(self) -> dict[str, Any]:
        # Keys beyond the funnel layout are written only when used, so that an older bundle
        # re-saved gives the same bytes (and the same model_version).
        om_meta, om_text = self._state("offer_model")
        vm_meta, vm_texts = self._state("value_model")
        files: dict[str, Any] = {}
        models: dict[str, Any] = {}
        if self.outcome == "funnel":
            cm_meta, cm_texts = self._state("channel_model")
            cm_meta = dict(cm_meta)
            files["calibration.json"] = cm_meta.pop("calibration")
            files.update({f"channel_{h}.txt": cm_texts[h] for h in HEADS})
            models["channel_model"] = cm_meta
        else:
            models["outcome"] = "reward"
        files["offer.txt"] = om_text
        files.update(dict(zip(value_file_names(self.actions), vm_texts)))
        models.update({"value_model": vm_meta, "offer_model": om_meta, "profile_config": self.profile_config.to_dict()})
        if self.feature_spec.columns:
            models["feature_spec"] = self.feature_spec.to_dict()
        if self.constant_action is not None:
            models["constant_action"] = self.constant_action
        files["models.json"] = models
        files["policy.json"] = self.policy.to_dict()
        return files

    def bundle_contents(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(files, manifest fields) of this model set's bundle, as :func:`~nextchannel.bundle.write_bundle` takes them."""
        from nextchannel import __version__

        files = self._files()
        manifest = {
            "kind": "nextchannel-modelset",
            "model_version": self.version,
            "feature_names": list(self.feature_names),
            **({"feature_spec": self.feature_spec.to_dict()} if self.feature_spec.columns else {}),
            "outcome": self.outcome,
            "constant_action": self.constant_action,
            "channels": self.policy.channels.to_dict(),
            "actions": list(self.actions),
            "policy": self.policy.to_dict(),
            "training": self.meta,
            "evaluation": self.evaluation,
            "nextchannel_version": __version__,
        }
        return files, manifest

    def save(self, path: str | Path, *, overwrite: bool = False, key: str | bytes | None = None) -> Path:
        """Write the bundle folder atomically (see the module docstring for its layout).

        ``overwrite=True`` replaces a bundle with no moment where ``path`` is missing (see
        :func:`~nextchannel.bundle.write_bundle`); ``key`` (or ``$NEXTCHANNEL_BUNDLE_KEY``) signs
        the manifest. To serve, prefer :meth:`publish`.
        """
        files, manifest = self.bundle_contents()
        return write_bundle(path, files, manifest, overwrite=overwrite, key=key)

    def publish(self, root: str | Path, *, version: str | None = None, keep: int = 5,
                key: str | bytes | None = None) -> Path:
        """Publish as ``<root>/<version>/`` and flip ``<root>/current`` (:func:`nextchannel.bundle.publish`)."""
        return publish(self, root, version=version, keep=keep, key=key)

    @classmethod
    def load(cls, path: str | Path, *, expected_feature_names: tuple[str, ...] | None = None,
             require_signature: bool = False, key: str | bytes | None = None) -> "ModelSet":
        """Read and verify a bundle folder or publish root (its ``current``).

        Raises :class:`~nextchannel.errors.BundleError` naming the file and the problem. Every model
        text is validated in Python (:mod:`nextchannel.modeltext`) before LightGBM parses it.
        ``require_signature=True`` refuses a bundle not signed with ``key``
        (default ``$NEXTCHANNEL_BUNDLE_KEY``).
        """
        kwargs: dict[str, Any] = {"required_files": _MODEL_FILES}  # value_<action>.txt checked in from_bundle
        if expected_feature_names is not None:
            kwargs["expected_feature_hash"] = feature_schema_hash(expected_feature_names)
            kwargs["expected_feature_names"] = list(expected_feature_names)
        b = read_bundle(path, require_signature=require_signature, key=key, **kwargs)
        return cls.from_bundle(b)

    @classmethod
    def from_bundle(cls, b: Bundle) -> "ModelSet":
        where = str(b.path)

        def part(name: str, build: Any) -> Any:
            # Each piece is parsed on its own so that the error names the file at fault.
            try:
                return build()
            except BundleError:
                raise
            except KeyError as err:
                raise BundleError(f"{where}/{name}: missing key {err}") from err
            except (ValidationError, TypeError, ValueError) as err:
                raise BundleError(f"{where}/{name}: does not hold a valid model set part: {err}") from err

        models = part("models.json", lambda: b.json("models.json"))
        om_meta = part("models.json", lambda: dict(models["offer_model"]))
        prof = part("models.json", lambda: ProfileConfig.from_dict(models["profile_config"]))
        policy = part("policy.json", lambda: PolicyConfig.from_dict(b.json("policy.json")))
        funnel = models.get("outcome", "funnel") != "reward"
        if funnel:
            for name in _CHANNEL_FILES:
                if name not in b.files:
                    raise BundleError(f"{where}/{name}: required file is missing from the bundle")
            cm_meta = part("models.json", lambda: dict(models["channel_model"]))
            calibration = part("calibration.json", lambda: b.json("calibration.json"))
            part("calibration.json", lambda: [Calibrator.from_dict(calibration[h]) for h in HEADS])
        vm_meta = part("models.json", lambda: dict(models["value_model"]))
        value_files = part("models.json", lambda: value_file_names(tuple(vm_meta["actions"])))
        for name in value_files:
            if name not in b.files:
                raise BundleError(f"{where}/{name}: required file is missing from the bundle")
        # Every model text is proven sound in Python before LightGBM's native parser sees any of them.
        texts: dict[str, list[str]] = {}
        if funnel:
            channel_names = part("models.json", lambda: _lgb_names([*cm_meta["input_features"], *CONTEXT_COLUMNS]))
            texts.update({f"channel_{h}.txt": channel_names for h in HEADS})
        texts["offer.txt"] = part("models.json", lambda: _lgb_names(list(om_meta["feature_names"])))
        value_names = part("models.json", lambda: _lgb_names([*vm_meta["input_features"],
                                                              *context_columns(vm_meta["actions"][1:])]))
        texts.update({name: value_names for name in value_files})
        checked = {name: part(name, lambda name=name, names=names: _checked_text(b, name, names))
                   for name, names in texts.items()}
        if funnel:  # the policy's business values bound a funnel's expected values (not a plain reward's)
            _check_value_ranges(where, policy, {name: checked[name][1] for name in value_files})
        # The learners (scikit-learn estimators over lightgbm.Booster) are built on first use: the
        # scorer reads only the texts. LightGBM's native parser reads every text now, and the value
        # models are evaluated on a probe row, so a bundle LightGBM cannot use is refused here.
        stored: dict[str, tuple[dict[str, Any], Any]] = {}
        if funnel:
            stored["channel_model"] = (part("models.json", lambda: _channel_meta(cm_meta, calibration)),
                                       {h: checked[f"channel_{h}.txt"][0] for h in HEADS})
        stored["offer_model"] = (part("models.json", lambda: _offer_meta(om_meta)), checked["offer.txt"][0])
        stored["value_model"] = (part("models.json", lambda: _value_meta(vm_meta)),
                                 [checked[name][0] for name in value_files])
        for name in (*(f"channel_{h}.txt" for h in HEADS if funnel), "offer.txt"):
            _native_load(where, name, checked[name][0]).close()
        _check_probe(where, tuple(vm_meta["actions"]), value_files, stored["value_model"][1],
                     len(vm_meta["input_features"]))
        spec = part("models.json", lambda: FeatureSpec.from_dict(models["feature_spec"])) \
            if "feature_spec" in models else None
        if spec is not None and b.manifest.get("feature_spec") != spec.to_dict():
            raise BundleError(f"{where}/manifest.json: feature_spec differs from the one in models.json")
        names = b.manifest.get("feature_names")
        if names is not None and list(names) != list(vm_meta["input_features"]):
            raise BundleError(f"{where}/manifest.json: feature_names differ from the value model's features")
        setup = dict(meta=b.manifest.get("training", {}), evaluation=b.manifest.get("evaluation", {}),
                     feature_spec=spec, constant_action=models.get("constant_action"))
        if any(set(meta["params"]) != LEARNER_PARAMS[name] for name, (meta, _) in stored.items()):
            # parameters of another library version: the learners themselves fill defaults or refuse them
            built = {name: part("models.json", lambda name=name: _build_learner(name, *stored[name])) for name in stored}
            ms = part("models.json", lambda: cls(built.get("channel_model"), built["value_model"],
                                                 built["offer_model"], policy, prof, **setup))
        else:
            ms = part("models.json", lambda: cls._from_stored(stored, policy, prof, **setup))
        recorded = b.manifest.get("model_version")
        if recorded is not None and recorded != ms.version:
            raise BundleError(f"{where}/manifest.json: model_version {recorded!r} does not match the models' "
                              f"content ({ms.version!r})")
        return ms


def _params(meta: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(meta["params"])
    if "categorical_features" in params:
        params["categorical_features"] = list(params["categorical_features"])
    return params


# The metadata of each learner exactly as its ``*_state`` function in :mod:`nextchannel.models` gives it
# for the learner built from this metadata (so that the model set's version is the same either way).
def _value_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"params": _params(meta), "actions": list(meta["actions"]), "input_features": list(meta["input_features"])}


def _offer_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"params": _params(meta), "actions": list(meta["actions"]), "feature_names": list(meta["feature_names"]),
            "fallback": bool(meta["fallback"])}


def _channel_meta(meta: Mapping[str, Any], calibration: Mapping[str, Any]) -> dict[str, Any]:
    return {"params": _params(meta), "actions": list(meta["actions"]), "input_features": list(meta["input_features"]),
            "calibration": {h: Calibrator.from_dict(calibration[h]).to_dict() for h in HEADS},
            "base_rates": dict(meta["base_rates"])}


def _build_learner(name: str, meta: Mapping[str, Any], texts: Any) -> Any:
    """A learner of :mod:`nextchannel.models` from its stored state (imports LightGBM and scikit-learn)."""
    from nextchannel import models

    return getattr(models, f"{name}_from_state")(meta, texts)


def _native_load(where: str, name: str, text: str) -> Any:
    from nextchannel.fastpredict import FastBooster

    try:
        return FastBooster(text)
    except BundleError as err:
        raise BundleError(f"{where}/{name}: does not hold a valid model set part: {err}") from err


def _checked_text(b: Bundle, name: str, feature_names: list[str]) -> tuple[str, ModelTextSummary]:
    text = b.text(name)
    return text, check_model_text(text, where=f"{b.path}/{name}", feature_names=feature_names)


def plausible_value_range(policy: PolicyConfig) -> tuple[float, float]:
    """Expected values a bundle's value model may produce: the policy's value range widened tenfold each way.

    Every expected value lies in ``[-(max channel cost + annoyance + leave cost), value_success]``
    for probabilities in [0, 1]; a distilled regressor may overshoot a little, a tampered or broken
    model by orders of magnitude. Outputs outside this wider range make the bundle refused.

    Examples
    --------
    >>> plausible_value_range(PolicyConfig())
    (-232.0, 230.0)
    """
    lo = -(float(np.max(policy.cost_vector())) + float(policy.annoyance) + float(policy.leave_cost))
    hi = float(policy.value_success)
    span = max(hi - lo, 1.0)
    return lo - 10 * span, hi + 10 * span


def _check_value_ranges(where: str, policy: PolicyConfig, summaries: Mapping[str, ModelTextSummary]) -> None:
    lo, hi = plausible_value_range(policy)
    for name, info in summaries.items():
        out_lo, out_hi = info.output_range[0]
        if out_lo < lo or out_hi > hi:
            raise BundleError(f"{where}/{name}: the value model can output [{out_lo:.4g}, {out_hi:.4g}], outside "
                              f"the plausible expected values [{lo:.4g}, {hi:.4g}] of the policy's business values "
                              f"(altered or broken leaf values?)")


def _check_probe(where: str, actions: tuple[str, ...], files: list[str], texts: list[str], n_inputs: int) -> None:
    """Expected values on a probe row (every feature missing, default context) must be finite numbers."""
    values = []
    for name, text in zip(files, texts):
        fb = _native_load(where, name, text)
        try:
            row = np.full(fb.num_features, np.nan)
            row[n_inputs:] = np.tile([1.0, 0.0, 1.0], (fb.num_features - n_inputs) // 3)
            values.append(float(fb.predict_one(row)[0]))
        finally:
            fb.close()
    bad = [a for a, v in zip(actions, values) if not np.isfinite(v)]
    if bad:
        raise BundleError(f"{where}: the value model gives non-finite expected values on a probe row for {bad}")

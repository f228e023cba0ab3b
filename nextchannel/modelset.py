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
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from nextchannel.bundle import Bundle, feature_schema_hash, publish, read_bundle, write_bundle
from nextchannel.errors import BundleError, ValidationError
from nextchannel.featurespec import FeatureSpec
from nextchannel.models import (
    HEADS,
    Calibrator,
    ChannelModel,
    OfferModel,
    ValueModel,
    _booster_from_text,
    channel_model_from_state,
    channel_model_state,
    offer_model_from_state,
    offer_model_state,
    value_model_from_state,
    value_model_state,
)
from nextchannel.policy import PolicyConfig, expected_values
from nextchannel.profile import ProfileConfig

__all__ = ["ModelSet", "DEFAULT_BUNDLE", "value_file_names", "guard_phrase", "evaluation_lines"]

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
    lines.append("  the bundle decides with: " + ("the learned policy" if g.get("decision") == "learned"
                                                  else f"always {g.get('best_constant')!r}"))
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
        self.channel_model = channel_model
        self.value_model = value_model
        self.offer_model = offer_model
        self.policy = policy
        self.profile_config = profile_config or ProfileConfig(channels=policy.channels)
        self.meta = dict(meta or {})
        self.evaluation = dict(evaluation or {})
        self.feature_spec = feature_spec if feature_spec is not None else FeatureSpec(tuple(value_model.input_features_))
        self.constant_action = constant_action
        for what, m in (("channel model", channel_model), ("value model", value_model)):
            if m is not None and tuple(m.actions_) != policy.actions:
                raise ValidationError(f"{what} actions {list(m.actions_)} differ from the policy's {list(policy.actions)}")
        if self.feature_spec.internal_names != tuple(value_model.input_features_):
            raise ValidationError("the feature specification's inputs differ from the value model's features")
        if constant_action is not None and constant_action not in policy.actions:
            raise ValidationError(f"constant_action must be one of {list(policy.actions)}, got {constant_action!r}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The models' input names (built-in features, then ``f<i>`` for the user's columns)."""
        return tuple(self.value_model.input_features_)

    @property
    def outcome(self) -> str:
        """``"funnel"`` (accept/success/leave, with a channel model) or ``"reward"``."""
        return "funnel" if self.channel_model is not None else "reward"

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
        om_meta, om_text = offer_model_state(self.offer_model)
        vm_meta, vm_texts = value_model_state(self.value_model)
        files: dict[str, Any] = {}
        models: dict[str, Any] = {}
        if self.channel_model is not None:
            cm_meta, cm_texts = channel_model_state(self.channel_model)
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
        cm = None
        if models.get("outcome", "funnel") != "reward":
            for name in _CHANNEL_FILES:
                if name not in b.files:
                    raise BundleError(f"{where}/{name}: required file is missing from the bundle")
            cm_meta = part("models.json", lambda: dict(models["channel_model"]))
            calibration = part("calibration.json", lambda: b.json("calibration.json"))
            part("calibration.json", lambda: [Calibrator.from_dict(calibration[h]) for h in HEADS])
            boosters = {h: part(f"channel_{h}.txt", lambda h=h: _booster_from_text(b.text(f"channel_{h}.txt"),
                                                                                   f"channel model head {h!r}"))
                        for h in HEADS}
            cm_meta["calibration"] = calibration
            cm = part("models.json", lambda: channel_model_from_state(cm_meta, boosters))
        offer_booster = part("offer.txt", lambda: _booster_from_text(b.text("offer.txt"), "offer model"))
        om = part("models.json", lambda: offer_model_from_state(om_meta, offer_booster))
        vm_meta = part("models.json", lambda: dict(models["value_model"]))
        value_files = part("models.json", lambda: value_file_names(tuple(vm_meta["actions"])))
        for name in value_files:
            if name not in b.files:
                raise BundleError(f"{where}/{name}: required file is missing from the bundle")
        value_boosters = [part(name, lambda name=name: _booster_from_text(b.text(name), f"value model {name}"))
                          for name in value_files]
        vm = part("models.json", lambda: value_model_from_state(vm_meta, value_boosters))
        spec = part("models.json", lambda: FeatureSpec.from_dict(models["feature_spec"])) \
            if "feature_spec" in models else None
        if spec is not None and b.manifest.get("feature_spec") != spec.to_dict():
            raise BundleError(f"{where}/manifest.json: feature_spec differs from the one in models.json")
        names = b.manifest.get("feature_names")
        if names is not None and list(names) != vm.input_features_:
            raise BundleError(f"{where}/manifest.json: feature_names differ from the value model's features")
        ms = part("models.json", lambda: cls(cm, vm, om, policy, prof, meta=b.manifest.get("training", {}),
                                             evaluation=b.manifest.get("evaluation", {}), feature_spec=spec,
                                             constant_action=models.get("constant_action")))
        recorded = b.manifest.get("model_version")
        if recorded is not None and recorded != ms.version:
            raise BundleError(f"{where}/manifest.json: model_version {recorded!r} does not match the models' "
                              f"content ({ms.version!r})")
        return ms

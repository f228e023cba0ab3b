"""Isotonic calibration stored as data (two arrays), as the channel model's heads use it.

Where it sits: a piece of :mod:`nextchannel.models` that reading a bundle needs without the learners:
:mod:`nextchannel.modelset` validates ``calibration.json`` with :meth:`Calibrator.from_dict` and
must not import scikit-learn to do so (only :meth:`Calibrator.fit` needs it).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from nextchannel.errors import ValidationError

__all__ = ["Calibrator"]


class Calibrator:
    """Isotonic calibration stored as data: ``p_cal = interp(p_raw, x_, y_)``.

    Examples
    --------
    >>> c = Calibrator.fit(np.array([.1, .2, .8, .9]), np.array([0, 0, 1, 1]))
    >>> float(c.transform(np.array([0.85]))[0])
    1.0
    >>> Calibrator.from_dict(c.to_dict()).to_dict() == c.to_dict()
    True
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_ = np.asarray(x, dtype=float)
        self.y_ = np.asarray(y, dtype=float)

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "Calibrator":
        from sklearn.isotonic import IsotonicRegression  # training only: reading a bundle never fits

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(p, y, sample_weight=sample_weight)
        return cls(iso.X_thresholds_, iso.y_thresholds_)

    @classmethod
    def identity(cls) -> "Calibrator":
        return cls(np.array([0.0, 1.0]), np.array([0.0, 1.0]))

    def transform(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p, self.x_, self.y_)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": [float(v) for v in self.x_], "y": [float(v) for v in self.y_]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[float]]) -> "Calibrator":
        if not isinstance(d, Mapping) or "x" not in d or "y" not in d:
            raise ValidationError(f"calibration must be a mapping with keys 'x' and 'y', got {type(d).__name__}"
                                  f"{' with keys ' + str(sorted(map(str, d))) if isinstance(d, Mapping) else ''}")
        try:
            x, y = np.asarray(d["x"], dtype=float), np.asarray(d["y"], dtype=float)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"calibration arrays 'x' and 'y' must hold numbers: {err}") from err
        if x.ndim != 1 or x.shape != y.shape or len(x) < 1 or not np.isfinite(x).all() \
                or not np.isfinite(y).all() or np.any(np.diff(x) < 0):
            raise ValidationError("calibration must hold equal-length finite arrays 'x' (non-decreasing) and 'y', "
                                  f"got x of shape {x.shape} and y of shape {y.shape}")
        # A decreasing map would turn "longer wait never looks better" around: refuse it.
        if np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1:
            raise ValidationError("calibration 'y' must be non-decreasing probabilities in [0, 1], "
                                  f"got values from {y.min():g} to {y.max():g}"
                                  f"{' decreasing somewhere' if np.any(np.diff(y) < 0) else ''}")
        return cls(x, y)

"""The area a model was trained on, and the warnings of inputs from outside it.

A network trained on simulated transmitters over its receivers' area (plus the scenario's
margin) has seen nothing else: given receivers on another continent it still answers, with
a position inside its own area and a small ellipse. `TrainingArea` (from the bundle's
`config.yaml`: network, reference point, scenario margin) lets the runtime say so: each
prediction gets warnings, `out_of_area`, and an ellipse widened to what the input supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.geo import ReferencePoint
from heimdall.network import ReceiverNetwork

__all__ = [
    "WARN_RECEIVERS_OUTSIDE",
    "WARN_POSITION_OUTSIDE",
    "WARN_ONE_RECEIVER",
    "MEASURED_MARGIN_FRACTION",
    "TrainingArea",
    "AreaCheck",
]

WARN_RECEIVERS_OUTSIDE = "receivers_outside_training_area"
WARN_POSITION_OUTSIDE = "position_outside_training_area"
WARN_ONE_RECEIVER = "one_receiver_heard"

#: Margin round the receivers of a model trained on measurements (no scenario margin known),
#: as a fraction of the network's larger extent (at least `_MIN_MARGIN_M`).
MEASURED_MARGIN_FRACTION = 0.25
_MIN_MARGIN_M = 1_000.0
#: A predicted position this fraction of the area's larger side beyond its edge is outside:
#: near the edge the model may overshoot a little without the answer being meaningless.
_POSITION_TOLERANCE_FRACTION = 0.1


@dataclass(frozen=True)
class AreaCheck:
    """Per sample ([N]): warnings, whether the input is outside the training area, and the
    covariances ([N, 2, 2], m^2) widened where the input does not support the model's."""

    warnings: tuple[tuple[str, ...], ...]
    out_of_area: np.ndarray
    covariance_m2: np.ndarray


@dataclass(frozen=True)
class TrainingArea:
    """East/north bounds (metres, about the bundle's reference point) of the training area."""

    east_min_m: float
    east_max_m: float
    north_min_m: float
    north_max_m: float

    @classmethod
    def from_config(cls, config: dict[str, Any], reference: ReferencePoint) -> TrainingArea | None:
        """The area of a bundle's `config.yaml`; None when it names no network (old bundles)."""
        network_data = config.get("network")
        if not isinstance(network_data, dict) or not network_data.get("receivers"):
            return None
        network = ReceiverNetwork.from_dict(network_data)
        scenario = config.get("scenario") or {}
        if "area_margin_m" in scenario:
            margin_m = float(scenario["area_margin_m"])
        else:
            # Default of ScenarioConfig for simulated data; a measured dataset has no margin.
            east_min, east_max, north_min, north_max = network.bounds_enu_m(reference)
            extent_m = max(east_max - east_min, north_max - north_min)
            margin_m = 20_000.0 if config.get("dataset_kind") != "measured" else max(
                MEASURED_MARGIN_FRACTION * extent_m, _MIN_MARGIN_M
            )
        return cls(*network.bounds_enu_m(reference, margin_m))

    @property
    def size_m(self) -> float:
        """The larger side of the area (metres)."""
        return max(self.east_max_m - self.east_min_m, self.north_max_m - self.north_min_m)

    def distance_outside_m(self, east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
        """How far each point lies outside the area (0 inside), metres."""
        dx = np.maximum(np.maximum(self.east_min_m - east_m, east_m - self.east_max_m), 0.0)
        dy = np.maximum(np.maximum(self.north_min_m - north_m, north_m - self.north_max_m), 0.0)
        return np.hypot(dx, dy)

    def check(
        self, position_m: np.ndarray, covariance_m2: np.ndarray, rx_position_m: np.ndarray, heard: np.ndarray,
        one_receiver_m2: np.ndarray | None = None,
    ) -> AreaCheck:
        """Warnings and widened covariances of N predictions.

        `position_m` [N, 2], `covariance_m2` [N, 2, 2], `rx_position_m` [N, R, 3] and `heard`
        [N, R] as fed to the model. Outside the area (a heard receiver, or the prediction)
        the covariance gets `d^2 I` added, `d` the straight-line distance from the prediction
        to the farthest heard receiver: the answer is then known no better than "somewhere among
        the receivers that heard it". With one heard receiver the same widening applies
        (one power reading fixes a level, not a bearing), or, inside the area, where
        `one_receiver_m2` [N, 2, 2] is finite, that covariance is added instead: the spread
        about the answer of the places that receiver heard at that level in training
        (`export.one_receiver`).
        """
        rx_east, rx_north = rx_position_m[..., 0], rx_position_m[..., 1]
        rx_outside = (self.distance_outside_m(rx_east, rx_north) > 0.0) & heard
        receivers_outside = rx_outside.any(axis=1)
        position_outside = self.distance_outside_m(position_m[:, 0], position_m[:, 1]) > (
            _POSITION_TOLERANCE_FRACTION * self.size_m
        )
        one_receiver = heard.sum(axis=1) == 1
        # Straight-line (3-D) distance: for receivers across the globe the east/north
        # projection alone shrinks towards the Earth's radius; the chord does not.
        reach_m = np.where(
            heard,
            np.sqrt(
                (rx_east - position_m[:, None, 0]) ** 2
                + (rx_north - position_m[:, None, 1]) ** 2
                + rx_position_m[..., 2] ** 2
            ),
            0.0,
        ).max(axis=1)
        out_of_area = receivers_outside | position_outside
        widen = out_of_area | one_receiver
        covariance = covariance_m2.copy()
        places = np.zeros(len(position_m), dtype=bool)
        if one_receiver_m2 is not None:
            places = one_receiver & ~out_of_area & np.all(np.isfinite(one_receiver_m2), axis=(1, 2))
            covariance[places] += one_receiver_m2[places]
        by_reach = widen & ~places
        covariance[by_reach] += (reach_m[by_reach] ** 2)[:, None, None] * np.eye(2)
        warnings = tuple(
            tuple(
                name
                for name, flagged in (
                    (WARN_RECEIVERS_OUTSIDE, receivers_outside[i]),
                    (WARN_POSITION_OUTSIDE, position_outside[i]),
                    (WARN_ONE_RECEIVER, one_receiver[i]),
                )
                if flagged
            )
            for i in range(len(position_m))
        )
        return AreaCheck(warnings=warnings, out_of_area=out_of_area, covariance_m2=covariance)

"""Step 0 of a radio map's fit: how to read the file, decided on held-out folds.

Files that list only the receivers that heard leave a fixed receiver out of a sample when
it heard nothing; elsewhere a missing row is a dropped reading. Where receivers listened
and heard nothing, the censored (Tobit) path-loss exponent may or may not describe the
network better than the one from the heard readings alone, and the silences may be worth
less than independent evidence: a transmitter behind a building is silent to every gateway
that building shadows, and gateways differ in sensitivity. `choose_readings` answers each
by the cross-fitted median error (m) of maps built each way, never by assumption.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.training.censored_physics import censored_path_loss_exponent, silent_readings
from heimdall.training.cross_fitting import CROSS_FOLDS, combined_median_m, cross_fitting_folds
from heimdall.training.radio_map_build import build_radio_map, fit_physics
from heimdall.training.radio_map_heldout import (
    FINGERPRINT_BACKGROUNDS,
    FINGERPRINT_BANDWIDTHS_DB,
    FINGERPRINT_WEIGHTS,
    TEMPERATURES,
    HeldOut,
    held_out_terms,
    posterior_answer,
)

__all__ = ["choose_readings"]

log = logging.getLogger(__name__)

#: Held-out samples scored per scheme in step 0 (`choose_readings`): its choices were
#: decided by 10 % or more wherever measured, and step 0 can take three variants.
DECISION_SAMPLES = 750
#: Censored and heard-only path-loss exponents closer than this are one law (no held-out choice).
EXPONENT_MARGIN = 0.25
#: Weights of the silences' log-probability tried (`RadioMapNet.silence_weight`), where
#: receivers listened and heard nothing. On a simulated city network (37 gateways, most silent
#: for each transmission) step 0 chose 0.25 in all twelve fits of seven folds, and on one of
#: them 0.125 and 0.0625 scored worse than 0.25 (docs/REAL_DATA.md, "How much a silence says").
SILENCE_WEIGHTS = (1.0, 0.5, 0.25)


def _censored_exponent(samples: SampleArrays, num_stations: int) -> tuple[float | None, float]:
    """(censored path-loss exponent, or None when no known station ever listened and heard
    nothing; the exponent from the heard readings alone)."""
    heard_only = fit_physics(samples, num_stations)
    if not silent_readings(samples, num_stations).any():
        return None, heard_only.exponent
    return censored_path_loss_exponent(samples, num_stations, heard_only), heard_only.exponent


def _held_out_median(
    data: SampleArrays, num_stations: int, length_m: float, mobile: np.ndarray, seed: int, fill: bool,
    exponent: float | None, silence_weight: float = 1.0,
) -> float:
    """Combined (`combined_median_m`) random and spatial out-of-fold median error (m) of maps of
    length `length_m` built as told (`build_radio_map`'s `fill_absent`, `path_loss_exponent`,
    `silence_weight`),
    at the best fingerprint and temperature settings (readings that differ can favour
    different settings: reading gaps as silence gives fingerprints many more stations to
    compare). The folds depend on `seed` and the number of samples only, so two readings of
    the same campaign are scored on the same folds."""
    rng = np.random.default_rng(seed)
    held: list[list[HeldOut]] = []
    for scheme in ("random", "spatial"):
        folds = cross_fitting_folds(data, scheme, rng)
        chosen = rng.permutation(len(data))[: min(DECISION_SAMPLES, len(data))]
        held.append([])
        for fold in range(CROSS_FOLDS):
            train, test_index = data.select(folds != fold), np.intersect1d(np.nonzero(folds == fold)[0], chosen)
            if len(train) >= 10 and len(test_index):
                net = build_radio_map(train, num_stations, length_m, mobile=mobile, fill_absent=fill,
                                      path_loss_exponent=exponent, silence_weight=silence_weight)
                held[-1].append(held_out_terms(net, data.select(test_index)))

    def score(key: tuple[float, float], weight: float, temperature: float) -> float:
        medians = [
            float(np.median(np.concatenate([
                np.linalg.norm(posterior_answer(h, key, weight, temperature) - h.truth_m, axis=1) for h in part
            ])))
            for part in held if part
        ]
        return combined_median_m(medians)

    keys = itertools.product(FINGERPRINT_BANDWIDTHS_DB, FINGERPRINT_BACKGROUNDS)
    return min(score(*c) for c in itertools.product(keys, FINGERPRINT_WEIGHTS, TEMPERATURES))


def choose_readings(
    samples: SampleArrays, filled: SampleArrays, num_stations: int, length_m: float, mobile: np.ndarray, seed: int,
) -> tuple[SampleArrays, bool, float | None, float]:
    """Step 0: (samples as read, fill_absent, path-loss exponent or None for least squares,
    the silences' weight).

    Each question is answered by `_held_out_median`, never assumed:
    - a fixed station missing from a sample (`filled` differs from `samples`): "listened,
      heard nothing" (files listing only the receivers that heard) or unknown (a dropped
      reading), each with its censored exponent;
    - where stations listened and heard nothing, the censored (Tobit) exponent or the one
      from the heard readings alone, when they differ by more than `EXPONENT_MARGIN`: the
      censored fit assumes a silence means a level below the station's weakest heard ones,
      which a network mixing sensitivities (LoRa spreading factors) can break;
    - then, where stations listened and heard nothing, how much the silences weigh
      (`SILENCE_WEIGHTS`; in full unless less does better).
    """
    scores: dict[tuple[bool, bool, float], float] = {}

    def held_out(fill: bool, exponent: float | None, silence_weight: float = 1.0) -> float:
        key = (fill, exponent is None, silence_weight)
        if key not in scores:
            scores[key] = _held_out_median(filled if fill else samples, num_stations, length_m, mobile, seed, fill,
                                           exponent, silence_weight)
        return scores[key]

    exponents = {False: _censored_exponent(samples, num_stations)}
    fill = False
    if filled is not samples:
        exponents[True] = _censored_exponent(filled, num_stations)
        without_m, with_m = held_out(False, exponents[False][0]), held_out(True, exponents[True][0])
        fill = with_m < without_m
        log.info("radio map: missing fixed stations read as %s (out-of-fold median %.1f m as unknown, %.1f m as "
                 "heard nothing)", "heard nothing" if fill else "unknown", without_m, with_m)
    censored, heard_only = exponents[fill]
    silences = censored is not None
    if censored is not None and abs(censored - heard_only) > EXPONENT_MARGIN:
        censored_m, heard_only_m = held_out(fill, censored), held_out(fill, None)
        log.info("radio map: path-loss exponent %.2f counting the silent receivers (out-of-fold median %.1f m), "
                 "%.2f from the heard readings alone (%.1f m): %s", censored, censored_m, heard_only, heard_only_m,
                 "counting the silent receivers" if censored_m < heard_only_m else "heard readings alone")
        if censored_m >= heard_only_m:
            censored = None
    elif censored is not None:
        censored = None  # the same law either way: the per-map least squares keeps each fold's own
    silence_weight = 1.0
    if silences:
        medians = {w: held_out(fill, censored, w) for w in SILENCE_WEIGHTS}
        silence_weight = min(SILENCE_WEIGHTS, key=lambda w: (medians[w], -w))
        log.info("radio map: silences weighted %g (out-of-fold median %s)", silence_weight,
                 ", ".join(f"{medians[w]:.1f} m at {w:g}" for w in SILENCE_WEIGHTS))
    return (filled if fill else samples), fill, censored, silence_weight

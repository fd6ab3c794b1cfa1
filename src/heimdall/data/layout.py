"""The per-sample layout the model sees (docs/ARCHITECTURE.md, "The sample layout").

A batch of N samples over up to R receivers (padded, with masks). Positions are
east/north/up metres about the dataset's reference point; powers in dBm; NaN where a
receiver did not hear the transmitter.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from heimdall.errors import InputError

__all__ = ["SampleArrays", "SPLIT_CODES", "SPLIT_NAMES", "UNKNOWN_STATION"]

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

_OPTIONAL = ("spectrogram", "line_of_sight", "obstructions", "diffraction_loss_db", "timestamp_s")

#: `rx_id` of a station the model has no embedding for (new or unknown receivers).
UNKNOWN_STATION = -1


@dataclass(frozen=True)
class SampleArrays:
    """Columns of N samples x R receivers; every array's first axis is the sample."""

    sample_id: np.ndarray  # [N] int64
    rx_position_m: np.ndarray  # [N, R, 3] float32, east/north/up
    rx_id: np.ndarray  # [N, R] int64, station index or UNKNOWN_STATION
    rss_dbm: np.ndarray  # [N, R] float32, NaN where not heard
    snr_db: np.ndarray  # [N, R] float32, NaN where not heard
    heard: np.ndarray  # [N, R] bool
    present: np.ndarray  # [N, R] bool, receiver was listening
    tx_position_m: np.ndarray  # [N, 2] float32 east/north, NaN when unknown
    tx_lat_deg: np.ndarray  # [N] float64, NaN when unknown
    tx_lon_deg: np.ndarray  # [N] float64, NaN when unknown
    tx_power_dbm: np.ndarray  # [N] float32, NaN when unknown
    split: np.ndarray  # [N] int8, SPLIT_CODES
    #: Optional per-receiver spectrograms [N, R, C, 128, 32] (float16, dB), kind "iq" only.
    spectrogram: np.ndarray | None = None
    #: Optional per-link terrain features [N, R] of datasets simulated over a DEM: no terrain
    #: above the antenna-to-antenna line (bool), ridges crossing it (int16), Deygout loss (dB).
    line_of_sight: np.ndarray | None = None
    obstructions: np.ndarray | None = None
    diffraction_loss_db: np.ndarray | None = None
    #: Optional [N] float64 time of each transmission, seconds since 1970-01-01 (NaN when
    #: unknown): UTC when the file's timestamps carried an offset, else its wall-clock time.
    #: Measured datasets whose file gave timestamps carry it.
    timestamp_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.sample_id.shape[0]
        r = self.rx_id.shape[1] if self.rx_id.ndim == 2 else -1
        expected = {
            "rx_position_m": (n, r, 3),
            "rx_id": (n, r),
            "rss_dbm": (n, r),
            "snr_db": (n, r),
            "heard": (n, r),
            "present": (n, r),
            "tx_position_m": (n, 2),
            "tx_lat_deg": (n,),
            "tx_lon_deg": (n,),
            "tx_power_dbm": (n,),
            "split": (n,),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise InputError(f"sample field {name} has shape {actual}, expected {shape}")
        if self.spectrogram is not None and (self.spectrogram.ndim != 5 or self.spectrogram.shape[:2] != (n, r)):
            raise InputError(f"spectrogram has shape {self.spectrogram.shape}, expected ({n}, {r}, C, mels, frames)")
        for name in ("line_of_sight", "obstructions", "diffraction_loss_db"):
            value = getattr(self, name)
            if value is not None and value.shape != (n, r):
                raise InputError(f"sample field {name} has shape {value.shape}, expected {(n, r)}")
        if self.timestamp_s is not None and self.timestamp_s.shape != (n,):
            raise InputError(f"sample field timestamp_s has shape {self.timestamp_s.shape}, expected ({n},)")
        if np.any(self.heard & ~self.present):
            raise InputError("a receiver is marked heard but not present")
        heard_rss = self.rss_dbm[self.heard]
        if not np.all(np.isfinite(heard_rss)):
            raise InputError("rss_dbm is not finite for a receiver marked heard")

    def __len__(self) -> int:
        return int(self.sample_id.shape[0])

    @property
    def num_receivers(self) -> int:
        """R, the padded receiver axis."""
        return int(self.rx_id.shape[1])

    def to_dict(self) -> dict[str, np.ndarray]:
        """Field name -> array (optional fields only when present)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> SampleArrays:
        """Build from a mapping holding every field (extra keys are ignored)."""
        missing = [f.name for f in fields(cls) if f.name not in arrays and f.name not in _OPTIONAL]
        if missing:
            raise InputError(f"sample arrays missing fields: {', '.join(missing)}")
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls) if f.name in arrays})

    @classmethod
    def from_fixed_receivers(
        cls, receiver_m: np.ndarray, tx_m: np.ndarray, rss_dbm: np.ndarray, heard: np.ndarray,
        present: np.ndarray | None = None,
    ) -> SampleArrays:
        """Transmissions from known places `tx_m` [N,2] (m) read by one fixed set of receivers
        at `receiver_m` [S,2] (m, on the ground; ids 0..S-1): `rss_dbm` [N,S] (dBm; ignored where
        not `heard`), `heard` [N,S], `present` [N,S] (default: every receiver listening). No SNR,
        latitude/longitude or transmit power: a measured campaign in local coordinates."""
        n, s = rss_dbm.shape
        position = np.concatenate([np.broadcast_to(receiver_m[None, :, :2], (n, s, 2)), np.zeros((n, s, 1))], axis=2)
        return cls(
            sample_id=np.arange(n, dtype=np.int64), rx_position_m=position.astype(np.float32),
            rx_id=np.broadcast_to(np.arange(s), (n, s)).copy(), rss_dbm=rss_dbm.astype(np.float32),
            snr_db=np.full((n, s), np.nan, np.float32), heard=heard.astype(bool),
            present=np.ones((n, s), dtype=bool) if present is None else present.astype(bool),
            tx_position_m=tx_m.astype(np.float32), tx_lat_deg=np.full(n, np.nan), tx_lon_deg=np.full(n, np.nan),
            tx_power_dbm=np.full(n, np.nan, np.float32), split=np.zeros(n, np.int8),
        )

    def select(self, index: np.ndarray) -> SampleArrays:
        """The samples at `index` (boolean mask or integer indices)."""
        return SampleArrays(**{k: v[index] for k, v in self.to_dict().items()})

    def split_subset(self, name: str) -> SampleArrays:
        """Samples of split `name` ('train', 'val', 'test'; 'all' keeps everything)."""
        if name == "all":
            return self
        if name not in SPLIT_CODES:
            raise InputError(f"unknown split {name!r}; expected train, val, test or all")
        return self.select(self.split == SPLIT_CODES[name])

    @staticmethod
    def concatenate(parts: list[SampleArrays]) -> SampleArrays:
        """Concatenate along the sample axis (all parts must share R)."""
        if not parts:
            raise InputError("nothing to concatenate")
        keys = set.intersection(*(set(p.to_dict()) for p in parts))
        return SampleArrays(**{k: np.concatenate([p.to_dict()[k] for p in parts]) for k in keys})

"""IQ recordings <-> samples: SigMF export of a dataset, and samples from recordings.

A directory of `*.sigmf-meta` files is one transmission heard by several receivers; a
directory of such directories is several transmissions (the layout `datasets export
--format sigmf` writes: `DIR/<sample_id>/<receiver_id>.sigmf-meta|.sigmf-data`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataclasses import replace

from heimdall.data.layout import UNKNOWN_STATION, SampleArrays
from heimdall.data.measured import MeasuredSplitMode, assign_measured_splits, network_from_measurements
from heimdall.data.measurements import MeasurementTable
from heimdall.data.shards import DatasetManifest, DatasetReader, DatasetWriter
from heimdall.data.sigmf import Recording, read_recording_set, write_recording
from heimdall.errors import DataError, InputError, NotFoundError
from heimdall.features import iq_features
from heimdall.geo import ReferencePoint, enu_to_geodetic, geodetic_to_enu, ground_to_local
from heimdall.sim.signals import WaveformConfig
from heimdall.storage.artifacts import ArtifactStore

__all__ = ["export_sigmf", "recording_sets", "samples_from_recordings", "write_recordings_dataset"]

#: Samples per shard of an imported recordings dataset (~30 MB of float16 spectrograms).
_SHARD_SAMPLES = 1024

#: IQ samples one spectrogram needs: n_fft + 31 hops of 512 (32 frames).
RECORDING_SAMPLES = WaveformConfig().num_samples


def export_sigmf(reader: DatasetReader, directory: Path, split: str, limit: int) -> dict[str, int]:
    """Write the kept raw IQ of up to `limit` samples of `split` as SigMF, truth in the metadata."""
    if reader.manifest.kind != "iq":
        raise InputError(f"dataset {reader.name!r} is of kind {reader.manifest.kind}; SigMF export needs kind iq")
    iq_path = reader.directory / "iq.npy"
    if not iq_path.is_file():
        raise DataError(f"dataset {reader.name!r} kept no raw IQ (generate with keep_iq > 0)")
    iq = np.load(iq_path, mmap_mode="r")
    samples = reader.load("all")
    order = np.argsort(samples.sample_id)
    samples = samples.select(order[: len(iq)])
    chosen = np.flatnonzero(samples.split == {"train": 0, "val": 1, "test": 2}.get(split, -1)) if split != "all" else np.arange(len(samples))
    chosen = chosen[:limit]
    if chosen.size == 0:
        raise DataError(f"dataset {reader.name!r} kept no raw IQ for split {split!r}")
    reference = reader.manifest.reference
    station_ids = reader.manifest.station_ids
    rate = float(reader.manifest.scenario["iq"]["sample_rate_hz"])
    files = 0
    for index in chosen:
        sample_dir = Path(directory) / str(int(samples.sample_id[index]))
        for slot in np.flatnonzero(samples.present[index]):
            east, north, up = samples.rx_position_m[index, slot].astype(np.float64)
            lat, lon, alt = enu_to_geodetic(east, north, up, reference)
            write_recording(
                sample_dir,
                station_ids[int(samples.rx_id[index, slot])],
                Recording(
                    receiver_id=station_ids[int(samples.rx_id[index, slot])],
                    rx_lat_deg=float(lat),
                    rx_lon_deg=float(lon),
                    rx_alt_m=float(alt),
                    sample_rate_hz=rate,
                    frequency_hz=reader.manifest.frequency_hz,
                    datetime=None,
                    iq=np.asarray(iq[index, slot]),
                    tx_lat_deg=float(samples.tx_lat_deg[index]),
                    tx_lon_deg=float(samples.tx_lon_deg[index]),
                    sample_id=str(int(samples.sample_id[index])),
                ),
            )
            files += 1
    return {"samples": int(chosen.size), "recordings": files}


def recording_sets(directory: Path) -> list[tuple[str, list[Recording]]]:
    """(sample id, recordings) per transmission found under `directory`."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(
            f"{directory} is a file, not a directory: --recordings takes a directory of "
            "<receiver_id>.sigmf-meta/.sigmf-data pairs (or one sub-directory per transmission)"
        )
    if not directory.is_dir():
        raise NotFoundError(f"recordings directory {directory} not found")
    if any(directory.glob("*.sigmf-meta")):
        return [(directory.name, read_recording_set(directory, min_samples=RECORDING_SAMPLES))]
    subdirs = sorted(p for p in directory.iterdir() if p.is_dir() and any(p.glob("*.sigmf-meta")))
    if not subdirs:
        raise InputError(f"{directory}: no .sigmf-meta recordings (here or one level down)")
    return [(p.name, read_recording_set(p, min_samples=RECORDING_SAMPLES)) for p in subdirs]


def samples_from_recordings(
    sets: list[tuple[str, list[Recording]]], reference: ReferencePoint, station_ids: list[str], min_snr_db: float = 3.0
) -> tuple[SampleArrays, list[str]]:
    """Spectrograms and IQ measurements of each transmission, in the sample layout.

    The same feature code as dataset generation (`features.iq_features`) turns the first
    `RECORDING_SAMPLES` of each recording into a mel-spectrogram and the channel power that
    stands in for RSS; a receiver hears when the detector finds the signal.
    """
    r = max(len(recs) for _, recs in sets)
    n = len(sets)
    index = {sid: i for i, sid in enumerate(station_ids)}
    rx = np.zeros((n, r, 3), dtype=np.float32)
    rx_id = np.full((n, r), UNKNOWN_STATION, dtype=np.int64)
    rss = np.full((n, r), np.nan, dtype=np.float32)
    snr = np.full((n, r), np.nan, dtype=np.float32)
    present = np.zeros((n, r), dtype=bool)
    heard = np.zeros((n, r), dtype=bool)
    spectrogram = np.zeros((n, r, 1, 128, 32), dtype=np.float16)
    for i, (_, recordings) in enumerate(sets):
        iq = np.stack([rec.iq[:RECORDING_SAMPLES] for rec in recordings])
        mel_db, measured = iq_features(iq, recordings[0].sample_rate_hz, detection_snr_db=min_snr_db)
        k = len(recordings)
        e, no, u = geodetic_to_enu(
            np.array([x.rx_lat_deg for x in recordings]), np.array([x.rx_lon_deg for x in recordings]),
            np.array([x.rx_alt_m for x in recordings]), reference,
        )
        rx[i, :k] = np.column_stack([e, no, u])
        rx_id[i, :k] = [index.get(x.receiver_id, UNKNOWN_STATION) for x in recordings]
        present[i, :k] = True
        heard[i, :k] = measured.signal_present
        rss[i, :k] = np.where(measured.signal_present, measured.channel_power_dbm, np.nan)
        snr[i, :k] = np.where(measured.signal_present, measured.snr_db, np.nan)
        spectrogram[i, :k, 0] = mel_db.astype(np.float16)
        if not heard[i].any():
            raise InputError(f"recordings of {sets[i][0]!r}: no receiver detected a signal")
    samples = SampleArrays(
        sample_id=np.arange(n, dtype=np.int64),
        rx_position_m=rx,
        rx_id=rx_id,
        rss_dbm=rss,
        snr_db=snr,
        heard=heard,
        present=present,
        tx_position_m=np.full((n, 2), np.nan, dtype=np.float32),
        tx_lat_deg=np.full(n, np.nan),
        tx_lon_deg=np.full(n, np.nan),
        tx_power_dbm=np.full(n, np.nan, dtype=np.float32),
        split=np.full(n, 2, dtype=np.int8),
        spectrogram=spectrogram,
    )
    return samples, [name for name, _ in sets]


def _check_consistent(sets: list[tuple[str, list[Recording]]]) -> None:
    """One sample rate and one centre frequency across every transmission (one dataset)."""
    first_name, first = sets[0][0], sets[0][1][0]
    for name, recordings in sets[1:]:
        rec = recordings[0]
        for field, unit in (("sample_rate_hz", "Hz"), ("frequency_hz", "Hz")):
            if getattr(rec, field) != getattr(first, field):
                raise InputError(
                    f"recordings of {name!r} ({rec.receiver_id}) and {first_name!r} ({first.receiver_id}): "
                    f"{field} differs ({getattr(rec, field)} {unit} vs {getattr(first, field)} {unit}); "
                    "one dataset needs one"
                )


def write_recordings_dataset(
    store: ArtifactStore,
    staging_root: Path,
    name: str,
    directory: Path,
    split_mode: MeasuredSplitMode = "random",
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> DatasetManifest:
    """Import a directory of SigMF transmissions (`recording_sets`) as dataset `name`, kind iq.

    Every transmission needs its truth (`heimdall:tx_lat_deg`/`tx_lon_deg`): a dataset is
    for training and evaluation; unlabelled recordings go to `localize --recordings`.
    The receiver network is built from the recordings' positions (median per receiver id,
    as for measured imports) and their centre frequency; spectrograms and measurements come
    from `samples_from_recordings`, the features `generate --kind iq` stores. Nothing is
    written until every recording has been read and checked.
    """
    sets = recording_sets(directory)
    _check_consistent(sets)
    unlabelled = [sid for sid, recs in sets if recs[0].tx_lat_deg is None]
    if unlabelled:
        shown = ", ".join(repr(s) for s in unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else "")
        raise InputError(
            f"{len(unlabelled)} of {len(sets)} transmissions in {directory} have no truth position "
            f"(heimdall:tx_lat_deg/tx_lon_deg): {shown}; a dataset needs it for training, "
            "use `localize --recordings` for unlabelled recordings"
        )
    rows = [(sid, rec) for sid, recs in sets for rec in recs]
    column = lambda f: np.array([f(rec) for _, rec in rows])  # noqa: E731
    table = MeasurementTable(
        sample_id=np.array([sid for sid, _ in rows]),
        receiver_id=column(lambda r: r.receiver_id),
        rx_lat_deg=column(lambda r: r.rx_lat_deg),
        rx_lon_deg=column(lambda r: r.rx_lon_deg),
        rx_alt_m=column(lambda r: r.rx_alt_m),
        rss_dbm=np.full(len(rows), np.nan),
        snr_db=np.full(len(rows), np.nan),
        tx_lat_deg=column(lambda r: r.tx_lat_deg),
        tx_lon_deg=column(lambda r: r.tx_lon_deg),
    )
    network = network_from_measurements(table, name, sets[0][1][0].frequency_hz)
    reference = network.reference_point()
    samples, _ = samples_from_recordings(sets, reference, list(network.ids))
    tx_lat = np.array([recs[0].tx_lat_deg for _, recs in sets])
    tx_lon = np.array([recs[0].tx_lon_deg for _, recs in sets])
    east, north = ground_to_local(tx_lat, tx_lon, reference)
    samples = replace(
        samples,
        tx_position_m=np.column_stack([east, north]).astype(np.float32),
        tx_lat_deg=tx_lat,
        tx_lon_deg=tx_lon,
    )
    samples = replace(samples, split=assign_measured_splits(samples, split_mode, seed, fractions))
    rate_hz = sets[0][1][0].sample_rate_hz
    with DatasetWriter(store, name, staging_root) as writer:
        for start in range(0, len(samples), _SHARD_SAMPLES):
            writer.write_shard(samples.select(np.arange(start, min(start + _SHARD_SAMPLES, len(samples)))))
        return writer.publish(
            network,
            reference,
            kind="iq",
            seed=seed,
            split_mode=split_mode,
            scenario={"iq": {"sample_rate_hz": rate_hz, "source": "sigmf", "transmissions": len(sets),
                             "recordings": len(rows)}},
            description=f"SigMF import of {directory.name}: {len(sets)} transmissions, {len(rows)} recordings",
        )

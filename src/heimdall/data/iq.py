"""IQ-level synthetic datasets: one physics, two outputs.

The feature-level scenario draws the transmitter, its power and every link's power and SNR;
this module turns the same draw into what each receiver records (FM waveform, oscillator
offsets, multipath, noise at the link's SNR; `sim/signals.py`) and into what training needs
(a float16 mel-spectrogram per receiver plus the measurements taken from the IQ:
channel power, SNR, frequency offset; `features.py`). Receivers "hear" when the IQ detector
says so. Raw IQ is kept for the first `keep_iq` samples only, for inspection and SigMF
export.
"""

from __future__ import annotations

import ctypes
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from heimdall.data.layout import SampleArrays
from heimdall.data.shards import DatasetManifest, DatasetWriter, plan_digest
from heimdall.data.synthetic import (
    SimulatedItem,
    SimulationPlan,
    effective_sigma_db,
    write_simulated,
)
from heimdall.errors import DataError, InputError
from heimdall.features.measurements import features_from_spectra
from heimdall.features.spectrogram import mel_bank_for_stft, stft_pass
from heimdall.processes import spawn_pool
from heimdall.sim.audio import load_audio_dir
from heimdall.sim.channel import ChannelSettings, received_iq
from heimdall.sim.generator import BLOCK_SIZE
from heimdall.sim.scenario import SimulatedBlock
from heimdall.sim.signals import WaveformConfig, transmitter_waveforms
from heimdall.storage.artifacts import ArtifactStore

__all__ = ["IQConfig", "IQSynthesis", "IQBlock", "iq_block", "iq_pool", "generate_iq_dataset"]

log = logging.getLogger(__name__)

#: Samples synthesised at once, and the unit of work of a worker process (bounds memory:
#: 64 x 7 x 17,920 complex64 = 64 MB); each has its own random stream.
_CHUNK = 64
#: The STFT of the stored spectrograms: 32 frames of 2048 bins, hop 512, 128 mel bands.
_N_FFT, _HOP, _NUM_FRAMES, _N_MELS = 2048, 512, 32, 128
#: Blocks per shard for IQ datasets (2 x 1,024 samples, ~60 MB of float16 spectrograms).
_SHARD_BLOCKS = 2


@dataclass(frozen=True)
class IQConfig:
    """Waveform and oscillator settings of an IQ dataset."""

    waveform: WaveformConfig = WaveformConfig()
    tx_offset_ppm: float = 2.5  # handheld TCXO, 1 sigma
    rx_lo_offset_ppm: float = 0.5  # receiver reference, 1 sigma
    k_factor_db: float = 3.0
    keep_iq: int = 64


@dataclass(frozen=True)
class IQSynthesis:
    """What every chunk of an IQ dataset is synthesised with: the carrier (Hz), the waveform
    and oscillator settings, and the SNR (dB) above which a receiver counts as hearing."""

    frequency_hz: float
    config: IQConfig
    min_snr_db: float


@dataclass(frozen=True)
class IQBlock:
    """IQ-derived arrays of one simulated block."""

    spectrogram: np.ndarray  # [N, R, 1, n_mels, frames] float16, dBm
    rss_dbm: np.ndarray  # [N, R] channel power measured from IQ, NaN where not heard
    snr_db: np.ndarray
    heard: np.ndarray
    signal_types: np.ndarray  # [N] str
    iq: np.ndarray | None  # [K, R, T] complex64 for the first K samples (K <= keep_iq)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: worker processes do, so results match theirs bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _iq_chunk(
    rng: np.random.Generator,
    link_power_dbm: np.ndarray,
    link_snr_db: np.ndarray,
    present: np.ndarray,
    synthesis: IQSynthesis,
    keep: int,
) -> IQBlock:
    """Synthesise and measure the IQ of the links [m, R] of up to `_CHUNK` samples."""
    config, frequency_hz = synthesis.config, synthesis.frequency_hz
    m, r = link_power_dbm.shape
    fs = config.waveform.sample_rate_hz
    tx_iq, signal_types = transmitter_waveforms(rng, m, config.waveform)
    tx_offset = rng.normal(0.0, config.tx_offset_ppm * 1e-6 * frequency_hz, m)
    rx_offset = rng.normal(0.0, config.rx_lo_offset_ppm * 1e-6 * frequency_hz, (m, r))
    channel = ChannelSettings(fs, tx_offset_hz=tx_offset, rx_lo_offset_hz=rx_offset, k_factor_db=config.k_factor_db)
    received = received_iq(rng, tx_iq, link_power_dbm, link_snr_db, channel)
    # Each transmission goes from channel to spectra while its IQ is still in cache; the
    # measurements are then taken for the whole chunk at once.
    num_samples = config.waveform.num_samples
    bank = mel_bank_for_stft(_N_FFT, fs, _N_MELS, 0.0, None)
    # Offline receivers record nothing: no spectra (their rows stay a flat 1 mW, never used).
    mel = torch.ones((m, r, _NUM_FRAMES, _N_MELS))
    mean_power = torch.ones((m, r, _N_FFT))
    kept = np.empty((min(keep, m), r, num_samples), dtype=np.complex64)
    for i, iq in enumerate(received):
        if present[i].all():
            stft_pass(iq, _N_FFT, _HOP, _NUM_FRAMES, bank, mel_out=mel[i], mean_out=mean_power[i])
        elif present[i].any():
            online = torch.from_numpy(np.flatnonzero(present[i]))
            mel[i, online], mean_power[i, online], _ = stft_pass(iq[online], _N_FFT, _HOP, _NUM_FRAMES, bank)
        if i < len(kept):
            kept[i] = iq.numpy()
    mel_db, measured = features_from_spectra(mel, mean_power, fs, detection_snr_db=synthesis.min_snr_db)
    mel_db[~present] = 0.0
    detected = present & measured.signal_present
    return IQBlock(
        # torch converts to float16 several times faster than numpy does.
        spectrogram=torch.from_numpy(mel_db).half().numpy()[:, :, None],
        rss_dbm=np.where(detected, measured.channel_power_dbm, np.nan).astype(np.float32),
        snr_db=np.where(detected, measured.snr_db, np.nan).astype(np.float32),
        heard=detected,
        signal_types=signal_types,
        iq=kept if len(kept) else None,
    )


def _keep_freed_memory() -> None:
    """Have glibc keep freed blocks of up to 32 MB for reuse instead of returning them.

    The synthesis frees and reallocates buffers of a few MB per transmission; handed back to
    the kernel each time, every reuse costs fresh page faults (measured with glibc's
    MALLOC_MMAP_THRESHOLD_: 6 % of a whole chunk's time, and up to 3x on the STFT loop
    alone). Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 256 << 20)


def _init_worker() -> None:
    torch.set_num_threads(1)
    _keep_freed_memory()


def iq_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for `iq_block`, one torch thread each (`processes.spawn_pool`)."""
    return spawn_pool(workers, _init_worker)


_Pending = list[Future[IQBlock]] | list[IQBlock]


def _submit(
    rng: np.random.Generator, block: SimulatedBlock, synthesis: IQSynthesis, keep: int, pool: Executor | None
) -> _Pending:
    """Start `iq_block`'s chunks in `pool` (futures), or compute them here without one."""
    n = len(block.link_power_dbm)
    starts = list(range(0, n, _CHUNK))
    rngs = rng.spawn(len(starts))
    args = [
        (g, block.link_power_dbm[s : s + _CHUNK], block.link_snr_db[s : s + _CHUNK], block.present[s : s + _CHUNK],
         synthesis, max(keep - s, 0))
        for g, s in zip(rngs, starts)
    ]  # fmt: skip
    if pool is None:
        with _one_torch_thread():
            return [_iq_chunk(*a) for a in args]
    return [pool.submit(_iq_chunk, *a) for a in args]


def _collect(parts: _Pending) -> IQBlock:
    """The block of `_submit`'s chunks, once they are done."""
    try:
        chunks = [p.result() if isinstance(p, Future) else p for p in parts]
    except BrokenProcessPool as exc:
        # A worker killed (OOM, kill -9): nothing of this block is written; --resume continues.
        raise DataError(f"an IQ worker process died ({exc}); rerun the same command with --resume") from exc
    kept = [c.iq for c in chunks if c.iq is not None]
    return IQBlock(
        spectrogram=np.concatenate([c.spectrogram for c in chunks]),
        rss_dbm=np.concatenate([c.rss_dbm for c in chunks]),
        snr_db=np.concatenate([c.snr_db for c in chunks]),
        heard=np.concatenate([c.heard for c in chunks]),
        signal_types=np.concatenate([c.signal_types for c in chunks]),
        iq=np.concatenate(kept) if kept else None,
    )


def iq_block(
    rng: np.random.Generator, block: SimulatedBlock, synthesis: IQSynthesis, keep: int, pool: Executor | None = None
) -> IQBlock:
    """Synthesise and measure the IQ of every link of `block`, in chunks of `_CHUNK` samples.

    Chunk c draws from `rng.spawn(...)[c]` and runs on one torch thread, in `pool` when one
    is given, so the bytes depend on `rng` alone, not on the pool or its size.
    """
    return _collect(_submit(rng, block, synthesis, keep, pool))


def generate_iq_dataset(
    store: ArtifactStore,
    staging_root: Path,
    name: str,
    plan: SimulationPlan,
    iq_config: IQConfig = IQConfig(),
    description: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> DatasetManifest:
    """Simulate `plan.num_samples` transmissions as IQ and publish them as dataset `name` (kind iq).

    With `plan.workers` > 1 the IQ synthesis (nearly all the work) runs in that many
    processes; the scenario draws stay in this one. The bytes do not depend on the workers.
    The run stages under `staging_root/name`; `resume` continues one that was interrupted.
    """
    network, config, num_samples, seed, workers = plan.network, plan.config, plan.num_samples, plan.seed, plan.workers
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    audio_dir = iq_config.waveform.audio_dir
    # Read (and check) the audio files before anything is written.
    library = None if audio_dir is None else load_audio_dir(audio_dir, iq_config.waveform.sample_rate_hz)
    plan = replace(plan, workers=1)  # the workers synthesise IQ; the scenario draws stay here
    synthesis = IQSynthesis(network.frequency_hz, iq_config, config.min_snr_db)
    stack = ExitStack()
    pool = iq_pool(workers) if workers > 1 else None
    if pool is not None:
        # On an error or Ctrl-C, chunks still queued are dropped rather than computed.
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    shard_types: Counter[str] = Counter()
    snr_values: list[np.ndarray] = []
    kept_iq: list[np.ndarray] = []

    def finish(first_id: int, block: SimulatedBlock, samples: SampleArrays, parts: _Pending) -> SimulatedItem:
        result = _collect(parts)
        shard_types.update(result.signal_types.tolist())
        snr_values.append(result.snr_db[result.heard])
        if result.iq is not None:
            kept_iq.append(result.iq)
            # Saved now, not at the end, so a resumed run that skips these blocks still has it.
            partial = writer.staging / "iq.npy.partial"
            with partial.open("wb") as file:
                np.save(file, np.concatenate(kept_iq))
            partial.replace(writer.staging / "iq.npy")
        samples = replace(
            samples, rss_dbm=result.rss_dbm, snr_db=result.snr_db, heard=result.heard, spectrogram=result.spectrogram
        )
        return first_id, block, samples

    def to_iq(items: Iterator[SimulatedItem]) -> Iterator[SimulatedItem]:
        # With a pool, the next block's chunks are queued before this one is collected, so
        # the workers never wait while this process writes a shard.
        in_flight: deque[tuple[int, SimulatedBlock, SampleArrays, _Pending]] = deque()
        for first_id, block, samples in items:
            # Its own stream per block: the scenario's bytes do not depend on the IQ step.
            rng = np.random.default_rng([seed, first_id // BLOCK_SIZE, 1])
            keep = max(iq_config.keep_iq - first_id, 0)
            parts = _submit(rng, block, synthesis, keep, pool)
            in_flight.append((first_id, block, samples, parts))
            if len(in_flight) > (0 if pool is None else 1):
                yield finish(*in_flight.popleft())
        while in_flight:
            yield finish(*in_flight.popleft())

    def shard_stats() -> dict[str, dict[str, int]]:
        counts = dict(shard_types)
        shard_types.clear()
        return {"signal_types": counts}

    # The waveform settings (and audio files) change the bytes too: a resume must match them.
    description_of_plan = dict(
        plan.describe("iq", _SHARD_BLOCKS),
        iq_sha256=plan_digest({"iq": asdict(iq_config), "audio": None if library is None else list(library.names)}),
    )
    with stack, DatasetWriter(store, name, staging_root, description_of_plan, resume) as writer:
        # SNRs of shards staged by an interrupted run, read back in shard order.
        for info in writer.shards:
            with np.load(writer.staging / info.file) as arrays:
                snr_values.append(arrays["snr_db"][arrays["heard"]])
        acceptance = write_simulated(writer, plan, _SHARD_BLOCKS, to_iq, progress, shard_stats)
        type_counts: Counter[str] = Counter()
        for shard in writer.shard_stats:
            type_counts.update(shard["signal_types"])
        iq_file = writer.staging / "iq.npy"
        snr = np.concatenate(snr_values)
        stats = {
            "signal_types": {k: v / num_samples for k, v in sorted(type_counts.items())},
            "snr_db_percentiles": {str(p): float(np.percentile(snr, p)) for p in (5, 25, 50, 75, 95)} if snr.size else {},
            "iq_samples_kept": int(np.load(iq_file, mmap_mode="r").shape[0]) if iq_file.is_file() else 0,
            "sample_rate_hz": iq_config.waveform.sample_rate_hz,
            "audio_files": None if library is None else list(library.names),
        }
        return writer.publish(
            network,
            network.reference_point(),
            kind="iq",
            seed=seed,
            split_mode=plan.split_mode,
            scenario=dict(config.model_dump(), iq=stats),
            acceptance_rate=acceptance,
            effective_sigma_db=effective_sigma_db(config),
            description=description,
        )

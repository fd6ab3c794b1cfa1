"""Features from complex baseband IQ: spectrograms, mel spectrograms, MFCCs, measurements.

One implementation, batched in torch, serves training (simulated IQ) and serving (recorded
IQ); every function also accepts numpy arrays and then returns numpy arrays.

Units follow `heimdall.sim.signals`: IQ samples are in sqrt(mW), so a bin's power is in mW
and the dB features are dBm. Spectra are two-sided (complex baseband has no mirror image:
a carrier above the channel centre is a different thing from one below it).

Modules: `spectrogram` (mel scale, filterbank, STFT power and mel spectrograms),
`transforms` (MFCC, normalisation, augmentation), `measurements` (power, noise floor, SNR
and frequency offset from IQ), `arrays` (numpy/torch plumbing).
"""

from heimdall.features.arrays import MAX_IQ_SAMPLES
from heimdall.features.measurements import IQMeasurements, iq_features, measure_iq
from heimdall.features.spectrogram import (
    DEFAULT_POWER_FLOOR_MW,
    hz_to_mel,
    iq_to_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    power_spectrogram,
)
from heimdall.features.transforms import (
    augment_features,
    compute_mfcc,
    dct_matrix,
    normalize_features,
)

__all__ = [
    "DEFAULT_POWER_FLOOR_MW", "MAX_IQ_SAMPLES", "hz_to_mel", "mel_to_hz", "mel_filterbank",
    "power_spectrogram", "iq_to_mel_spectrogram", "dct_matrix", "compute_mfcc",
    "normalize_features", "augment_features", "IQMeasurements", "measure_iq", "iq_features",
]  # fmt: skip

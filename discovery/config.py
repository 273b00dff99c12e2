"""Settings: frozen dataclasses, validated on creation, saved as JSON beside every model.

Each stage of the pipeline reads one config:

    FeatureConfig  -> features.py   (spectrogram settings, in seconds and Hz)
    WindowConfig   -> windowing.py  (sliding windows over feature frames, in seconds)
    SilenceConfig  -> silence.py    (energy-based silence targets)
    SegmentConfig  -> segments.py   (frame-level sound -> segments: syllables, words)
    ModelConfig    -> nn/           (layer sizes of the VAE)
    TrainConfig    -> training.py   (optimiser, loss weights, epochs)
    ClusterConfig  -> pipeline.py   (reduction and clustering of `discovery run`)

`PipelineConfig` bundles the first six, the settings a model bundle saves;
`PipelineConfig.to_json()`/`from_json()` round-trip exactly, and an unknown key or a bad value raises `ParameterError` naming it. Every
setting is checked for type (a bool is not a number; NaN and infinity are refused) and
every size has an upper bound (the `MAX_*` constants), so a typo in a config file is an
error rather than an attempt to allocate terabytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional

from discovery.errors import ParameterError

FEATURE_KINDS = ("logmel", "spectrogram")

# Upper bounds of the size settings: generous for any real use, small enough that a
# typo (an extra zero, a rate in mHz) is refused before numpy tries to allocate it.
# Sample rate, in Hz: the highest rate of common audio interfaces and bat detectors.
MAX_SAMPLE_RATE = 384_000
# FFT size and frame length, in samples: 4.1 s at 16 kHz, 0.17 s at 384 kHz.
MAX_FFT_SIZE = 65_536
# Mel bands: far more than a spectrogram resolves usefully (speech uses 20-128).
MAX_MELS = 512
# Feature dynamic range, in dB: 24-bit audio spans 144 dB and power is floored at
# -100 dB before normalising, so a wider range only adds empty values.
MAX_DYNAMIC_RANGE_DB = 200.0
# Window length and window hop, in seconds, and window length in feature frames (one
# minute at a 10 ms hop is 6000 frames).
MAX_WINDOW_SECONDS = 60.0
MAX_WINDOW_FRAMES = 10_000
# Model layer sizes (filters, units, latent dimensions) and each side of the kernel.
MAX_LAYER_SIZE = 4096
MAX_KERNEL_SIZE = 1024
# Epochs, patience and warm-up, and windows per batch.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
# Seeds must fit numpy's 32-bit seed.
MAX_SEED = 2**32 - 1
# What older config.json files stored in `model` and `PipelineConfig` now derives.
DERIVED_MODEL_KEYS = ("input_frames", "input_features")
# Units k-means may be asked for, and HDBSCAN's smallest unit, in windows.
MAX_CLUSTERS = 10_000
MAX_MIN_CLUSTER_SIZE = 10**9

# A window is silence when the model's P(silence) is at least this: windows there are
# left out of clustering, the report and the scores call them silent, and the silence
# detector's balanced accuracy is measured at it. Its one home; every stage reads it
# from here (or from `ClusterConfig.silence_threshold`, which defaults to it).
SILENCE_THRESHOLD = 0.5
# Clustering methods and the reductions before them (see `discovery.units`).
CLUSTER_METHODS = ("hdbscan", "kmeans")
REDUCTIONS = ("umap", "pca")
# What `discovery run` gives a unit to: every window, or every segment (a contiguous
# sound: syllable, call, word); and what a segment is described by before clustering.
LEVELS = ("segments", "windows")
SEGMENT_FEATURES = ("image", "model")
# The longest segment setting, in seconds: far above any syllable or word.
MAX_SEGMENT_SECONDS = 600.0


def _fail(name: str, expected: str, value: Any) -> None:
    raise ParameterError(
        f"Invalid value for `{name}`: expected {expected}, received {value!r}."
    )


def _check_integer(name: str, value: Any, low: int, high: int) -> None:
    """An int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(name, f"an integer in [{low}, {high}]", value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive(name: str, value: Any, high: float, note: str = "") -> None:
    """A number (not a bool) in (0, high]; NaN and infinity fail the comparisons."""
    if not _is_number(value) or not 0 < value <= high:
        _fail(name, f"a number in (0, {high:g}]{note}", value)


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        low <= value <= high
    ):
        _fail(name, f"a number in [{low}, {high}]", value)


class _Config:
    """JSON round trip shared by every config dataclass."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        if not isinstance(values, dict):
            _fail(cls.__name__, "a JSON object", values)
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ParameterError(
                f"Unknown setting `{unknown[0]}` for {cls.__name__}: "
                f"expected one of {sorted(names)}."
            )
        converted = {}
        for key, value in values.items():
            # JSON has no tuples; restore them so equality and hashing hold.
            converted[key] = tuple(value) if isinstance(value, list) else value
        return cls(**converted)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class FeatureConfig(_Config):
    """Spectrogram settings. Features are frames first: `(n_frames, n_features)`.

    Frames are not centred: frame `k` covers samples `[k * hop, k * hop + frame)`, so
    its start time is exactly `k * hop_seconds`.
    """

    # Recordings are resampled to this rate, in Hz.
    sample_rate: int = 16000
    # "logmel" (mel filter bank) or "spectrogram" (linear STFT bins).
    kind: str = "logmel"
    # Length of one analysis frame, in seconds.
    frame_seconds: float = 0.025
    # Time between frame starts, in seconds.
    hop_seconds: float = 0.010
    # FFT size in samples; None takes the next power of two >= the frame length.
    n_fft: Optional[int] = None
    # Number of mel bands (kind="logmel" only).
    n_mels: int = 64
    # Band limits, in Hz. fmax=None means the Nyquist frequency. A low fmin keeps
    # low-frequency noise (wind, hum, hydrophone flow) out of features and silence.
    fmin: float = 0.0
    fmax: Optional[float] = None
    # Normalised features span this many dB below the recording's reference level
    # (a high percentile of its frames' peak level); quieter cells are clipped to 0,
    # the reference maps to 1.
    dynamic_range_db: float = 80.0

    def __post_init__(self):
        _check_integer("sample_rate", self.sample_rate, 1, MAX_SAMPLE_RATE)
        if not isinstance(self.kind, str) or self.kind not in FEATURE_KINDS:
            _fail("kind", f"one of {list(FEATURE_KINDS)}", self.kind)
        # Frame and hop lengths are bounded in samples, where the memory goes.
        for name in ("frame_seconds", "hop_seconds"):
            _check_positive(name, getattr(self, name), MAX_FFT_SIZE / self.sample_rate,
                            f" (at most {MAX_FFT_SIZE} samples at {self.sample_rate} Hz)")
        if self.frame_length < 2:
            _fail("frame_seconds", "at least 2 samples at sample_rate", self.frame_seconds)
        if self.hop_length < 1:
            _fail("hop_seconds", "at least 1 sample at sample_rate", self.hop_seconds)
        if self.n_fft is not None:
            _check_integer("n_fft", self.n_fft, self.frame_length, MAX_FFT_SIZE)
        _check_integer("n_mels", self.n_mels, 1, MAX_MELS)
        nyquist = self.sample_rate / 2
        _check_range("fmin", self.fmin, 0.0, nyquist)
        if self.fmax is not None:
            _check_range("fmax", self.fmax, 0.0, nyquist)
            if self.fmax <= self.fmin:
                _fail("fmax", f"a frequency > fmin ({self.fmin} Hz)", self.fmax)
        _check_positive("dynamic_range_db", self.dynamic_range_db, MAX_DYNAMIC_RANGE_DB)

    @property
    def frame_length(self) -> int:
        """Frame length in samples."""
        return int(round(self.frame_seconds * self.sample_rate))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return int(round(self.hop_seconds * self.sample_rate))

    @property
    def fft_size(self) -> int:
        """The FFT size actually used, in samples."""
        if self.n_fft is not None:
            return self.n_fft
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def upper_frequency(self) -> float:
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length


@dataclasses.dataclass(frozen=True)
class WindowConfig(_Config):
    """Sliding windows over feature frames: the unit the model embeds."""

    # Length of one window, in seconds (rounded to whole feature frames).
    window_seconds: float = 0.32
    # Time between window starts, in seconds (e.g. window/2 or window/10).
    hop_seconds: float = 0.08

    def __post_init__(self):
        _check_positive("window_seconds", self.window_seconds, MAX_WINDOW_SECONDS)
        _check_positive("hop_seconds", self.hop_seconds, MAX_WINDOW_SECONDS)

    def window_length(self, features: FeatureConfig) -> int:
        """Window length in feature frames (at least 1)."""
        return max(1, int(round(self.window_seconds / features.hop_seconds)))

    def hop_length(self, features: FeatureConfig) -> int:
        """Window hop in feature frames (at least 1)."""
        return max(1, int(round(self.hop_seconds / features.hop_seconds)))


@dataclasses.dataclass(frozen=True)
class SilenceConfig(_Config):
    """Energy-based silence targets, adaptive per recording (see silence.py)."""

    # Hysteresis thresholds, as fractions of the way from the recording's noise floor
    # (0) to its loud level (1) on the dB scale of band-limited frame energy: a sound
    # must rise above `high_threshold` and lasts while it stays above `low_threshold`.
    low_threshold: float = 0.1
    high_threshold: float = 0.3
    # Percentiles of frame energy taken as the noise floor and the loud level.
    floor_percentile: float = 10.0
    loud_percentile: float = 99.0
    # Sound shorter than this is silence; silence shorter than this is sound, in s.
    min_sound_seconds: float = 0.03
    min_silence_seconds: float = 0.0
    # A window is a silence target when at most this fraction of it is sound.
    window_sound_fraction: float = 0.2

    def __post_init__(self):
        _check_range("low_threshold", self.low_threshold, 0.0, 1.0)
        _check_range("high_threshold", self.high_threshold, 0.0, 1.0)
        if self.high_threshold < self.low_threshold:
            _fail("high_threshold", f"a fraction >= low_threshold ({self.low_threshold})",
                  self.high_threshold)
        _check_range("floor_percentile", self.floor_percentile, 0.0, 100.0)
        _check_range("loud_percentile", self.loud_percentile, 0.0, 100.0)
        if self.loud_percentile <= self.floor_percentile:
            _fail("loud_percentile", f"a percentile > floor_percentile "
                  f"({self.floor_percentile})", self.loud_percentile)
        _check_range("min_sound_seconds", self.min_sound_seconds, 0.0, 10.0)
        _check_range("min_silence_seconds", self.min_silence_seconds, 0.0, 10.0)
        _check_range("window_sound_fraction", self.window_sound_fraction, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SegmentConfig(_Config):
    """Segments from the frame-level sound decision (see frontend/segments.py).

    The sound decision is the silence settings' hysteresis detector, frame by frame:
    a segment is a run of frames above the low threshold, cut at the energy minimum
    between any two parts of it that rise above the high threshold (two syllables
    joined by a soft gap are two segments). Then segments closer than
    `merge_gap_seconds` are joined (a word's stop closure), those shorter than
    `min_seconds` dropped, and those longer than `max_seconds` cut at their deepest
    energy minimum until none is (a long call or a phrase does not swamp the units).
    """

    merge_gap_seconds: float = 0.1
    min_seconds: float = 0.03
    max_seconds: float = 1.0

    def __post_init__(self):
        _check_range("merge_gap_seconds", self.merge_gap_seconds, 0.0, MAX_SEGMENT_SECONDS)
        _check_range("min_seconds", self.min_seconds, 0.0, MAX_SEGMENT_SECONDS)
        _check_positive("max_seconds", self.max_seconds, MAX_SEGMENT_SECONDS)
        if self.max_seconds < self.min_seconds:
            _fail("max_seconds", f"a number >= min_seconds ({self.min_seconds:g})",
                  self.max_seconds)


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Config):
    """Layer sizes of the conv-BiLSTM VAE (see discovery/nn).

    The input window's shape is not a setting here: `PipelineConfig.input_frames` and
    `input_features` derive it from the feature and window settings, so it cannot
    drift from them.
    """

    # Encoder: Conv2D filters and kernel (frames, features), then max-pool over all
    # features, a Bidirectional LSTM and an LSTM whose last state feeds z.
    conv_filters: int = 32
    conv_kernel: tuple = (5, 5)
    bilstm_units: int = 64
    lstm_units: int = 64
    latent_dim: int = 32
    # Decoder: z repeated over time -> LSTM -> Dense -> Conv2DTranspose.
    decoder_units: int = 64
    decoder_filters: int = 8
    # Silence head on z_mean.
    silence_units: int = 16
    # Seed of the Sampling layer's noise.
    seed: int = 0

    def __post_init__(self):
        for name in ("conv_filters", "bilstm_units", "lstm_units", "latent_dim",
                     "decoder_units", "decoder_filters", "silence_units"):
            _check_integer(name, getattr(self, name), 1, MAX_LAYER_SIZE)
        kernel = self.conv_kernel
        if (not isinstance(kernel, tuple) or len(kernel) != 2 or not all(
                isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= MAX_KERNEL_SIZE
                for k in kernel)):
            _fail("conv_kernel", f"two integers in [1, {MAX_KERNEL_SIZE}] (frames, "
                  "features)", kernel)
        _check_integer("seed", self.seed, 0, MAX_SEED)


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation settings for `discovery train`."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    # Weight of the KL term after warm-up; 0 gives the plain autoencoder.
    beta: float = 0.01
    # Epochs over which beta rises linearly from 0 to `beta`.
    beta_warmup_epochs: int = 5
    # Weight of the silence cross-entropy.
    silence_weight: float = 1.0
    # Fraction of recordings held out for validation (early stopping).
    validation_fraction: float = 0.1
    # Epochs without validation improvement before stopping.
    patience: int = 5
    seed: int = 0
    # Largest frequency warp of each training window (nn/augment.py): voices the data
    # does not hold; 0 trains on the windows as they are.
    warp: float = 0.0

    def __post_init__(self):
        _check_integer("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_integer("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        # Adam diverges long before a step of 1.
        _check_positive("learning_rate", self.learning_rate, 1.0)
        _check_range("beta", self.beta, 0.0, 1e6)
        _check_integer("beta_warmup_epochs", self.beta_warmup_epochs, 0, MAX_EPOCHS)
        _check_range("silence_weight", self.silence_weight, 0.0, 1e6)
        _check_range("validation_fraction", self.validation_fraction, 0.0, 0.9)
        _check_integer("patience", self.patience, 1, MAX_EPOCHS)
        _check_integer("seed", self.seed, 0, MAX_SEED)
        _check_range("warp", self.warp, 0.0, 0.5)


@dataclasses.dataclass(frozen=True)
class SiameseConfig(_Config):
    """Settings of the Siamese stage, `discovery tune` (see discovery/tuning.py).

    Mining (discovery/mining.py): each segment is compared by DTW with its
    `n_candidates` nearest segments of other recordings, and a pair is kept when each
    is among the other's `mutual_top` cheapest. Fine-tuning (nn/siamese.py): `epochs`
    of `steps_per_epoch` batches, each `pair_batch_size` aligned window pairs (InfoNCE
    at `temperature`, weighted by `siamese_weight`, the second window's frequency axis
    warped by up to `warp`) and `batch_size` ordinary windows (the VAE's own loss).
    `stretch` (time axis, another speaking rate) and `level` (a smooth curve over the
    bands, another microphone) add augmentations; `augment_both` draws them for the
    first window too. Both were measured and are off (docs/models.md). `mask_linked`
    leaves pairs that the mining linked (one connected component of the pair graph,
    likely one sound) out of each other's negatives. Each of `cross_voice_rounds`
    further rounds mines pairs again with the encoder tuned so far, only between
    recordings of different voices (at most `max_voices` clusters), and trains
    `cross_voice_epochs` more epochs on those and the first pairs; 0 epochs skips
    them.
    """

    n_candidates: int = 20
    mutual_top: int = 10
    path_step: int = 2
    epochs: int = 9
    steps_per_epoch: int = 150
    pair_batch_size: int = 128
    batch_size: int = 64
    learning_rate: float = 5e-4
    # "infonce" or "correspondence" (see nn/siamese.py).
    objective: str = "infonce"
    siamese_weight: float = 10.0
    temperature: float = 0.1
    warp: float = 0.1
    stretch: float = 0.0
    level: float = 0.0
    augment_both: bool = False
    mask_linked: bool = True
    cross_voice_epochs: int = 3
    cross_voice_rounds: int = 1
    max_voices: int = 8
    # Share of the mined pairs held out to score the stage each epoch.
    validation_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        _check_integer("n_candidates", self.n_candidates, 1, 10_000)
        _check_integer("mutual_top", self.mutual_top, 1, 10_000)
        _check_integer("path_step", self.path_step, 1, 10_000)
        _check_integer("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_integer("cross_voice_epochs", self.cross_voice_epochs, 0, MAX_EPOCHS)
        _check_integer("cross_voice_rounds", self.cross_voice_rounds, 1, 100)
        _check_integer("max_voices", self.max_voices, 2, 10_000)
        _check_integer("steps_per_epoch", self.steps_per_epoch, 1, 1_000_000)
        # InfoNCE needs another pair in the batch to push away.
        _check_integer("pair_batch_size", self.pair_batch_size, 2, MAX_BATCH_SIZE)
        _check_integer("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_positive("learning_rate", self.learning_rate, 1.0)
        if self.objective not in ("infonce", "correspondence"):
            _fail("objective", "'infonce' or 'correspondence'", self.objective)
        _check_range("siamese_weight", self.siamese_weight, 0.0, 1e6)
        _check_positive("temperature", self.temperature, 100.0)
        _check_range("warp", self.warp, 0.0, 0.5)
        _check_range("stretch", self.stretch, 0.0, 0.5)
        _check_range("level", self.level, 0.0, 0.5)
        for name in ("augment_both", "mask_linked"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, "true or false", getattr(self, name))
        _check_range("validation_fraction", self.validation_fraction, 0.0, 0.9)
        _check_integer("seed", self.seed, 0, MAX_SEED)


@dataclasses.dataclass(frozen=True)
class PipelineConfig(_Config):
    """Everything a model bundle needs to reproduce its inputs."""

    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    windows: WindowConfig = dataclasses.field(default_factory=WindowConfig)
    silence: SilenceConfig = dataclasses.field(default_factory=SilenceConfig)
    segments: SegmentConfig = dataclasses.field(default_factory=SegmentConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    _SECTIONS = {
        "features": FeatureConfig,
        "windows": WindowConfig,
        "silence": SilenceConfig,
        "segments": SegmentConfig,
        "model": ModelConfig,
        "training": TrainConfig,
    }

    def __post_init__(self):
        for name, cls in self._SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                _fail(name, f"a {cls.__name__}", getattr(self, name))
        # A hop between frames would be rounded to one silently (0.02 s over 8 ms
        # frames gave 16 ms windows apart): ask for a whole number of frames instead.
        frame_hop = self.features.hop_seconds
        hops = self.windows.hop_seconds / frame_hop
        if abs(hops - round(hops)) > 1e-6 or round(hops) < 1:
            below = max(1, int(hops)) * frame_hop
            _fail("windows.hop_seconds",
                  f"a whole number of feature hops ({frame_hop:g} s), e.g. {below:g} or "
                  f"{below + frame_hop:g}", self.windows.hop_seconds)
        frames = self.windows.window_length(self.features)
        if frames > MAX_WINDOW_FRAMES:
            _fail("windows.window_seconds", f"at most {MAX_WINDOW_FRAMES} feature frames "
                  f"({MAX_WINDOW_FRAMES * frame_hop:g} s at a {frame_hop:g} s hop)",
                  self.windows.window_seconds)
        if feature_count(self.features) < 1:
            _fail("features", "settings that give at least one feature column (a band "
                  "[fmin, fmax] holding at least one frequency bin)", self.features)

    @property
    def input_frames(self) -> int:
        """The model's input window length, in feature frames."""
        return self.windows.window_length(self.features)

    @property
    def input_features(self) -> int:
        """The model's input features per frame."""
        return feature_count(self.features)

    @classmethod
    def from_dict(cls, values: dict) -> "PipelineConfig":
        if not isinstance(values, dict):
            _fail("config", "a JSON object", values)
        unknown = sorted(set(values) - set(cls._SECTIONS) - {"versions"})
        if unknown:
            raise ParameterError(
                f"Unknown config section `{unknown[0]}`: expected one of "
                f"{sorted(cls._SECTIONS)}."
            )
        model = values.get("model", {})
        # Bundles written before the input shape was derived store it in `model`: read
        # it, and refuse a file whose stored shape is not the one its settings give.
        stored = {key: model[key] for key in DERIVED_MODEL_KEYS
                  if isinstance(model, dict) and key in model}
        if stored:
            values = dict(values, model={k: v for k, v in model.items()
                                         if k not in DERIVED_MODEL_KEYS})
        sections = {name: section.from_dict(values.get(name, {}))
                    for name, section in cls._SECTIONS.items()}
        config = cls(**sections)
        for key, value in stored.items():
            derived = getattr(config, key)
            if value != derived:
                _fail(f"model.{key}", f"{derived}, what the feature and window settings "
                      "give", value)
        return config

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PipelineConfig":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ParameterError(f"Invalid config JSON: {error}.") from None
        return cls.from_dict(values)


@dataclasses.dataclass(frozen=True)
class ClusterConfig(_Config):
    """Settings of the clustering stage of `discovery run` (`pipeline.discover`).

    Not saved in a model bundle: the same embeddings can be clustered many ways. A
    setting the chosen method ignores is refused rather than recorded.
    """

    # "hdbscan" (density-based discovery: finds the number of units) or "kmeans".
    method: str = "hdbscan"
    # k for k-means (k-means only); None chooses it by silhouette.
    n_clusters: Optional[int] = None
    # HDBSCAN's smallest unit, in windows (HDBSCAN only); None picks it from the number
    # of windows.
    min_cluster_size: Optional[int] = None
    # "umap" or "pca": the reduction before clustering, and the dimensions it keeps
    # (None keeps them all).
    reduction: str = "umap"
    n_components: Optional[int] = 10
    # Windows at least this likely to be silence are left out.
    silence_threshold: float = SILENCE_THRESHOLD
    seed: int = 0
    # "segments": one unit per segment (syllable, call, word), the default: it scores
    # best on the shared speech and finch recordings (docs/benchmarks.md); "windows":
    # one unit per window, runs merged into occurrences.
    level: str = "segments"
    # Segments only: "image", the segment's features resized to the model's window
    # length (AVGN's and AVA's fixed-size spectrogram), or "model", the mean of the
    # model's embeddings of the windows centred nearest the segment's centre.
    segment_features: str = "image"

    def __post_init__(self):
        if self.level not in LEVELS:
            _fail("level", f"one of {LEVELS}", self.level)
        if self.segment_features not in SEGMENT_FEATURES:
            _fail("segment_features", f"one of {SEGMENT_FEATURES}", self.segment_features)
        if self.method not in CLUSTER_METHODS:
            _fail("method", f"one of {CLUSTER_METHODS}", self.method)
        if self.reduction not in REDUCTIONS:
            _fail("reduction", f"one of {REDUCTIONS}", self.reduction)
        if self.n_clusters is not None:
            if self.method != "kmeans":
                raise ParameterError(
                    f"Invalid value for `n_clusters` (--clusters): it sets k-means' k and "
                    f"does not apply to method {self.method!r}, received "
                    f"{self.n_clusters!r}.")
            _check_integer("n_clusters", self.n_clusters, 2, MAX_CLUSTERS)
        if self.min_cluster_size is not None:
            if self.method != "hdbscan":
                raise ParameterError(
                    f"Invalid value for `min_cluster_size` (--min-cluster-size): it "
                    f"applies to HDBSCAN only, not to method {self.method!r}, received "
                    f"{self.min_cluster_size!r}.")
            _check_integer("min_cluster_size", self.min_cluster_size, 2,
                           MAX_MIN_CLUSTER_SIZE)
        if self.n_components is not None:
            _check_integer("n_components", self.n_components, 1, MAX_LAYER_SIZE)
        threshold = self.silence_threshold
        if not _is_number(threshold) or not 0 < threshold <= 1:
            _fail("silence_threshold", "a number in (0, 1]", threshold)
        _check_integer("seed", self.seed, 0, MAX_SEED)


def feature_count(features: FeatureConfig) -> int:
    """Number of feature columns `features` produces."""
    if features.kind == "logmel":
        return features.n_mels
    # Linear bins inside [fmin, fmax].
    n_bins = features.fft_size // 2 + 1
    resolution = features.sample_rate / features.fft_size
    low = int(math.ceil(features.fmin / resolution - 1e-9))
    high = int(math.floor(features.upper_frequency / resolution + 1e-9))
    return max(0, min(high, n_bins - 1) - low + 1)


# Named feature settings. "fbank26" and "seed-v4" reproduce the seed experiments:
# 26 mel filter-bank bands with 40 ms / 20 ms frames, and 256 linear bins
# (n_fft = 510) for the seed-v4 model. The FSDD recordings they used are 8 kHz.
FEATURE_PRESETS = {
    "default": FeatureConfig(),
    "fbank26": FeatureConfig(sample_rate=8000, kind="logmel", frame_seconds=0.04,
                             hop_seconds=0.02, n_mels=26),
    "seed-v4": FeatureConfig(sample_rate=8000, kind="spectrogram", frame_seconds=0.04,
                             hop_seconds=0.01, n_fft=510),
}

"""Fine-tune a trained bundle on pairs mined without labels: `discovery tune`.

    recordings -> analyse (features, windows, energy-based silence targets)
               -> segments (frontend/segments.py)
      -> mining.mine_pairs: segments of different recordings matched by DTW, and the
         frames each match's DTW path aligns
      -> a seeded share of the pairs held out; each pair's group (the pair graph's
         connected component, `MinedPairs.groups`)
      -> nn.SiameseVAE.fit: batches of windows centred on aligned frames (InfoNCE)
         whose pairs of one group are not each other's negatives, and batches of
         ordinary windows (the VAE's own loss, so the decoder and the silence
         head keep working); TensorBoard gets every loss term, the in-batch pair
         accuracy and the held-out pairs' ROC-AUC (`val_pair_roc_auc`) each epoch
      -> further rounds (`cross_voice_rounds` of `cross_voice_epochs`): the
         recordings' voices (`mining.voice_clusters`), each segment frame embedded
         by the encoder tuned so far (`frame_embeddings`), segments mined again on
         those frames only between voices, and more epochs on these and the first
         pairs (`mining.join`); each round's model under checkpoints/round-N
      -> bundle: the fine-tuned VAE under the base bundle's config.json, a model card
         that tells both stages

No label and no annotation is read: the silence targets are the energy-based ones.
`out_dir/logs` receives the TensorBoard events; `out_dir/checkpoints/mined_pairs.npz`
and `cross_voice_pairs.npz` (the last round's) the mined pairs, `round-N/` the bundle
each round but the last ended with.

A run killed part-way resumes when started again with the same `out_dir`, base,
recordings and settings (`tune_state.json` records them): the first pairs are read
back instead of mined, finished rounds are skipped (the encoder restarts from the last
`round-N/`), and the round that was cut resumes at its last finished epoch
(`backup/`). The batches drawn after a resume are not those an uninterrupted run
would have drawn, so the weights differ as two runs' do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from discovery import bundle as bundle_module
from discovery.bundle import Bundle
from discovery.config import PipelineConfig, SiameseConfig
from discovery.errors import AudioError, ParameterError
from discovery.files import Failure, for_each_file, write_text
from discovery.frontend import audio
from discovery.frontend.audio import PathLike
from discovery.frontend.recording import analyse
from discovery.frontend.segments import find_segments
from discovery.mining import MinedPairs, join, mine_pairs, voice_clusters
from discovery.training import CHECKPOINTS, prepare_out_dir, refuse_other_settings

# Held-out window pairs scored each epoch (the score's noise is about 0.01 at 2,000).
N_VALIDATION_PAIRS = 2000
MINED_FILE = "mined_pairs.npz"
# The second round's pairs, mined across voices with the tuned encoder.
CROSS_FILE = "cross_voice_pairs.npz"
# Frames embedded per forward pass when a recording's frames are embedded.
EMBED_CHUNK = 4096
# What a killed run needs to resume: its settings and recordings, the rounds finished.
STATE_FILE = "tune_state.json"
# Keras's epoch backups of the round being trained, one folder per round.
BACKUP = "backup"
# Linked pairs stop being masked when their groups would hide more than this share of
# a batch's negatives: the pair graph has then joined most segments into one group,
# which no longer tells sounds apart (on a small corpus, everything), and masking it
# would leave InfoNCE almost no negatives. The shipped model's data masked ~1/6.
MAX_MASKED_SHARE = 0.25


@dataclasses.dataclass
class TuningResult:
    """What `tune` produced.

    Attributes:
        bundle_dir: the fine-tuned bundle's folder.
        mined: the pairs mined from the recordings.
        history: every logged value per epoch.
        pair_roc_auc_before: the held-out pairs' ROC-AUC under the base model.
        failures: recordings that could not be read.
        seconds: time this call took, in seconds.
        cross: the last round's pairs, mined across voices with the tuned encoder;
            None when `cross_voice_epochs` is 0.
    """

    bundle_dir: Path
    mined: MinedPairs
    history: dict
    pair_roc_auc_before: float
    failures: List[Failure]
    seconds: float
    cross: Optional[MinedPairs] = None


def centred_windows(features: Sequence[np.ndarray], recording: np.ndarray,
                    frame: np.ndarray, length: int) -> np.ndarray:
    """Windows of `length` frames centred on `frame` of each `recording`, zero-padded
    past either end.

    Returns:
        (n, length, n_features) float32.
    """
    n_features = features[0].shape[1]
    out = np.zeros((len(frame), length, n_features), np.float32)
    for row, (r, centre) in enumerate(zip(recording, frame)):
        values = features[r]
        start = int(centre) - length // 2
        low, high = max(start, 0), min(start + length, len(values))
        if high > low:
            out[row, low - start:high - start] = values[low:high]
    return out


class TuningData(NamedTuple):
    """One recording as the Siamese stage reads it.

    Attributes:
        features: (n_frames, n_features) normalised features.
        segments: (n_segments, 2) [start, end) frame bounds.
        windows: (n_windows, T, F) the model's windows.
        silence: (n_windows,) float32 energy-based silence targets.
    """

    features: np.ndarray
    segments: np.ndarray
    windows: np.ndarray
    silence: np.ndarray


def read_recordings(paths: Sequence[Path], config: PipelineConfig, *,
                    progress: bool = True) -> tuple:
    """Each recording's features, segments, windows and energy-based silence targets.

    Returns:
        (list of (path, `TuningData`) for the readable files, failures).
    """

    def work(path: Path) -> TuningData:
        recording = analyse(path, config)
        features = recording.features
        bounds = find_segments(features.energy_db, frame_rate=config.features.frame_rate,
                               silence=config.silence, segments=config.segments,
                               digital_silence=features.digital_silence)
        return TuningData(features.values, bounds,
                          np.ascontiguousarray(recording.windows.values),
                          recording.window_silence.astype(np.float32))

    return for_each_file(paths, work, description="reading recordings", progress=progress)


def _dataset(features, frames, groups, windows, silence, settings: SiameseConfig,
             length: int):
    """Endless seeded batches of aligned window pairs (with their pairs' groups when
    `groups` is not None) and ordinary windows."""
    import tensorflow as tf

    n_features = features[0].shape[1]

    def batches():
        rng = np.random.default_rng(settings.seed)
        while True:
            rows = frames[rng.integers(len(frames), size=settings.pair_batch_size)]
            chosen = rng.integers(len(windows), size=settings.batch_size)
            batch = {"a": centred_windows(features, rows[:, 1], rows[:, 2], length),
                     "b": centred_windows(features, rows[:, 3], rows[:, 4], length),
                     "windows": windows[chosen], "silence": silence[chosen]}
            if groups is not None:
                batch["group"] = groups[rows[:, 0]]
            yield batch

    def spec(n, *shape, dtype=tf.float32):
        return tf.TensorSpec((n,) + shape, dtype)

    signature = {"a": spec(settings.pair_batch_size, length, n_features),
                 "b": spec(settings.pair_batch_size, length, n_features),
                 "windows": spec(settings.batch_size, length, n_features),
                 "silence": spec(settings.batch_size)}
    if groups is not None:
        signature["group"] = spec(settings.pair_batch_size, dtype=tf.int64)
    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)


def _validation_dataset(batches: dict, batch_size: int):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(batches).batch(batch_size)


def _split(mined: MinedPairs, settings: SiameseConfig) -> tuple:
    """Aligned-frame rows of the training pairs, and of the held-out pairs."""
    n_held = int(round(settings.validation_fraction * len(mined)))
    held = np.random.default_rng(settings.seed).permutation(len(mined))[:n_held]
    is_held = np.isin(mined.frames[:, 0], held)
    return mined.frames[~is_held], mined.frames[is_held]


def masked_share(groups: np.ndarray) -> float:
    """The share of a batch's negatives that masking linked pairs hides: the chance
    that two pairs drawn at random share a group."""
    if not len(groups):
        return 0.0
    return float(np.sum((np.bincount(groups) / len(groups)) ** 2))


def _objective(settings: SiameseConfig) -> str:
    if settings.objective == "infonce":
        linked = (", pairs the mining linked not each other's negatives"
                  if settings.mask_linked else "")
        return f"InfoNCE at temperature {settings.temperature}{linked}"
    return "the correspondence objective (each window decoded into its partner)"


def _augmentation(settings: SiameseConfig) -> str:
    sides = "both windows" if settings.augment_both else "the partner"
    parts = [f"frequency warp up to {settings.warp}"]
    if settings.stretch:
        parts.append(f"time stretch up to {settings.stretch}")
    if settings.level:
        parts.append(f"band levels up to {settings.level}")
    return f"{', '.join(parts)} ({sides})"


def tuning_card(base_card: str, *, settings: SiameseConfig, inputs: Sequence[PathLike],
                mined: MinedPairs, history: dict, before: float, seconds: float,
                command: str, cross: Optional[MinedPairs] = None, runs: int = 1,
                unmasked: Optional[dict] = None) -> str:
    """The base bundle's model card with a section on the Siamese stage; `unmasked`
    maps the rounds trained without masking linked pairs to the share of negatives
    it would have hidden."""
    lines = ["", "## Siamese stage (`discovery tune`)", "",
             f"- Command: `{command}`",
             f"- Data: {', '.join(str(p) for p in inputs)}; no label or annotation read.",
             f"- Mined: {len(mined)} segment pairs of different recordings among "
             f"{len(mined.segments)} segments, {len(mined.frames)} aligned frames "
             f"(DTW on cepstra; mutual top {settings.mutual_top} of "
             f"{settings.n_candidates} candidates).",
             f"- Fine-tuning: {settings.epochs} epochs of {settings.steps_per_epoch} "
             f"steps; {settings.pair_batch_size} pairs and {settings.batch_size} windows "
             f"per step; {_objective(settings)}, weight "
             f"{settings.siamese_weight}; {_augmentation(settings)}; learning "
             f"rate {settings.learning_rate}; seed {settings.seed}; time: {seconds:.0f} s"
             f"{f' over {runs} runs (resumed after a kill)' if runs > 1 else ''}.",
             ]
    if cross is not None:
        rounds = settings.cross_voice_rounds
        lines.append(
            f"- {'Second round' if rounds == 1 else f'{rounds} more rounds'}: "
            f"segment pairs mined again across voices (recordings grouped by their "
            f"long-term cepstra, at most {settings.max_voices} voices) with the tuned "
            f"encoder's frames, {settings.cross_voice_epochs} more epochs on them and "
            f"the first pairs{' each round' if rounds > 1 else ''}; "
            f"{'its' if rounds == 1 else 'the last'} pairs: {len(cross)}, "
            f"{len(cross.frames)} aligned frames.")
    if unmasked and settings.mask_linked and settings.objective == "infonce":
        shares = ", ".join(f"round {number}: {share:.0%}"
                           for number, share in sorted(unmasked.items(),
                                                       key=lambda item: int(item[0])))
        lines.append(f"- Linked pairs not masked in some rounds: their groups would have "
                     f"hidden more than {MAX_MASKED_SHARE:.0%} of the negatives "
                     f"({shares}).")
    if "val_pair_roc_auc" in history:
        lines.append(f"- Held-out pairs' ROC-AUC: {before:.3f} before, "
                     f"{history['val_pair_roc_auc'][-1]:.3f} after.")
    lines += ["", "| metric (last epoch) | value |", "|---|---|"]
    lines += [f"| {name} | {values[-1]:.4f} |" for name, values in sorted(history.items())]
    text = base_card.rstrip("\n")
    marker = "\n## Siamese stage"
    if marker in text:  # a bundle tuned again keeps one section, the newest
        text = text[:text.index(marker)].rstrip("\n")
    return text + "\n" + "\n".join(lines) + "\n"


def frame_embeddings(vae, features: Sequence[np.ndarray],
                     segments: Optional[Sequence[np.ndarray]] = None, *,
                     progress: bool = False) -> List[np.ndarray]:
    """Each recording's frames as the encoder sees them: the embedding (`z_mean`) of
    the window centred on each frame, in chunks so that a long recording's windows
    never sit in memory at once.

    Args:
        vae: the model whose encoder embeds.
        features: one (n_frames, n_features) array per recording.
        segments: one (n_segments, 2) array of [start, end) frame bounds per
            recording, or None. When given, only frames inside a segment are
            embedded (all that mining reads) and the rest are left zero.
        progress: bool. Show a progress bar over recordings. Defaults to False.

    Returns:
        one (n_frames, latent_dim) float32 array per recording.
    """
    out = []
    for index, values in enumerate(tqdm(features, unit="recording", disable=not progress,
                                        desc="embedding frames")):
        if segments is None:
            frames = np.arange(len(values))
        else:
            inside = np.zeros(len(values), bool)
            for start, end in np.asarray(segments[index]).reshape(-1, 2):
                inside[start:end] = True
            frames = np.flatnonzero(inside)
        embedded = np.zeros((len(values), vae.latent_dim), np.float32)
        for start in range(0, len(frames), EMBED_CHUNK):
            chunk = frames[start:start + EMBED_CHUNK]
            windows = centred_windows(features, np.full(len(chunk), index), chunk,
                                      vae.input_frames)
            embedded[chunk] = vae.embed(windows).z_mean
        out.append(embedded)
    return out


def mine_across_voices(vae, features: Sequence[np.ndarray],
                       segments: Sequence[np.ndarray], settings: SiameseConfig, *,
                       voices: Optional[np.ndarray] = None,
                       progress: bool = False) -> tuple:
    """A round's mining across voices: segments matched on `vae`'s frame embeddings,
    each only with recordings of another voice.

    Args:
        voices: (n_recordings,) voice of each recording, as an earlier round found
            them; None clusters them here (`mining.voice_clusters`, seeded: they
            depend on the features alone).

    Returns:
        (`MinedPairs`, (n_recordings,) voice of each recording).
    """
    if voices is None:
        voices = voice_clusters(features, segments, max_voices=settings.max_voices,
                                seed=settings.seed)
    mined = mine_pairs(features, segments, n_candidates=settings.n_candidates,
                       mutual_top=settings.mutual_top, path_step=settings.path_step,
                       learned=frame_embeddings(vae, features, segments,
                                                progress=progress), voices=voices,
                       progress=progress)
    return mined, voices


class _Round:
    """Fits the Siamese stage on one set of mined pairs; called once per round, the
    rounds sharing the training record, the logs and the epoch count."""

    def __init__(self, features, windows, silence, length: int, out_dir: Path,
                 settings: SiameseConfig, progress: bool, after_epoch):
        self.features, self.windows, self.silence = features, windows, silence
        self.length, self.out_dir = length, out_dir
        self.settings, self.progress = settings, progress
        self.after_epoch = after_epoch  # called once each epoch is backed up
        self.record_path = out_dir / CHECKPOINTS / "history.json"
        self.unmasked = {}  # round number -> share masking would have hidden

    def fit(self, vae, mined: MinedPairs, groups: np.ndarray, first: int,
            last: int, number: int) -> float:
        """Fit epochs `first`..`last - 1` of round `number`, resuming from its backup
        where a killed run left one; returns the held-out pairs' ROC-AUC before."""
        import keras

        from discovery.nn.callbacks import PairSeparation, TrainingRecord
        from discovery.nn.siamese import SiameseVAE

        settings, features = self.settings, self.features
        keras.utils.set_random_seed(settings.seed + first)
        train_rows, held_rows = _split(mined, settings)
        if not len(held_rows):
            held_rows = train_rows
        held_rows = held_rows[np.random.default_rng(settings.seed).permutation(
            len(held_rows))[:N_VALIDATION_PAIRS]]
        held_a = centred_windows(features, held_rows[:, 1], held_rows[:, 2], self.length)
        held_b = centred_windows(features, held_rows[:, 3], held_rows[:, 4], self.length)
        separation = PairSeparation(held_a, held_b, seed=settings.seed)
        # The held-out pairs with as many ordinary windows: every loss term as val_*.
        shown = np.random.default_rng(settings.seed).integers(len(self.windows),
                                                               size=len(held_a))
        groups = groups if settings.mask_linked else None
        share = 0.0 if groups is None else masked_share(groups[train_rows[:, 0]])
        if share > MAX_MASKED_SHARE:
            self.unmasked[number] = share
            if self.progress:
                print(f"round {number}: linked pairs are not masked: their groups would "
                      f"hide {share:.0%} of the negatives (most pairs are linked into "
                      "one group)", file=sys.stderr)
            groups = None
        held = {"a": held_a, "b": held_b, "windows": self.windows[shown],
                "silence": self.silence[shown]}
        if groups is not None:
            held["group"] = groups[held_rows[:, 0]]
        validation = _validation_dataset(held, settings.pair_batch_size)
        before = separation.score(vae)
        if self.progress:
            print(f"fine-tuning on {len(train_rows)} aligned frames, scoring "
                  f"{len(held_rows)} held out; their ROC-AUC before: {before:.3f}",
                  file=sys.stderr)
        model = SiameseVAE(vae, objective=settings.objective,
                           siamese_weight=settings.siamese_weight,
                           temperature=settings.temperature, warp=settings.warp,
                           stretch=settings.stretch, level=settings.level,
                           augment_both=settings.augment_both, seed=settings.seed)
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate))
        # Built before `fit`, as in `training.train`: one trace of the step, not two.
        model.optimizer.build(vae.trainable_weights)
        self.record = TrainingRecord(self.record_path)
        callbacks = [separation, keras.callbacks.TerminateOnNaN(), self.record,
                     keras.callbacks.TensorBoard(log_dir=str(self.out_dir / "logs"),
                                                 write_graph=False, update_freq="epoch"),
                     # Last: a backup holds an epoch only once every log has it. Kept
                     # until the round's model is saved, so no kill loses the round.
                     # A kill while the backup is written leaves the one before.
                     keras.callbacks.BackupAndRestore(
                         str(self.out_dir / CHECKPOINTS / BACKUP / f"round-{number}"),
                         double_checkpoint=True, delete_checkpoint=False),
                     keras.callbacks.LambdaCallback(
                         on_epoch_end=lambda epoch, logs: self.after_epoch())]
        data = _dataset(features, train_rows, groups, self.windows, self.silence,
                        settings, self.length)
        with contextlib.redirect_stdout(sys.stderr):
            model.fit(data, validation_data=validation, initial_epoch=first, epochs=last,
                      steps_per_epoch=settings.steps_per_epoch, callbacks=callbacks,
                      shuffle=False, verbose=2 if self.progress else 0)
        return before

    def history(self, n_epochs: int) -> dict:
        """Every logged value of the first `n_epochs` epochs, over every run."""
        try:
            epochs = json.loads(self.record_path.read_text(encoding="utf-8"))["epochs"]
        except (OSError, ValueError, KeyError, TypeError):
            epochs = []
        epochs = epochs[:n_epochs]
        return {name: [float(epoch[name]) for epoch in epochs if name in epoch]
                for name in (epochs[-1] if epochs else {}) if name != "elapsed_s"}


def _check_state(out_dir: Path, state: dict, expected: dict) -> None:
    """A killed run resumes only with the base, recordings and settings it began with."""
    for key, what in (("base", "base model"), ("recordings", "recordings")):
        if state.get(key) != expected[key]:
            shown = (f"{len(state.get(key) or [])} files, not {len(expected[key])}"
                     if key == "recordings" else
                     f"{state.get(key)!r}, not {expected[key]!r}")
            raise ParameterError(
                f"{out_dir}: holds an interrupted `tune` of other {what} ({shown}); "
                "resume it with its own, or pass --overwrite to start again.")
    if state.get("base_sha256", expected["base_sha256"]) != expected["base_sha256"]:
        raise ParameterError(
            f"{out_dir}: holds an interrupted `tune` of a base model that has changed "
            f"since (its {bundle_module.MODEL_FILE} was trained again?); pass --overwrite "
            "to start again.")
    refuse_other_settings(out_dir, "tune", state.get("settings") or {},
                          expected["settings"])


def _start_or_resume(out_dir: Path, expected: dict) -> dict:
    """The state of an interrupted run in `out_dir` (checked against `expected`), or a
    new one. `tune` writes it once the pairs are mined: a run that failed before has
    nothing to resume and binds no later run to its settings."""
    try:
        state = json.loads((out_dir / CHECKPOINTS / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if isinstance(state, dict):
        _check_state(out_dir, state, expected)
        return dict(state, runs=int(state.get("runs", 1)) + 1)
    return dict(expected, rounds=0, runs=1, seconds=0.0)


def interrupted(out_dir: PathLike) -> bool:
    """Whether `out_dir` holds a `tune` killed after its pairs were mined: started
    again on the same base, it resumes (so that base must be kept as it is)."""
    out_dir = Path(out_dir)
    return ((out_dir / CHECKPOINTS / STATE_FILE).is_file()
            and not (out_dir / bundle_module.MODEL_FILE).is_file())


def _fingerprint(base: Bundle) -> Optional[str]:
    """SHA-256 of the base's model file, or None for a bundle not read from a folder."""
    if base.path is None:
        return None
    digest = hashlib.sha256()
    with open(Path(base.path) / bundle_module.MODEL_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finished_rounds(out_dir: Path, state: dict, total: int) -> int:
    """Rounds of an interrupted run whose model was saved (`round-N/`), at most
    `total - 1`: the last round's model is the bundle itself."""
    done = int(state.get("rounds", 0))
    if not 0 <= done < total or (done and ("before" not in state or not (
            out_dir / CHECKPOINTS / f"round-{done}" / bundle_module.MODEL_FILE).is_file())):
        return 0
    return done


def tune(inputs: Sequence[PathLike], out_dir: PathLike, *, bundle=None,
         settings: SiameseConfig = SiameseConfig(), progress: bool = True,
         command: Optional[str] = None, overwrite: bool = False) -> TuningResult:
    """Fine-tune a bundle's model on pairs mined from `inputs`, and write a new bundle.

    Args:
        inputs: audio files or folders (no labels needed).
        out_dir: folder for the new bundle, `logs/` and `checkpoints/`.
        bundle: the base: a `Bundle`, a bundle folder, a shipped bundle's name, or
            None for the shipped default. It is not changed.
        settings: mining and fine-tuning settings.
        progress: bool. Show progress on stderr. Defaults to True.
        command: the command line for the model card. Defaults to None.
        overwrite: bool. Replace a bundle in `out_dir`. Defaults to False.

    Returns:
        `TuningResult`.

    Raises:
        ParameterError: `out_dir` is refused (see `training.train`).
        AudioError: no recording could be read, or no pair was found.
    """
    import keras

    started = time.perf_counter()
    base = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    out_dir = prepare_out_dir(out_dir, base.config, inputs=inputs, overwrite=overwrite)
    keras.utils.set_random_seed(settings.seed)
    paths = audio.find_audio_files(inputs)
    state = _start_or_resume(out_dir, {
        "base": None if base.path is None else str(Path(base.path).resolve()),
        "base_sha256": _fingerprint(base),
        "recordings": [str(Path(path).resolve()) for path in paths],
        "settings": json.loads(json.dumps(settings.to_dict()))})
    n_more = settings.cross_voice_rounds if settings.cross_voice_epochs else 0
    done = _finished_rounds(out_dir, state, 1 + n_more)
    # Only the round to run next may resume from a backup: any other is stale (left by
    # a run whose later rounds were lost with their checkpoint).
    for stale in (out_dir / CHECKPOINTS / BACKUP).glob("round-*"):
        if stale.name != f"round-{done + 1}":
            shutil.rmtree(stale, ignore_errors=True)
    earlier = float(state["seconds"])  # time earlier runs spent, to their last epoch

    def save_state(**values) -> None:
        state.update(values, seconds=earlier + time.perf_counter() - started)
        write_text(out_dir / CHECKPOINTS / STATE_FILE, json.dumps(state))

    results, failures = read_recordings(paths, base.config, progress=progress)
    if not results:
        raise AudioError(f"{inputs[0]}: no readable recordings to tune on.")
    features = [data.features for _, data in results]
    mined = (_mined_before(out_dir, [path for path, _ in results]) if state["runs"] > 1
             else None)
    if mined is not None:
        if progress:
            print(f"resuming an interrupted run ({done} of {1 + n_more} rounds finished); "
                  "the pairs it mined are read back", file=sys.stderr)
    else:
        if progress:
            print("mining pairs: DTW between segments of different recordings",
                  file=sys.stderr)
        mined = mine_pairs(features, [data.segments for _, data in results],
                           n_candidates=settings.n_candidates,
                           mutual_top=settings.mutual_top, path_step=settings.path_step,
                           progress=progress)
    if len(mined) < 2:
        raise AudioError(f"{inputs[0]}: found {len(mined)} matching segment pairs across "
                         f"{len(results)} recordings; the Siamese stage needs recordings "
                         "that repeat their sounds (at least two pairs).")
    mined.save(out_dir / CHECKPOINTS / MINED_FILE, [path for path, _ in results])
    save_state()
    windows = np.concatenate([data.windows for _, data in results])
    silence = np.concatenate([data.silence for _, data in results])
    vae = base.model
    rounds = _Round(features, windows, silence, base.config.input_frames, out_dir,
                    settings, progress, save_state)
    if progress:
        print(f"mined {len(mined)} pairs ({len(mined.frames)} aligned frames) in "
              f"{len(results)} recordings", file=sys.stderr)
    cross, voices = None, None

    def unmasked() -> dict:
        """Rounds trained without the masking, this run's and earlier runs'."""
        return {**state.get("unmasked", {}),
                **{str(number): share for number, share in rounds.unmasked.items()}}

    segments = [recording.segments for _, recording in results]
    total = 1 + n_more
    if done:  # the encoder as the last finished round left it
        vae.set_weights(Bundle.load(out_dir / CHECKPOINTS / f"round-{done}").model
                        .get_weights())
        before = float(state["before"])
    epoch = settings.epochs + max(done - 1, 0) * settings.cross_voice_epochs
    for number in range(done + 1, total + 1):
        if number == 1:
            before = rounds.fit(vae, mined, mined.groups(), 0, settings.epochs, number)
        else:
            if progress:
                print(f"round {number}: mining pairs across voices with the tuned "
                      "encoder", file=sys.stderr)
            cross, voices = mine_across_voices(vae, features, segments, settings,
                                               voices=voices, progress=progress)
            cross.save(out_dir / CHECKPOINTS / CROSS_FILE, [path for path, _ in results])
            if progress:
                print(f"{len(np.unique(voices))} voices; mined {len(cross)} pairs across "
                      f"them", file=sys.stderr)
            if not len(cross):
                break
            both, groups = join(mined, cross)
            rounds.fit(vae, both, groups, epoch, epoch + settings.cross_voice_epochs,
                       number)
            epoch += settings.cross_voice_epochs
        if number < total:
            # The model each round ended with, so rounds can be compared (`abx
            # --model`), and a killed run restarts from it.
            bundle_module.save_bundle(
                vae, base.config, out_dir / CHECKPOINTS / f"round-{number}",
                card=f"# Model card\n\n`discovery tune` after round {number} of "
                     f"{total}: an intermediate checkpoint of {out_dir}, whose card "
                     "tells the stage.\n")
            save_state(rounds=number, before=before, unmasked=unmasked())
            shutil.rmtree(out_dir / CHECKPOINTS / BACKUP / f"round-{number}",
                          ignore_errors=True)
    history = rounds.history(epoch)
    seconds = earlier + time.perf_counter() - started
    base_card = ((base.path / bundle_module.CARD_FILE).read_text(encoding="utf-8")
                 if base.path is not None and (base.path / bundle_module.CARD_FILE).is_file()
                 else "# Model card\n")
    card = tuning_card(base_card, settings=settings, inputs=inputs, mined=mined,
                       history=history, before=before, seconds=seconds,
                       command=command or "discovery.tuning.tune(...)", cross=cross,
                       runs=state["runs"], unmasked=unmasked())
    bundle_module.save_bundle(vae, base.config, out_dir, card=card)
    # Finished: nothing left to resume.
    shutil.rmtree(out_dir / CHECKPOINTS / BACKUP, ignore_errors=True)
    return TuningResult(out_dir, mined, history, before, failures, seconds, cross)


def _mined_before(out_dir: Path, recordings: Sequence[Path]) -> Optional[MinedPairs]:
    """The first pairs an interrupted run mined from these recordings, or None."""
    try:
        mined, files = MinedPairs.load(out_dir / CHECKPOINTS / MINED_FILE)
    except (OSError, ValueError, KeyError):
        return None
    same = [str(Path(name).resolve()) for name in files] == [
        str(Path(path).resolve()) for path in recordings]
    return mined if same else None

"""A run's `DiscoveryResult` (see `results.py`) -> one HTML report.

`write_html_report` writes one self-contained, offline HTML file: inline CSS, figures
as base64 PNG and audio snippets as base64 WAV data URIs, no script and no external
address, so it can be mailed or archived as it is. Sections, in order: summary,
2-D map of the windows in the clustering's own space (the run's 2-D UMAP, see
`units.maps`) with its density, unit table, per-unit galleries with playable
snippets, timelines over each recording's features, silence per recording, scores
against annotations, settings and timings.

Limits that keep the file small (a few MB for the sample data): galleries show at
most `max_examples` occurrences of at most `max_gallery_units` units; snippets last at
most `max_snippet_s` seconds at no more than 16 kHz, images their first
`GALLERY_MAX_IMAGE_S` seconds; timelines are drawn for the first
`max_timelines` recordings and their first `timeline_seconds` seconds; the map uses
at most `max_map_points` windows. The page says so wherever one of these cuts.

Memory does not grow with the audio: `RecordingInfo` holds no features, and the
report reads from each file only the spans it draws (a gallery card's occurrence and
snippet, a timeline's first seconds) with `audio.read_span`, recomputing their
features with the recording's
own settings and reference level (`features.band_power`, `to_db`, `normalize`), so
they equal the features the model saw. What it keeps is bounded by the limits above.

Every writer writes to a temporary file and renames it (`discovery.files`), so an
interrupted run never leaves a half-written output under its final name.
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile
import soxr

from discovery import __version__
from discovery.errors import AudioError, ParameterError
from discovery.frontend import audio, features
from discovery.outputs import plots
from discovery.config import SILENCE_THRESHOLD, FeatureConfig, feature_count
from discovery.files import write_text
from discovery.result import DiscoveryResult, RecordingInfo
from discovery.units.clustering import MAX_SEED, REDUCTIONS
from discovery.units.maps import MIN_MAP_POINTS, UnitMap, fit_map

# Audio snippets are resampled down to this rate when the file's rate is higher.
SNIPPET_MAX_RATE = 16000
# Peak level of normalised snippets (-1 dBFS), so quiet recordings are audible.
SNIPPET_PEAK = 0.89
# Horizontal scale of gallery images, in pixels per second.
GALLERY_PX_PER_S = 200
# Seconds per row of a timeline: long enough for context, short enough to read units.
TIMELINE_ROW_SECONDS = 20.0
# Fade in and out, in seconds, so cut snippets do not click.
SNIPPET_FADE_S = 0.005
# Gallery images show at most this many seconds of an occurrence: its start.
GALLERY_MAX_IMAGE_S = 10.0


# ---------------------------------------------------------------------------------
# HTML report
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Limits:
    """How much the report shows; see `write_html_report`."""

    max_examples: int
    snippet_padding_s: float
    max_snippet_s: float
    max_gallery_units: int
    max_timelines: int
    timeline_seconds: float
    max_map_points: int
    seed: int
    silence_threshold: float


def _escape(value) -> str:
    return html.escape(str(value), quote=True)


def _png_uri(figure, **kwargs) -> str:
    data = plots.figure_to_png_bytes(figure, **kwargs)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _format_duration(seconds: float) -> str:
    """`5.2 s`, `3 min 20 s` or `2 h 05 min`: short and unambiguous."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"
    return f"{int(seconds // 3600)} h {int(round(seconds % 3600 / 60)):02d} min"


def _percent(fraction: float) -> str:
    return "–" if not math.isfinite(fraction) else f"{100 * fraction:.1f} %"


def _name(recording: RecordingInfo) -> str:
    """Short display name of a recording: its file name."""
    return Path(recording.path).name or recording.path


def _swatch(unit: int, colors: list) -> str:
    color = plots.NOISE_COLOR if unit < 0 else colors[unit]
    return f'<span class="swatch" style="background:{color}"></span>'


def _bar(fraction: float, color: str) -> str:
    """A horizontal bar, `fraction` of the full width: a sparkline for a table cell."""
    width = 100 * float(np.clip(np.nan_to_num(fraction), 0, 1))
    return (f'<span class="track"><span class="fill" style="width:{width:.1f}%;'
            f'background:{color}"></span></span>')


def _section(anchor: str, heading: str, body: str) -> str:
    return (f'<section id="{anchor}"><h2>{_escape(heading)}</h2>\n{body}\n</section>\n')


def _table(header: List[str], rows: List[List[str]], *, classes: str = "") -> str:
    """An HTML table; `header` is escaped here, cells must already be HTML."""
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                     for row in rows)
    return (f'<table class="{classes}"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{body}\n</tbody></table>')


# -- summary ----------------------------------------------------------------------

def _covered_seconds(files: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> float:
    """Length of the union of intervals, per file, summed: overlaps count once.

    Occurrences of neighbouring units overlap where their windows do, so a plain sum
    of lengths can exceed the recording.
    """
    total = 0.0
    for file in np.unique(files):
        mine = files == file
        order = np.argsort(starts[mine])
        reach = -np.inf
        for start, end in zip(starts[mine][order], ends[mine][order]):
            total += max(0.0, end - max(start, reach))
            reach = max(reach, end)
    return total


def _digital_silence_note(recordings: List[RecordingInfo], max_names: int = 20) -> str:
    """A note naming the digitally silent recordings (the first `max_names`), or ''."""
    silent = [_name(r) for r in recordings if r.digital_silence]
    if not silent:
        return ""
    names = ", ".join(silent[:max_names])
    if len(silent) > max_names:
        names += f" and {len(silent) - max_names:,} more"
    return (f'<p class="note">{len(silent):,} recording(s) are digitally silent (no sound '
            f'at all): {_escape(names)}; they hold no units.</p>')


def _summary(result: DiscoveryResult, limits: _Limits) -> str:
    silent = result.windows.silence >= limits.silence_threshold
    noise = (result.unit < 0) & ~silent
    occurrences = result.occurrences
    units_found = len(np.unique(np.concatenate([result.unit[result.unit >= 0],
                                                occurrences.unit])))
    unit_time = _covered_seconds(occurrences.file, occurrences.start_s, occurrences.end_s)
    total = float(sum(r.duration_s for r in result.recordings))
    n = max(len(silent), 1)
    tiles = [
        ("recordings", f"{len(result.recordings):,}"),
        ("total duration", _format_duration(total)),
        ("windows", f"{len(silent):,}"),
        ("units found", f"{units_found:,}"),
        ("unit occurrences", f"{len(occurrences):,}"),
        ("silent windows", _percent(silent.sum() / n) if len(silent) else "–"),
        ("noise windows (no unit)", _percent(noise.sum() / n) if len(silent) else "–"),
        ("time inside units", _percent(unit_time / total) if total > 0 else "–"),
    ]
    if result.segments is not None:
        # At the segment level a unit belongs to a segment: say how many there are and
        # how many of them HDBSCAN left as noise.
        n_segments = len(result.segments)
        noise_segments = int(np.sum(result.segment_unit < 0))
        tiles[2:2] = [("segments", f"{n_segments:,}"),
                      ("noise segments (no unit)",
                       _percent(noise_segments / n_segments) if n_segments else "–")]
    body = '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="value">{_escape(v)}</div>'
        f'<div class="label">{_escape(k)}</div></div>' for k, v in tiles) + "</div>"
    if units_found == 0:
        body += ('<p class="note">No units were found: every window was classed as '
                 'silence or noise. Try a lower minimum cluster size, a different '
                 'clustering method or a model trained on recordings like these.</p>')
    body += _digital_silence_note(result.recordings)
    level = ("Units were found per segment (a contiguous sound between silences: a "
             "syllable, call or word); each window shows the unit of the segment holding "
             "its centre. " if result.segments is not None else "")
    note = (level + f"A window is silent when its P(silence) is at least {limits.silence_threshold:g}; "
            "noise "
            "windows are not silent but belong to no unit. Time inside units is the share of "
            "the total duration covered by at least one unit occurrence.")
    return _section("summary", "Summary", body + f'<p class="caption">{_escape(note)}</p>')


# -- map --------------------------------------------------------------------------

def _run_map(result: DiscoveryResult, limits: _Limits) -> Optional[UnitMap]:
    """The run's own map (`result.map`), or one fitted here on the non-silent windows.

    Returns:
        The map, or None when no map is stored and fewer than 5 windows are not silent.

    Raises:
        ParameterError: the stored map does not fit the window table.
    """
    if result.map is not None:
        return _checked_map(result.map, len(result.unit))
    rows = np.flatnonzero(result.windows.silence < limits.silence_threshold)
    if len(rows) < MIN_MAP_POINTS:
        return None
    # The run's own reduction, as the clusterer used it; UMAP where the settings lack it.
    run = result.settings.get("run")
    reduction = run.get("reduction") if isinstance(run, dict) else None
    reduction = reduction if reduction in REDUCTIONS else "umap"
    return fit_map(result.windows.embedding, rows=rows, reduction=reduction, seed=limits.seed,
                   max_points=limits.max_map_points)


def _checked_map(stored, n_windows: int) -> UnitMap:
    """`stored` with its arrays as NumPy arrays, after checking them against the table."""
    try:
        index = np.asarray(stored.index).reshape(-1)
        xy = np.asarray(stored.xy, dtype=np.float64)
        method = str(stored.method)
    except (AttributeError, TypeError, ValueError) as error:
        raise ParameterError(f"Invalid value for `map`: expected a `UnitMap` (index, xy, "
                             f"method), received {type(stored).__name__} ({error}).") from None
    if len(index) and (index.dtype.kind not in "iu" or index.min() < 0
                       or index.max() >= n_windows):
        raise ParameterError(f"Invalid value for `map`: expected `index` to hold window "
                             f"indices, integers in [0, {n_windows - 1}], received "
                             f"{index.dtype} values in [{index.min()}, {index.max()}].")
    if xy.shape != (len(index), 2) or not np.all(np.isfinite(xy)):
        raise ParameterError(f"Invalid value for `map`: expected `xy` of shape "
                             f"({len(index)}, 2), finite, received shape {xy.shape}.")
    return UnitMap(index.astype(np.int64), xy, method)


def _map_section(result: DiscoveryResult, limits: _Limits) -> str:
    unit_map = _run_map(result, limits)
    if unit_map is None or len(unit_map.index) == 0:
        why = ("The run's map holds no windows" if unit_map is not None else
               f"Fewer than {MIN_MAP_POINTS} windows are not silent")
        return _section("map", "Map of the windows", f'<p class="note">{why}: no map.</p>')
    n_mapped = len(unit_map.index)
    if n_mapped > limits.max_map_points:
        # A stored map may hold more points than the report draws.
        generator = np.random.default_rng(limits.seed)
        keep = np.sort(generator.choice(n_mapped, limits.max_map_points, replace=False))
        unit_map = UnitMap(unit_map.index[keep], unit_map.xy[keep], unit_map.method)
    with plots.style():
        figure, (left, right) = plots.new_figure(12, 5.2, ncols=2)
        plots.unit_map(unit_map.xy, result.unit[unit_map.index], ax=left)
        left.set_title("windows coloured by unit")
        plots.density_map(unit_map.xy, ax=right)
        right.set_title("density of the same map")
        figure.tight_layout()
        # Sharper than the default 100 dpi for a figure that is mostly white: cheap.
        image = _png_uri(figure, dpi=140)
    if result.map is not None:
        windows = "the windows the clustering was fitted on (none silent)"
    else:
        windows = ("the windows that are not silent (the run stored no map of its own, so "
                   "the report fitted this one)")
    shown = ("" if n_mapped == len(unit_map.index) else
             f"The report draws {len(unit_map.index):,} of its {n_mapped:,} points, at random "
             f"(seed {limits.seed}). ")
    caption = (f"Each point is one window, among {windows}. {unit_map.method} {shown}"
               "Left: colour and number give the unit (as in every table and plot below); "
               "light grey are windows in no unit (noise). Right: where windows "
               "concentrate (smoothed 2-D histogram, darkest = densest).")
    body = (f'<figure><img src="{image}" alt="map of the windows coloured by unit" '
            f'class="wide"><figcaption>{_escape(caption)}</figcaption></figure>')
    return _section("map", "Map of the windows", body)


# -- unit table -------------------------------------------------------------------

def _unit_table(result: DiscoveryResult, colors: list) -> str:
    occurrences = result.occurrences
    units, files, confidence = occurrences.unit, occurrences.file, occurrences.confidence
    lengths = occurrences.end_s - occurrences.start_s
    window_units = result.unit
    totals = np.bincount(units, weights=lengths, minlength=result.n_units)
    widest = max(float(totals.max()) if len(totals) else 0.0, 1e-12)
    rows = []
    for unit in range(result.n_units):
        mine = units == unit
        n_windows = int(np.sum(window_units == unit))
        if not mine.any() and n_windows == 0:
            continue
        rows.append([
            f'{_swatch(unit, colors)}<a href="#unit-{unit}">unit {unit}</a>',
            f"{int(mine.sum()):,}",
            f"{len(np.unique(files[mine])):,}",
            f"{n_windows:,}",
            f"{totals[unit]:.2f}",
            f"{lengths[mine].mean():.3f}" if mine.any() else "–",
            f"{confidence[mine].mean():.3f}" if mine.any() else "–",
            _bar(totals[unit] / widest, colors[unit]),
        ])
    if not rows:
        return _section("units", "Units", '<p class="note">No units were found.</p>')
    table = _table(["unit", "occurrences", "recordings", "windows", "total duration (s)",
                    "mean duration (s)", "mean confidence", ""], rows, classes="numbers")
    caption = ("One row per unit. An occurrence is a run of consecutive windows of one "
               "unit, merged; its confidence is the mean membership probability of its "
               "windows. Bars: total duration, relative to the longest unit.")
    return _section("units", "Units", table + f'<p class="caption">{_escape(caption)}</p>')


# -- galleries --------------------------------------------------------------------

def _read(path: str, start_s: float, end_s: float, *,
          sample_rate: Optional[int] = None) -> Optional[Tuple[np.ndarray, int]]:
    """`audio.read_span` of [start_s, end_s), or None when the file cannot be read: the
    report then shows no features and no audio for it."""
    try:
        return audio.read_span(path, start_s=start_s, end_s=end_s, sample_rate=sample_rate)
    except AudioError:
        return None


@functools.lru_cache(maxsize=8)
def _band_filters(config: FeatureConfig) -> Optional[np.ndarray]:
    return features.band_filters(config)


def _feature_frames(config: FeatureConfig, start_s: float, end_s: float) -> Tuple[int, int]:
    """(first, last): the frames that start within [start_s, end_s), at least one."""
    hop_s = config.hop_length / config.sample_rate
    first = max(0, int(math.ceil(start_s / hop_s - 1e-6)))
    return first, max(first + 1, int(math.ceil(end_s / hop_s - 1e-6)))


def _frame_samples(recording: RecordingInfo, first: int, last: int) -> Optional[np.ndarray]:
    """The samples of frames [first, last) at the feature rate, read from the file
    (fewer at its end), or None when it cannot be read."""
    config = recording.feature_config
    start_s = first * config.hop_length / config.sample_rate
    end_s = ((last - 1) * config.hop_length + config.frame_length) / config.sample_rate
    span = _read(recording.path, start_s, end_s, sample_rate=config.sample_rate)
    return None if span is None else span[0]


def _span_features(samples: Optional[np.ndarray], recording: RecordingInfo, first: int,
                   last: int) -> np.ndarray:
    """Normalised features of frames [first, last) of a recording, from their samples.

    `samples` are `_frame_samples` of those frames: they equal the whole file's, so
    the features equal the rows of `features.extract` up to float error, normalised
    with the recording's own reference level.

    Returns:
        (n, n_features) float32 in [0, 1], n <= last - first (fewer at the end of the
        file); none when `samples` is None.
    """
    config = recording.feature_config
    n_features = feature_count(config)
    if samples is None or recording.digital_silence:
        # A digitally silent file is all 0, as its features are: nothing to frame.
        n = 0 if samples is None else max(0, last - first)
        return np.zeros((n, n_features), dtype=np.float32)
    if len(samples) < config.frame_length:
        if first > 0:
            return np.zeros((0, n_features), dtype=np.float32)
        # A file shorter than one frame has one zero-padded frame.
        samples = np.pad(samples, (0, config.frame_length - len(samples)))
    n = min(last - first, 1 + (len(samples) - config.frame_length) // config.hop_length)
    samples = samples[:(n - 1) * config.hop_length + config.frame_length]
    power = features.band_power(samples, config, _band_filters(config))
    # Frames below the level of 16-bit rounding are 0, as in the whole file's features.
    silent = features.is_digital_silence(features.frame_level_db(samples, config))
    return features.normalize(features.to_db(power), reference_db=recording.reference_db,
                              dynamic_range_db=config.dynamic_range_db,
                              digital_silence=silent)


def _recording_features(recording: RecordingInfo, start_s: float,
                        end_s: float) -> np.ndarray:
    """Normalised features of the frames starting within [start_s, end_s), read on demand."""
    first, last = _feature_frames(recording.feature_config, start_s, end_s)
    return _span_features(_frame_samples(recording, first, last), recording, first, last)


def _snippet_wav(mono: np.ndarray, rate: int) -> Optional[bytes]:
    """A short WAV (16-bit, mono, <= 16 kHz, peak-normalised, faded) of `mono`."""
    if len(mono) == 0:
        return None
    if rate > SNIPPET_MAX_RATE:
        mono = soxr.resample(mono, rate, SNIPPET_MAX_RATE)
        rate = SNIPPET_MAX_RATE
    peak = float(np.max(np.abs(mono))) if len(mono) else 0.0
    mono = mono * (SNIPPET_PEAK / peak) if peak > 0 else np.array(mono)
    fade = min(len(mono) // 2, int(SNIPPET_FADE_S * rate))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, dtype=mono.dtype)
        mono[:fade] *= ramp
        mono[-fade:] *= ramp[::-1]
    buffer = io.BytesIO()
    soundfile.write(buffer, mono, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _example_image(values: np.ndarray, unit: int,
                   duration_s: float) -> Optional[Tuple[str, int]]:
    """A small spectrogram PNG and its width in pixels, proportional to duration."""
    if values.size == 0:
        return None
    # One time scale for every card, so units can be compared by length at a glance.
    width_px = int(np.clip(round(duration_s * GALLERY_PX_PER_S), 40, 2 * GALLERY_PX_PER_S))
    figure, ax = plots.new_figure(width_px / 100, 0.9)
    ax.set_position((0, 0, 1, 1))
    plots.unit_gallery_example(values, ax=ax, unit=unit)
    return _png_uri(figure), width_px


def _gallery(result: DiscoveryResult, colors: list, limits: _Limits) -> str:
    occurrences = result.occurrences
    units, confidence = occurrences.unit, occurrences.confidence
    present = np.unique(units)
    if not len(present):
        return _section("galleries", "Unit galleries", '<p class="note">No units were found.</p>')
    parts = []
    for unit in present[:limits.max_gallery_units]:
        mine = np.flatnonzero(units == unit)
        # Highest confidence first; stable, so ties keep time order.
        best = mine[np.argsort(-confidence[mine], kind="stable")][:limits.max_examples]
        cards = [_card(result, int(i), limits) for i in best]
        parts.append(
            f'<div class="unit" id="unit-{unit}"><h3>{_swatch(unit, colors)}unit {unit} '
            f'<span class="muted">{len(mine):,} occurrences, showing the {len(best)} most '
            f'confident</span></h3><div class="cards">{"".join(cards)}</div></div>')
    note = ""
    if len(present) > limits.max_gallery_units:
        note = (f'<p class="note">Galleries are shown for the first '
                f'{limits.max_gallery_units} of {len(present)} units; every unit is in '
                'the table above and in units.csv.</p>')
    caption = (f"Each card: the features of one occurrence (low bins at the bottom; "
               f"{GALLERY_PX_PER_S} pixels per second in every card, so widths compare "
               f"durations; longer than 2 s: squeezed to 2 s; longer than "
               f"{GALLERY_MAX_IMAGE_S:g} s: its first {GALLERY_MAX_IMAGE_S:g} s) and its audio, "
               f"read from the original file with {limits.snippet_padding_s:g} s of context "
               f"either side, at most {limits.max_snippet_s:g} s, at most "
               f"{SNIPPET_MAX_RATE // 1000} kHz, peak-normalised so quiet units are audible.")
    return _section("galleries", "Unit galleries",
                    f'<p class="caption">{_escape(caption)}</p>{note}' + "\n".join(parts))


def _card(result: DiscoveryResult, i: int, limits: _Limits) -> str:
    occurrences = result.occurrences
    recording = result.recordings[int(occurrences.file[i])]
    config = recording.feature_config
    start, end = float(occurrences.start_s[i]), float(occurrences.end_s[i])
    unit = int(occurrences.unit[i])
    # Two bounded reads per card: the image's frames (the occurrence's first
    # GALLERY_MAX_IMAGE_S at most) at the feature rate, the snippet (padded, capped) at
    # the file's own rate.
    first, last = _feature_frames(config, start, min(end, start + GALLERY_MAX_IMAGE_S))
    shown = min(end - start, GALLERY_MAX_IMAGE_S)
    image = _example_image(_span_features(_frame_samples(recording, first, last), recording,
                                          first, last), unit, shown)
    snippet_low = max(0.0, start - limits.snippet_padding_s)
    snippet_high = min(end + limits.snippet_padding_s, snippet_low + limits.max_snippet_s)
    snippet = _read(recording.path, snippet_low, snippet_high)
    wav = None if snippet is None else _snippet_wav(*snippet)
    parts = []
    width_px = 192
    if image:
        image_uri, image_width = image
        width_px = max(width_px, image_width + 14)
        parts.append(f'<img src="{image_uri}" width="{image_width}" height="90" '
                     f'alt="features of unit {unit}">')
    if wav:
        uri = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
        parts.append(f'<audio controls preload="metadata" src="{uri}"></audio>')
    else:
        parts.append('<div class="muted">audio unavailable</div>')
    where = (f'<span class="name" title="{_escape(recording.path)}">'
             f'{_escape(_name(recording))}</span>{start:.2f}–{end:.2f} s · conf. '
             f'{float(occurrences.confidence[i]):.2f}')
    return (f'<div class="card" style="width:{width_px}px">{"".join(parts)}'
            f'<div class="where">{where}</div></div>')


# -- timelines --------------------------------------------------------------------

def _timeline_image(result: DiscoveryResult, index: int, limits: _Limits) -> str:
    recording = result.recordings[index]
    rows = list(result.occurrences.rows(index))
    annotation = recording.annotation
    labels = None if annotation is None else (annotation.start_s, annotation.end_s,
                                               annotation.labels)
    shown = _recording_features(recording, 0.0, min(recording.duration_s,
                                                     limits.timeline_seconds))
    with plots.style():
        figure = plots.recording_overview(
            shown, frame_hop_s=recording.frame_hop_s,
            duration_s=recording.duration_s, start_s=np.array([r[1] for r in rows]),
            end_s=np.array([r[2] for r in rows]), units=np.array([r[3] for r in rows], int),
            labels=labels, max_seconds=limits.timeline_seconds,
            row_seconds=TIMELINE_ROW_SECONDS)
        return _png_uri(figure)


def _timelines(result: DiscoveryResult, limits: _Limits) -> str:
    count = min(len(result.recordings), limits.max_timelines)
    parts = []
    for index in range(count):
        recording = result.recordings[index]
        cut = recording.duration_s > limits.timeline_seconds
        span = (f"first {limits.timeline_seconds:g} s of {_format_duration(recording.duration_s)}"
                if cut else f"all {_format_duration(recording.duration_s)}")
        parts.append(
            f'<figure><figcaption class="title"><b title="{_escape(recording.path)}">'
            f'{_escape(_name(recording))}</b> <span class="muted">({_escape(span)})</span>'
            f'</figcaption><img src="{_timeline_image(result, index, limits)}" class="wide" '
            f'alt="features and units of {_escape(_name(recording))}"></figure>')
    notes = []
    if len(result.recordings) > count:
        notes.append(f"Timelines are drawn for the first {count} of "
                     f"{len(result.recordings):,} recordings; units.csv and the Raven and "
                     "Audacity tables cover all of them.")
    caption = ("Top: the recording's features (normalised; low bins at the bottom). Below: "
               "each unit occurrence as a bar in its unit's colour, with its number; "
               "where an annotation exists, its labels in grey underneath. Rows hold "
               f"{TIMELINE_ROW_SECONDS:g} s each; long recordings show their first "
               f"{limits.timeline_seconds:g} s only.")
    notes_html = "".join(f'<p class="note">{_escape(n)}</p>' for n in notes)
    return _section("timelines", "Timelines",
                    f'<p class="caption">{_escape(caption)}</p>{notes_html}' + "\n".join(parts))


# -- silence, scores, footer ------------------------------------------------------

def _recordings_table(result: DiscoveryResult, limits: _Limits, max_rows: int = 500) -> str:
    files = result.windows.file
    silent = result.windows.silence >= limits.silence_threshold
    noise = (result.unit < 0) & ~silent
    occurrence_files, occurrence_units = result.occurrences.file, result.occurrences.unit
    rows = []
    for index, recording in enumerate(result.recordings[:max_rows]):
        mine = files == index
        n = int(mine.sum())
        silent_fraction = silent[mine].mean() if n else float("nan")
        rows.append([
            f'<span title="{_escape(recording.path)}">{_escape(_name(recording))}</span>',
            _escape(_format_duration(recording.duration_s)),
            f"{n:,}",
            _bar(silent_fraction, "#9aa3ad") + _percent(silent_fraction),
            _percent(noise[mine].mean() if n else float("nan")),
            f"{int(np.sum(occurrence_files == index)):,}",
            f"{len(np.unique(occurrence_units[occurrence_files == index])):,}",
            "yes" if recording.annotation is not None else "no",
        ])
    table = _table(["recording", "duration", "windows", "silent windows", "noise windows",
                    "occurrences", "units", "annotated"], rows, classes="numbers")
    note = ""
    if len(result.recordings) > max_rows:
        note = (f'<p class="note">The first {max_rows} of {len(result.recordings):,} '
                'recordings are listed.</p>')
    caption = (f"Silent: P(silence) >= {limits.silence_threshold:g}. Noise: not silent, but in no "
               "unit. Hover a name for its full path.")
    return _section("silence", "Silence and units per recording",
                    table + note + f'<p class="caption">{_escape(caption)}</p>')


# Scores in [0, 1], higher is better: display name and meaning.
_SCORE_NAMES = {
    "nmi": ("NMI", "normalised mutual information between units and labels, frame by frame"),
    "v_measure": ("V-measure", "harmonic mean of homogeneity and completeness"),
    "homogeneity": ("homogeneity", "1 when each unit holds one label only"),
    "completeness": ("completeness", "1 when each label falls in one unit only"),
    "purity": ("purity", "share of frames whose unit's majority label is their own"),
    "coverage": ("coverage", "share of labelled (voiced) frames that got a unit"),
    "silence_balanced_accuracy_windows": (
        "silence balanced accuracy, per window",
        "the silence detector per window, as the model card measures it: mean of the "
        "recall of silence and of sound, a window being silence when at most the model's "
        "window_sound_fraction (0.2 by default) of it is annotated sound"),
    "silence_balanced_accuracy_frames": (
        "silence balanced accuracy, per 10 ms frame",
        "the same detector per 10 ms frame: each frame takes its nearest window's call "
        "and is silence outside every annotated interval; the edges of sounds inside "
        "windows called silence count against it, so it is usually the lower"),
}
# Counts that come with the scores.
_COUNT_NAMES = {
    "n_annotated_recordings": "annotated recordings",
    "n_frames": "labelled frames scored",
    "n_windows": "windows scored for silence",
    "n_labels": "distinct labels",
    "n_units": "units in labelled frames",
}


def _format_value(value) -> str:
    """A score or count for a table cell (HTML-escaped)."""
    if isinstance(value, (bool, np.bool_)):
        return _escape(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(value) else f"{float(value):.3f}"
    return _escape(value)


def _scores(scores: dict) -> str:
    rows = []
    for key, value in scores.items():
        if key in _COUNT_NAMES:
            continue
        name, meaning = _SCORE_NAMES.get(key, (key, ""))
        rows.append([_escape(name), _format_value(value),
                     f'<span class="muted">{_escape(meaning)}</span>'])
    counts = ", ".join(f"{_escape(name)}: {_format_value(scores[key])}"
                       for key, name in _COUNT_NAMES.items() if key in scores)
    caption = ("Units against the annotations beside the recordings; each score runs from "
               "0 to 1, higher is better; – where it is undefined (e.g. no silence to find).")
    return _section("scores", "Scores against annotations",
                    _table(["score", "value", "meaning"], rows, classes="scores")
                    + (f"<p>{counts}.</p>" if counts else "")
                    + f'<p class="caption">{_escape(caption)}</p>')


def _flatten(values: dict, prefix: str = "") -> List[Tuple[str, object]]:
    """Nested settings as (dotted.key, value) pairs."""
    flat = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.extend(_flatten(value, name + "."))
        else:
            flat.append((name, value))
    return flat


def _footer(result: DiscoveryResult) -> str:
    parts = []
    if result.timings:
        # Stage names may carry the unit (`clustering_s`); a given total is not summed.
        stages = {str(k).removesuffix("_s"): float(v) for k, v in result.timings.items()}
        total = stages.pop("total", sum(stages.values()))
        rows = [[_escape(k), f"{v:.2f} s"] for k, v in stages.items()]
        rows.append(["<b>total</b>", f"<b>{total:.2f} s</b>"])
        parts.append("<h3>Timings</h3>" + _table(["stage", "time"], rows, classes="compact"))
    if result.settings:
        rows = [[f"<code>{_escape(k)}</code>", f"<code>{_escape(v)}</code>"]
                for k, v in _flatten(result.settings)]
        parts.append("<h3>Settings and versions</h3>"
                     + _table(["setting", "value"], rows, classes="compact"))
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts.append(f'<p class="muted">Written {_escape(stamp)} by discovery {_escape(__version__)}.'
                 '</p>')
    return f'<footer id="settings">{"".join(parts)}</footer>'


# The page's style sheet, kept as a file of its own and inlined into every report.
_CSS = (Path(__file__).resolve().parent / "report.css").read_text(encoding="utf-8")


def _page(title: str, sections: List[str], has_scores: bool) -> str:
    links = [("summary", "Summary"), ("map", "Map"), ("units", "Units"),
             ("galleries", "Galleries"), ("timelines", "Timelines"),
             ("silence", "Recordings")]
    if has_scores:
        links.append(("scores", "Scores"))
    links.append(("settings", "Settings"))
    nav = "".join(f'<a href="#{anchor}">{_escape(text)}</a>' for anchor, text in links)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{_escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n'
            f'<header><div class="inner"><h1>{_escape(title)}</h1><nav>{nav}</nav></div>'
            f'</header>\n<main>\n{"".join(sections)}</main>\n')


def write_html_report(path, result: DiscoveryResult, *, title: str = "discovery report",
                      max_examples: int = 6, snippet_padding_s: float = 0.05,
                      max_snippet_s: float = 2.0, max_gallery_units: int = 40,
                      max_timelines: int = 20, timeline_seconds: float = 60.0,
                      max_map_points: int = 3000, seed: int = 0,
                      silence_threshold: float = SILENCE_THRESHOLD) -> None:
    """Write one self-contained HTML report of `result` (offline; no external address).

    Args:
        path: where to write (e.g. `out/report.html`).
        result: the discovery result.
        title: str. Page title. Defaults to "discovery report".
        max_examples: int >= 0. Occurrences shown per unit, the most confident first.
            Defaults to 6.
        snippet_padding_s: float >= 0. Audio context either side of an occurrence, in
            seconds. Defaults to 0.05.
        max_snippet_s: float > 0. Longest audio snippet, in seconds. Defaults to 2.
        max_gallery_units: int >= 0. Units that get a gallery (the lowest numbers).
            Defaults to 40.
        max_timelines: int >= 0. Recordings that get a timeline (the first ones).
            Defaults to 20.
        timeline_seconds: float > 0. Seconds of each recording drawn in its timeline,
            from the start. Defaults to 60.
        max_map_points: int >= 5. Windows drawn in the map, subsampled with `seed`:
            `result.map` (the run's own map) when it is set, else a map fitted here
            with `units.maps.fit_map` on the non-silent windows. Defaults to 3000.
        seed: int in [0, 2**32 - 1]. Seed of the map's subsample and of a map fitted
            here. Defaults to 0.
        silence_threshold: float in [0, 1]. A window is silent when its P(silence) is at
            least this; pass the run's own threshold. Defaults to
            `discovery.config.SILENCE_THRESHOLD` (0.5).

    Raises:
        ParameterError: a limit is out of range, or `result.map` does not fit the
            window table. (A `DiscoveryResult` checks itself when it is made.)
    """
    limits = _check_limits(_Limits(
        max_examples=max_examples, snippet_padding_s=snippet_padding_s,
        max_snippet_s=max_snippet_s, max_gallery_units=max_gallery_units,
        max_timelines=max_timelines, timeline_seconds=timeline_seconds,
        max_map_points=max_map_points, seed=seed, silence_threshold=silence_threshold))
    colors = plots.unit_colors(result.n_units)
    sections = [_summary(result, limits), _map_section(result, limits),
                _unit_table(result, colors), _gallery(result, colors, limits),
                _timelines(result, limits), _recordings_table(result, limits)]
    if result.scores:
        sections.append(_scores(result.scores))
    page = _page(title, sections, bool(result.scores)) + _footer(result) + "\n</body>\n</html>\n"
    write_text(path, page)


def _check_limits(limits: _Limits) -> _Limits:
    """`limits` if every field is in range (see `write_html_report`).

    Raises:
        ParameterError: naming the first field out of range.
    """
    for name, low, high in (("max_examples", 0, None), ("max_gallery_units", 0, None),
                            ("max_timelines", 0, None), ("max_map_points", MIN_MAP_POINTS, None),
                            ("seed", 0, MAX_SEED)):
        value = getattr(limits, name)
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low
                or (high is not None and value > high)):
            expected = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ParameterError(f"Invalid value for `{name}`: expected an integer "
                                 f"{expected}, received {value!r}.")
    for name, low, high, strict in (("snippet_padding_s", 0, math.inf, False),
                                    ("max_snippet_s", 0, math.inf, True),
                                    ("timeline_seconds", 0, math.inf, True),
                                    ("silence_threshold", 0, 1, False)):
        value = getattr(limits, name)
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and low <= value <= high
                and (value > low or not strict)):
            expected = (f"a number in [{low}, {high}]" if math.isfinite(high) else
                        f"a number {'>' if strict else '>='} {low}")
            raise ParameterError(f"Invalid value for `{name}`: expected {expected}, "
                                 f"received {value!r}.")
    return limits

"""Plots of discovered units: the only module that imports matplotlib.

Every plot function takes arrays and an optional `ax`, draws on it and returns the
`Axes`; none calls `plt.show()`. Without `ax`, a new pyplot figure is made, so the
functions behave as expected in a notebook. The report draws on `new_figure()`
figures instead: they are bound to the Agg canvas and never registered with pyplot, so
writing a report neither depends on the interactive backend nor leaks figures.

Colours: unit `k` always has colour `unit_colors(n)[k]`, whatever `n`, in every plot
and in the HTML report; silence and noise (unit -1) are light grey (`NOISE_COLOR`).
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Iterator, Optional, Sequence, Tuple

import matplotlib
import matplotlib.colors
import matplotlib.figure
import matplotlib.patches
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

# Silence and noise (unit -1): light enough to sit behind the units.
NOISE_COLOR = "#c8c8c8"
# Features are normalised to [0, 1]; one colour map for every spectrogram.
SPECTROGRAM_CMAP = "magma"

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
}


def _palette() -> list:
    """A fixed sequence of distinct colours, with the greys of the Tableau maps removed.

    Greys would be mistaken for noise, so tab10's grey and tab20's two greys are
    dropped. The order puts the most distinct colours (tab10) first.
    """
    colormaps = matplotlib.colormaps
    tab10 = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 7]
    tab20_light = [c for i, c in enumerate(colormaps["tab20"].colors) if i % 2 and i != 15]
    tab20b = list(colormaps["tab20b"].colors)
    tab20c = list(colormaps["tab20c"].colors)[:16]  # its last four are greys
    return [matplotlib.colors.to_hex(c) for c in tab10 + tab20_light + tab20b + tab20c]


_PALETTE = _palette()


def unit_colors(n_units: int) -> list:
    """Colours of units `0 .. n_units - 1` as hex strings (`"#1f77b4"`).

    The colour of a unit does not depend on `n_units`: unit 3 is the same colour in a
    plot of 5 units and in one of 50. Past the 54 hand-picked colours, hues are spread
    by the golden ratio, so neighbours stay distinguishable.

    Args:
        n_units: int >= 0. Number of units.

    Returns:
        List of `n_units` hex colour strings.
    """
    colors = list(_PALETTE[:n_units])
    for k in range(len(_PALETTE), n_units):
        hue = (k * 0.618033988749895) % 1.0
        value = 0.85 if k % 2 else 0.6
        colors.append(matplotlib.colors.to_hex(
            matplotlib.colors.hsv_to_rgb((hue, 0.75, value))))
    return colors


def _colors_of(units: np.ndarray) -> np.ndarray:
    """One colour per entry of `units` (noise grey for -1), as an (n,) object array."""
    units = np.asarray(units, dtype=int)
    palette = np.array(unit_colors(int(units.max()) + 1 if units.size else 0) + [NOISE_COLOR],
                       dtype=object)
    # -1 indexes the last entry: the noise colour.
    return palette[units]


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The report's look (font sizes, no top/right spines) for plots drawn inside.

    Matplotlib reads most settings when an artist is created, so the whole drawing,
    not only the figure's creation, belongs inside the block.
    """
    with matplotlib.rc_context(_STYLE):
        yield


def new_figure(width_in: float, height_in: float, *, nrows: int = 1, ncols: int = 1,
               dpi: int = 100, **subplot_kw) -> Tuple[matplotlib.figure.Figure, object]:
    """A figure on the Agg canvas, not registered with pyplot, and its axes.

    Args:
        width_in, height_in: float > 0. Figure size in inches.
        nrows, ncols: int >= 1. Grid of axes; nrows=0 makes none. Defaults to 1 x 1.
        dpi: int > 0. Pixels per inch. Defaults to 100.
        **subplot_kw: passed to `Figure.subplots` (`sharex`, `gridspec_kw`, ...).

    Returns:
        (figure, axes): axes as `Figure.subplots` returns them.
    """
    figure = matplotlib.figure.Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(figure)
    if nrows == 0:  # the caller lays out its own axes
        return figure, None
    return figure, figure.subplots(nrows, ncols, **subplot_kw)


def _axes(ax, size: Tuple[float, float]):
    """`ax`, or the axes of a new pyplot figure of `size` inches."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only when the caller gave no axes

    return plt.figure(figsize=size).add_subplot()


def figure_to_png_bytes(figure, *, dpi: Optional[int] = None,
                        max_colors: Optional[int] = 256) -> bytes:
    """Render a figure to PNG bytes and close it.

    Args:
        figure: a matplotlib `Figure`.
        dpi: int > 0 or None. Resolution; None keeps the figure's own.
        max_colors: int in [2, 256] or None. Quantise to a palette PNG of at most this
            many colours: spectrograms compress 2-4x better and look the same to the
            eye. None keeps full RGBA. Defaults to 256.

    Returns:
        The PNG file's bytes.
    """
    buffer = io.BytesIO()
    if max_colors is None:
        figure.savefig(buffer, format="png", dpi=dpi)
    else:
        from PIL import Image  # matplotlib's own dependency

        figure.savefig(buffer, format="png", dpi=dpi)
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB").quantize(colors=max_colors, dither=0)
        buffer = io.BytesIO()
        image.save(buffer, format="png", optimize=True)
    if getattr(figure.canvas, "manager", None) is not None:
        # A pyplot figure: free pyplot's reference. `new_figure` figures have none,
        # so writing a report never imports pyplot.
        import matplotlib.pyplot as plt

        plt.close(figure)
    return buffer.getvalue()


def _bare(ax) -> None:
    """No ticks, no spines, equal scales: map axes have no meaningful units."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_aspect("equal", adjustable="datalim")


def unit_map(xy: np.ndarray, units: np.ndarray, ax=None, *, label_units: bool = True,
             point_size: Optional[float] = None):
    """Scatter of a 2-D map of windows, coloured by unit.

    Noise and silence (unit -1) are drawn first, in light grey, so units sit on top.
    Each unit's number is written at its median position.

    Args:
        xy: (n, 2) float. Map coordinates (e.g. `units.maps.fit_map`'s 2-D UMAP of
            the embeddings).
        units: (n,) int. Unit of each point, -1 for silence or noise.
        ax: matplotlib Axes or None. Where to draw; None makes a new figure.
        label_units: bool. Write unit numbers on the map. Defaults to True.
        point_size: float > 0 or None. Marker area in points^2; None picks one from
            the number of points.

    Returns:
        The Axes.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    units = np.asarray(units, dtype=int).reshape(-1)
    ax = _axes(ax, (6, 5))
    if point_size is None:
        # Dense maps need small points to show structure; sparse ones, visible points.
        point_size = float(np.clip(4000 / max(len(xy), 1), 3, 30))
    noise = units < 0
    if noise.any():
        ax.scatter(xy[noise, 0], xy[noise, 1], s=point_size * 0.7, c=NOISE_COLOR,
                   linewidths=0, label="noise / silence", rasterized=True)
    if (~noise).any():
        ax.scatter(xy[~noise, 0], xy[~noise, 1], s=point_size, c=list(_colors_of(units[~noise])),
                   linewidths=0, alpha=0.85, rasterized=True)
    if label_units:
        for unit in np.unique(units[~noise]):
            x, y = np.median(xy[units == unit], axis=0)
            ax.text(x, y, str(unit), fontsize=8, fontweight="bold", ha="center",
                    va="center", color="black",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75))
    _bare(ax)
    return ax


def density_map(xy: np.ndarray, ax=None, *, bins: int = 160,
                smoothing: Optional[float] = None):
    """Density of a 2-D map: a 2-D histogram smoothed by a Gaussian, as filled contours.

    Smoothing shows where windows concentrate even when the map is sparse; the
    colour scale is relative (the densest cell is 1), as absolute values depend on the
    smoothing.

    Args:
        xy: (n, 2) float. Map coordinates, as given to `unit_map`.
        ax: matplotlib Axes or None. Where to draw; None makes a new figure.
        bins: int > 0. Histogram cells along each axis. Defaults to 160.
        smoothing: float >= 0 or None. Gaussian width, in cells; None picks 2 cells for
            1,000 points or more, up to 8 for a few dozen, so sparse maps stay smooth.

    Returns:
        The Axes.
    """
    from scipy.ndimage import gaussian_filter

    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    ax = _axes(ax, (6, 5))
    if len(xy):
        low, high = xy.min(axis=0), xy.max(axis=0)
        # A margin so the smoothed density fades to zero inside the axes.
        margin = np.maximum((high - low) * 0.06, 1e-6)
        counts, x_edges, y_edges = np.histogram2d(
            xy[:, 0], xy[:, 1], bins=bins,
            range=((low[0] - margin[0], high[0] + margin[0]),
                   (low[1] - margin[1], high[1] + margin[1])))
        if smoothing is None:
            smoothing = 2.0 * float(np.clip(np.sqrt(1000 / len(xy)), 1, 4))
        density = gaussian_filter(counts, smoothing)
        density /= max(density.max(), 1e-12)
        centres_x = (x_edges[:-1] + x_edges[1:]) / 2
        centres_y = (y_edges[:-1] + y_edges[1:]) / 2
        # The lowest level is above 0 so empty space stays white.
        levels = np.linspace(0.02, 1.0, 11)
        filled = ax.contourf(centres_x, centres_y, density.T, levels=levels, cmap="Blues",
                             extend="neither")
        ax.contour(centres_x, centres_y, density.T, levels=levels[::2], colors="#08306b",
                   linewidths=0.4, alpha=0.5)
        colorbar = ax.figure.colorbar(filled, ax=ax, fraction=0.046, pad=0.02,
                                      ticks=[0.25, 0.5, 0.75, 1.0])
        colorbar.set_label("relative density of windows")
    _bare(ax)
    return ax


def spectrogram(features: np.ndarray, *, frame_hop_s: float, ax=None, start_s: float = 0.0,
                ylabel: str = "feature bin"):
    """Normalised features as an image: time in seconds on x, low features at the bottom.

    Args:
        features: (n_frames, n_features) float in [0, 1]. Frames first.
        frame_hop_s: float > 0. Seconds between frame starts.
        ax: matplotlib Axes or None. Where to draw; None makes a new figure.
        start_s: float. Time of the first frame, in seconds. Defaults to 0.
        ylabel: str. Label of the feature axis. Defaults to "feature bin".

    Returns:
        The Axes.
    """
    features = np.asarray(features, dtype=float)
    ax = _axes(ax, (10, 3))
    n_frames, n_features = features.shape if features.ndim == 2 else (0, 1)
    if n_frames:
        ax.imshow(features.T, origin="lower", aspect="auto", cmap=SPECTROGRAM_CMAP,
                  vmin=0.0, vmax=1.0, interpolation="antialiased",
                  extent=(start_s, start_s + n_frames * frame_hop_s, 0, n_features))
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    return ax


def _bars(ax, row: float, starts, ends, colors, texts, *, span_s: float) -> None:
    """Draw one row of interval bars, writing each text where it fits.

    Bars may overlap (occurrences of neighbouring units share the overlap of their
    windows); a later bar covers the earlier one's tail, so each text is centred on
    the part of its bar left visible, and written only if it fits there.
    """
    height = 0.8
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    order = np.argsort(starts, kind="stable")
    for position, i in enumerate(order):
        start, end, color, text = starts[i], ends[i], colors[i], texts[i]
        ax.add_patch(matplotlib.patches.Rectangle(
            (start, row - height / 2), end - start, height, facecolor=color,
            edgecolor="white", linewidth=0.4))
        visible_end = min(end, starts[order[position + 1]]) if position + 1 < len(order) else end
        # A 7-point character is about 0.45 % of a 13-inch axis: write where it fits.
        if text and (visible_end - start) >= span_s * 0.0045 * (len(text) + 1):
            ax.text((start + visible_end) / 2, row, text, ha="center", va="center",
                    fontsize=7, clip_on=True, color=_text_color(color))


def _text_color(color: str) -> str:
    """Black or white, whichever reads better on `color`."""
    red, green, blue = matplotlib.colors.to_rgb(color)
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"


def unit_timeline(start_s: np.ndarray, end_s: np.ndarray, units: np.ndarray, *,
                  duration_s: float, ax=None,
                  time_range: Optional[Tuple[float, float]] = None,
                  labels: Optional[Tuple[np.ndarray, np.ndarray, Sequence[str]]] = None):
    """Unit occurrences of one recording as coloured bars over time.

    Row "units" holds one bar per occurrence, in its unit's colour, numbered. When
    `labels` are given, a second row "labels" shows the annotation beneath, so the
    two can be compared by eye. Share the x axis with `spectrogram` to put it under
    the features.

    Args:
        start_s, end_s: (n,) float. Occurrence bounds in seconds.
        units: (n,) int >= 0. Unit of each occurrence.
        duration_s: float > 0. Length of the recording in seconds.
        ax: matplotlib Axes or None. Where to draw; None makes a new figure.
        time_range: (first_s, last_s) or None. Span shown; None shows
            (0, duration_s).
        labels: (start_s, end_s, labels) of an annotation, or None.

    Returns:
        The Axes.
    """
    ax = _axes(ax, (10, 1))
    first, last = time_range if time_range is not None else (0.0, duration_s)
    span = max(last - first, 1e-9)
    units = np.asarray(units, dtype=int)
    rows = ["units"]
    _bars(ax, 1.0 if labels is not None else 0.0, np.asarray(start_s, float),
          np.asarray(end_s, float), _colors_of(units), [str(u) for u in units], span_s=span)
    if labels is not None:
        label_start, label_end, label_text = labels
        rows = ["labels", "units"]
        _bars(ax, 0.0, np.asarray(label_start, float), np.asarray(label_end, float),
              ["#8c8c8c"] * len(label_text), [str(t) for t in label_text], span_s=span)
    ax.set_xlim(first, last)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    ax.set_xlabel("time (s)")
    return ax


def unit_gallery_example(features: np.ndarray, ax=None, *, unit: Optional[int] = None):
    """One occurrence's features as a bare image, framed in its unit's colour.

    No ticks or labels: gallery cards carry the time and confidence as text.

    Args:
        features: (n_frames, n_features) float in [0, 1]. The occurrence's frames.
        ax: matplotlib Axes or None. Where to draw; None makes a new figure.
        unit: int or None. Unit number, for the frame colour; None leaves no frame.

    Returns:
        The Axes.
    """
    features = np.asarray(features, dtype=float)
    ax = _axes(ax, (2, 1.2))
    if features.ndim == 2 and features.size:
        ax.imshow(features.T, origin="lower", aspect="auto", cmap=SPECTROGRAM_CMAP,
                  vmin=0.0, vmax=1.0, interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    color = _colors_of(np.array([unit]))[0] if unit is not None else None
    for spine in ax.spines.values():
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_edgecolor(color)
            spine.set_linewidth(3)
    return ax


def recording_overview(features: np.ndarray, *, frame_hop_s: float, duration_s: float,
                       start_s: np.ndarray, end_s: np.ndarray, units: np.ndarray,
                       labels: Optional[Tuple[np.ndarray, np.ndarray, Sequence[str]]] = None,
                       max_seconds: float = 60.0, row_seconds: float = 20.0,
                       width_in: float = 13.0) -> matplotlib.figure.Figure:
    """One recording's features with its unit timeline beneath, in rows of equal scale.

    The first `max_seconds` are drawn, `row_seconds` per row, so units stay wide
    enough to read; a recording no longer than one row fills the width.

    Args:
        features: (n_frames, n_features) float in [0, 1], from time 0; only the frames
            of the first `max_seconds` are drawn, so they are all it needs.
        frame_hop_s: float > 0. Seconds between frame starts.
        duration_s: float > 0. Length of the recording in seconds.
        start_s, end_s, units: (n,) occurrence bounds (seconds) and units.
        labels: (start_s, end_s, labels) of an annotation, or None.
        max_seconds: float > 0. Seconds drawn from the start. Defaults to 60.
        row_seconds: float > 0. Seconds per row. Defaults to 20.
        width_in: float > 0. Figure width in inches. Defaults to 13.

    Returns:
        A `new_figure` Figure (pass it to `figure_to_png_bytes`).
    """
    shown = min(duration_s, max_seconds)
    row_seconds = row_seconds if shown > row_seconds else shown
    n_rows = max(1, int(math.ceil(shown / row_seconds - 1e-9)))
    label_rows = 1 if labels is None else 2
    starts, ends = np.asarray(start_s, float), np.asarray(end_s, float)
    units = np.asarray(units, dtype=int)
    row_height = 1.35 + 0.28 * label_rows
    figure, _ = new_figure(width_in, n_rows * row_height + 0.35, nrows=0)
    outer = figure.add_gridspec(n_rows, 1, hspace=0.42, left=0.05, right=0.985,
                                top=1 - 0.1 / (n_rows * row_height + 0.35),
                                bottom=0.45 / (n_rows * row_height + 0.35))
    for row in range(n_rows):
        first, last = row * row_seconds, min((row + 1) * row_seconds, shown)
        inner = outer[row].subgridspec(2, 1, height_ratios=[4, 0.95 * label_rows],
                                       hspace=0.06)
        top = figure.add_subplot(inner[0])
        bottom = figure.add_subplot(inner[1], sharex=top)
        frames = slice(int(first / frame_hop_s), int(math.ceil(last / frame_hop_s)))
        spectrogram(features[frames], frame_hop_s=frame_hop_s, ax=top,
                    start_s=frames.start * frame_hop_s)
        top.set_xlabel("")
        top.tick_params(labelbottom=False)
        inside = (ends > first) & (starts < last)
        unit_timeline(starts[inside], ends[inside], units[inside], duration_s=duration_s,
                      ax=bottom, time_range=(first, first + row_seconds), labels=labels)
        if row < n_rows - 1:
            bottom.set_xlabel("")
    return figure


def distance_histograms(duplicate: np.ndarray, non_duplicate: np.ndarray, ax=None, *,
                        bins: int = 100):
    """Histograms of DTW distances of duplicate and non-duplicate pairs, overlaid.

    Good features put duplicates (same label) to the left of non-duplicates; the less
    the two overlap, the better (the Siamese-pair evaluation of `discovery pairs`).

    Args:
        duplicate: (n,) float. Distances of same-label pairs.
        non_duplicate: (m,) float. Distances of different-label pairs.
        ax: matplotlib Axes or None. Where to draw; None makes a new figure.
        bins: int > 0. Bins over the joint range, as the evaluation uses. Defaults to 100.

    Returns:
        The Axes.
    """
    ax = _axes(ax, (5, 3.5))
    duplicate = np.asarray(duplicate, dtype=float).ravel()
    non_duplicate = np.asarray(non_duplicate, dtype=float).ravel()
    both = np.concatenate([duplicate, non_duplicate])
    both = both[np.isfinite(both)]
    if both.size:
        edges = np.histogram_bin_edges(both, bins=bins)
        for values, color, name in ((duplicate, "#1f77b4", "duplicate (same label)"),
                                    (non_duplicate, "#ff7f0e", "non-duplicate")):
            if values.size:
                ax.hist(values[np.isfinite(values)], bins=edges, density=True, alpha=0.55,
                        color=color, label=f"{name}, n={values.size:,}")
        ax.legend(frameon=False)
    ax.set_xlabel("DTW distance")
    ax.set_ylabel("density")
    return ax


def distance_histograms_png(distances: dict, *, bins: int = 100) -> bytes:
    """A PNG grid of `distance_histograms`: one row per representation, one column per mode.

    Args:
        distances: {representation: {mode: (duplicate, non_duplicate)}}, as
            `evaluate.siamese_evaluation` returns (e.g. "raw"/"latent" x
            "normalized"/"cosine"/"closed"/"open_end"/"prefix").
        bins: int > 0. Histogram bins. Defaults to 100.

    Returns:
        The PNG file's bytes.
    """
    names = list(distances)
    modes = list(dict.fromkeys(mode for name in names for mode in distances[name]))
    with style():
        figure, axes = new_figure(4.2 * max(len(modes), 1), 3.2 * max(len(names), 1),
                                  nrows=max(len(names), 1), ncols=max(len(modes), 1),
                                  squeeze=False)
        for row, name in enumerate(names):
            for column, mode in enumerate(modes):
                ax = axes[row][column]
                if mode in distances[name]:
                    distance_histograms(*distances[name][mode], ax=ax, bins=bins)
                    ax.set_title(f"{name}, {mode.replace('_', ' ')}")
                else:
                    ax.set_visible(False)
        figure.tight_layout()
        return figure_to_png_bytes(figure, max_colors=None)

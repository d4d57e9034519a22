"""Line charts drawn by matplotlib inside a Qt widget, made the first time they are shown.

matplotlib takes a noticeable fraction of a second to import, and most review sessions never
open the validation panel, so nothing here imports it until a chart is actually on screen
(:meth:`LineChart.activate`). Until then a chart only remembers what it was asked to draw.
The colours follow the widget's palette, so the charts stay readable under a dark theme.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QSize
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

#: Line colours: matplotlib's tab10 without its red, which marks failed gates.
LINE_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Marker shapes in turn, so lines that share a point (two equal rates) both stay visible.
MARKERS = ("o", "s", "^", "D", "v", "P")
FAIL_MARK = "#d62728"
_MAX_XLABELS = 16  # more than this and every k-th label is shown, so they never overlap


@dataclass
class Series:
    """One line: y values at x positions (indices into the chart's x labels).

    ``failed`` are positions in ``xs`` drawn with a red cross (a failed gate); ``keys`` carries
    what each point stands for (an evaluation id, say), for callers that need it back.
    """

    label: str
    xs: list[int] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)


@dataclass
class _Plot:
    xlabels: list[str]
    series: list[Series]
    title: str
    ylabel: str
    unit_range: bool
    empty_text: str


class LineChart(QWidget):
    """A matplotlib figure with one axes; :meth:`plot` replaces what it shows."""

    def __init__(self, parent: QWidget | None = None, *, min_height: int = 200) -> None:
        super().__init__(parent)
        self.setMinimumHeight(min_height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel("")
        self._layout.addWidget(self._placeholder)
        self.figure: Any = None  # matplotlib.figure.Figure, once shown
        self.canvas: Any = None  # FigureCanvasQTAgg
        self._axes: Any = None
        self._plot: _Plot | None = None
        self._drawn: _Plot | None = None

    def sizeHint(self) -> QSize:
        return QSize(560, 280)  # before matplotlib is loaded too, so splitters leave it room

    # -- public ----------------------------------------------------------------------------
    def plot(
        self,
        xlabels: Sequence[str],
        series: Sequence[Series],
        *,
        title: str = "",
        ylabel: str = "",
        unit_range: bool = False,
        empty_text: str = "nothing to show yet",
    ) -> None:
        """Show ``series`` over ``xlabels`` (now if the chart is on screen, else when shown)."""
        self._plot = _Plot(list(xlabels), list(series), title, ylabel, unit_range, empty_text)
        if self.canvas is not None:
            self._render()

    @property
    def axes(self) -> Any:
        """The matplotlib Axes (creating the figure if it was never shown; used by tests)."""
        self._ensure_canvas()
        if self._drawn is not self._plot:
            self._render()
        return self._axes

    @property
    def loaded(self) -> bool:
        """Whether matplotlib has been imported for this chart."""
        return self.canvas is not None

    def activate(self) -> None:
        """Make the figure and draw: called once the chart is really on screen.

        Not from ``showEvent``: a dock tabbed behind another is "shown" too, just off screen,
        and that must not cost the matplotlib import.
        """
        if self.canvas is None:
            self._ensure_canvas()
            self._render()

    # -- drawing ---------------------------------------------------------------------------
    def _ensure_canvas(self) -> None:
        if self.canvas is not None:
            return
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(6, 2.6), dpi=100)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(self.minimumHeight())
        self.canvas.mpl_connect("resize_event", lambda _e: self._fit_layout())
        self._axes = self.figure.add_subplot(1, 1, 1)
        self._layout.removeWidget(self._placeholder)
        self._placeholder.deleteLater()
        self._layout.addWidget(self.canvas)

    def _colors(self) -> tuple[str, str, str]:
        pal = self.palette()
        return (
            pal.color(QPalette.ColorRole.Window).name(),
            pal.color(QPalette.ColorRole.Base).name(),
            pal.color(QPalette.ColorRole.WindowText).name(),
        )

    def _render(self) -> None:
        plot = self._plot or _Plot([], [], "", "", False, "")
        self._drawn = self._plot
        ax = self._axes
        window, base, text = self._colors()
        ax.clear()
        self.figure.set_facecolor(window)
        ax.set_facecolor(base)
        for spine in ax.spines.values():
            spine.set_color(text)
        ax.tick_params(colors=text, labelsize=8)
        ax.set_prop_cycle(color=list(LINE_COLORS))
        drawn = 0
        for s in plot.series:
            points = [(x, y) for x, y in zip(s.xs, s.ys, strict=True) if not _missing(y)]
            if not points:
                continue
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker=MARKERS[drawn % len(MARKERS)],
                markersize=7 - drawn % 3,  # later markers smaller: a shared point shows both
                linewidth=1.5,
                label=s.label,
            )
            bad = [(s.xs[i], s.ys[i]) for i in s.failed if not _missing(s.ys[i])]
            if bad:
                ax.scatter(
                    [p[0] for p in bad],
                    [p[1] for p in bad],
                    marker="X",
                    s=70,
                    color=FAIL_MARK,
                    zorder=3,
                    label="_failed gate",
                )
            drawn += 1
        n = len(plot.xlabels)
        if n:
            step = max(1, math.ceil(n / _MAX_XLABELS))
            ax.set_xticks(range(n))
            ax.set_xticklabels(
                [label if i % step == 0 else "" for i, label in enumerate(plot.xlabels)],
                rotation=25 if n > 4 else 0,
                ha="right" if n > 4 else "center",
            )
            ax.set_xlim(-0.5, n - 0.5)
        else:
            ax.set_xticks([])
        if plot.unit_range:
            ax.set_ylim(-0.02, 1.02)
        if plot.title:
            ax.set_title(plot.title, fontsize=10, color=text)
        if plot.ylabel:
            ax.set_ylabel(plot.ylabel, fontsize=9, color=text)
        ax.grid(True, alpha=0.3)
        if drawn:
            legend = ax.legend(fontsize=8, loc="best", framealpha=0.8)
            legend.get_frame().set_facecolor(base)
            for t in legend.get_texts():
                t.set_color(text)
        else:
            ax.text(
                0.5,
                0.5,
                plot.empty_text,
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color=text,
            )
        self._fit_layout()

    def _fit_layout(self) -> None:
        if self.figure is None:
            return
        width, height = self.figure.get_size_inches()
        if width * height > 0.5:  # a collapsed widget cannot be laid out: wait for a size
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "tight_layout not applied" on tiny sizes
                self.figure.tight_layout(pad=0.6)
        self.canvas.draw_idle()


def _missing(y: float | None) -> bool:
    return y is None or (isinstance(y, float) and math.isnan(y))

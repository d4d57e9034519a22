"""Image decoding off the GUI thread, with prefetch and a small cache.

Photos are decoded in a thread pool, upright (EXIF applied) and scaled for the screen: JPEG's
DCT scaling (Pillow ``draft``) makes a 4000x3000 photo decode at 1/4 or 1/8 size for a fraction
of the cost. When the reviewer zooms in past the screen resolution, the full-resolution image is
decoded on demand. The next images are prefetched so stepping through shows them at once.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

SCREEN_SIDE = 1280  # longest side shown for on-screen review, before zooming in
#: JPEG decodes at 1/2, 1/4 or 1/8 scale almost for free; we accept a decode up to this much
#: smaller than SCREEN_SIDE (the view scales it smoothly) rather than pay for the next size up.
DRAFT_SLACK = 1.3


def decode(path: Path, max_side: int | None) -> QImage:
    """Decode ``path`` upright, at most ``max_side`` pixels on its longest side (None: full)."""
    with Image.open(path) as im:
        if max_side is not None and im.format == "JPEG":
            w, h = im.size
            scale = max_side / DRAFT_SLACK / max(w, h)
            if scale < 1:
                im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
        upright = ImageOps.exif_transpose(im)
        if upright.mode not in ("RGB", "RGBA"):
            upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
        if max_side is not None and max(upright.size) > max_side * 1.5:
            upright.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        fmt = (
            QImage.Format.Format_RGBA8888
            if upright.mode == "RGBA"
            else (QImage.Format.Format_RGB888)
        )
        data = upright.tobytes()
        channels = 4 if upright.mode == "RGBA" else 3
        qimg = QImage(data, upright.width, upright.height, upright.width * channels, fmt)
        return qimg.copy()  # own the pixels: ``data`` goes away with this frame


class _Signals(QObject):
    done = Signal(str, QImage, bool)  # sha, image, full resolution


class _DecodeTask(QRunnable):
    def __init__(
        self, sha: str, path: Path, max_side: int | None, signals: _Signals, running: set
    ) -> None:
        super().__init__()
        self.sha, self.path, self.max_side, self.signals = sha, path, max_side, signals
        self.running = running

    def run(self) -> None:
        key = (self.sha, self.max_side is None)
        self.running.add(key)
        try:
            image = decode(self.path, self.max_side)
        except Exception:  # a file that became unreadable: show an empty canvas, not crash
            image = QImage()
        finally:
            self.running.discard(key)
        self.signals.done.emit(self.sha, image, self.max_side is None)


class ImageLoader(QObject):
    """Asynchronous, cached image source. ``imageReady`` fires on the GUI thread."""

    imageReady = Signal(str, QImage, bool)

    def __init__(self, path_of, parent: QObject | None = None, cache_size: int = 24) -> None:
        super().__init__(parent)
        self.path_of = path_of
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.cache: OrderedDict[tuple[str, bool], QImage] = OrderedDict()
        self.cache_size = cache_size
        self.inflight: set[tuple[str, bool]] = set()
        self._running: set[tuple[str, bool]] = set()  # started tasks (set by worker threads)
        self.signals = _Signals()
        self.signals.done.connect(self._done)

    def cached(self, sha: str, full: bool = False) -> QImage | None:
        key = (sha, full)
        image = self.cache.get(key)
        if image is not None:
            self.cache.move_to_end(key)
        return image

    def request(self, sha: str, full: bool = False) -> QImage | None:
        """Return the image now if cached, else start decoding it (``imageReady`` follows).

        The image on screen goes first: prefetches that have not started yet are dropped (they
        were for the old position) so a jump never waits behind them.
        """
        image = self.cached(sha, full)
        if image is not None:
            return image
        self.pool.clear()
        self.inflight = {k for k in self.inflight if k in self._running}
        self._start(sha, full, priority=1)
        return None

    def prefetch(self, shas: list[str]) -> None:
        for sha in shas:
            if (sha, False) not in self.cache:
                self._start(sha, False, priority=0)

    def _start(self, sha: str, full: bool, priority: int) -> None:
        key = (sha, full)
        if key in self.inflight:
            return
        self.inflight.add(key)
        task = _DecodeTask(
            sha, self.path_of(sha), None if full else SCREEN_SIDE, self.signals, self._running
        )
        self.pool.start(task, priority)

    def _done(self, sha: str, image: QImage, full: bool) -> None:
        key = (sha, full)
        self.inflight.discard(key)
        self.cache[key] = image
        self.cache.move_to_end(key)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        self.imageReady.emit(sha, image, full)

    def shutdown(self) -> None:
        self.pool.clear()
        self.pool.waitForDone(5000)

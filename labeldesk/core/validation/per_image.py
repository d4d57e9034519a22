"""Per-image views of columns laid end to end: what an evaluation reads, kept as it was read.

The labels and detections of a version are read column-wise, all images at once, and the
metric engine takes those columns as they are. A few callers (a subset of the images, the
review's disagreement list, tests) still ask for one image's arrays; they are cut from the
columns when asked for. Cutting them for every image up front cost as much as reading the
numbers (``bench/eval.py --validate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")


class PerImage(Mapping[str, V], Generic[V]):
    """image hash -> its rows of the columns, for ``images`` holding ``counts`` rows each, in
    that order. Subclasses say which columns an image's value holds (:meth:`_cut`)."""

    def __init__(self, images: Sequence[str], counts: np.ndarray) -> None:
        self.images = tuple(images)
        self._at = dict(zip(self.images, range(len(self.images)), strict=True))
        ends = np.cumsum(counts)
        self._ends: list[int] = ends.tolist()
        self._starts: list[int] = (ends - counts).tolist()

    def _cut(self, start: int, end: int) -> V:
        raise NotImplementedError

    def __getitem__(self, sha: str) -> V:
        k = self._at[sha]
        return self._cut(self._starts[k], self._ends[k])

    def __contains__(self, sha: object) -> bool:
        return sha in self._at

    def __iter__(self) -> Iterator[str]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

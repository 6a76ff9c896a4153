"""The highest and lowest values of a series' recent past, in constant memory and time.

Both ``envelope`` (values and means against their own past extremes) and the news gate of
the baseline detectors (a verdict's exceedance against the largest exceedances before it)
ask one question: is this beyond anything seen in roughly the last ``memory`` samples?
"""

from __future__ import annotations

import math
from collections import deque


class Extremes:
    """The highest and lowest values of roughly the last ``memory`` samples.

    Kept as the extremes of ``BLOCKS`` consecutive blocks, so memory and work per sample are
    constant; a block leaves as a whole when a new one starts.
    """

    BLOCKS = 32
    __slots__ = ("block", "blocks", "count", "high", "low", "old", "seen", "size")

    def __init__(self, memory: float) -> None:
        self.size = max(1, round(memory / self.BLOCKS))
        self.blocks: deque[tuple[float, float]] = deque(maxlen=self.BLOCKS)
        self.block = (math.inf, -math.inf)
        self.old = (math.inf, -math.inf)  # extremes of the full blocks
        self.count = 0
        self.seen = 0
        self.high = -math.inf
        self.low = math.inf

    @property
    def width(self) -> float:
        return max(self.high - self.low, 0.0)

    def add(self, x: float) -> None:
        self.seen += 1
        low, high = self.block
        self.block = (min(low, x), max(high, x))
        self.count += 1
        if self.count == self.size:
            self.blocks.append(self.block)
            self.block, self.count = (math.inf, -math.inf), 0
            self.old = (min(b[0] for b in self.blocks), max(b[1] for b in self.blocks))
        self.low = min(self.old[0], self.block[0])
        self.high = max(self.old[1], self.block[1])

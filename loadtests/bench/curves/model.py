"""What a curve is: named series of (x, y) points, with the baseline from the same run."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Series:
    label: str
    xs: list[float] = dataclasses.field(default_factory=list)
    ys: list[float | None] = dataclasses.field(default_factory=list)
    baseline: bool = False  # drawn dashed: what the platform is compared with
    points_only: bool = False  # separate measurements (the examples), not a line

    def add(self, x: float, y: float | None) -> None:
        self.xs.append(x)
        self.ys.append(None if y is None else round(y, 3))


@dataclasses.dataclass
class Panel:
    """One plot: a y quantity against the curve's x, several series."""

    y_label: str
    series: list[Series]
    log_y: bool = False


@dataclasses.dataclass
class Curve:
    name: str  # the PNG's file name, docs/curves/NAME.png
    title: str
    x_label: str
    panels: list[Panel]
    log_x: bool = False
    # Every measurement as taken (one dict per point), for the JSON.
    points: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Curve:
        panels = [
            Panel(**{**p, "series": [Series(**s) for s in p["series"]]}) for p in data["panels"]
        ]
        return cls(**{**data, "panels": panels})

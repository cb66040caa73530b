"""Curves drawn as PNGs (matplotlib, no display): one figure per curve, a panel per
quantity, baselines dashed."""

from __future__ import annotations

from pathlib import Path

from loadtests.bench.curves.model import Curve

PANEL_INCHES = (5.2, 3.8)


def draw(curve: Curve, out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = curve.panels
    fig, axes = plt.subplots(
        1, len(panels), figsize=(PANEL_INCHES[0] * len(panels), PANEL_INCHES[1]), squeeze=False
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        for series in panel.series:
            xy = [(x, y) for x, y in zip(series.xs, series.ys, strict=True) if y is not None]
            if not xy:
                continue
            xs, ys = zip(*xy, strict=True)
            if series.points_only:
                ax.plot(xs, ys, "D", label=series.label)
            else:
                ax.plot(xs, ys, "--" if series.baseline else "-o", label=series.label)
        if curve.log_x:
            ax.set_xscale("log", base=2 if curve.name == "concurrency" else 10)
        else:  # a few whole numbers (nodes): a tick each
            ax.set_xticks(sorted({x for s in panel.series for x in s.xs}))
        if panel.log_y:
            ax.set_yscale("log")
        else:  # from 0: a flat curve looks flat, not like noise magnified
            ax.set_ylim(bottom=0)
        ax.set_xlabel(curve.x_label)
        ax.set_ylabel(panel.y_label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(curve.title)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{curve.name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

"""Top-down rollout pictures: box, target circle, agents with heading and trails, as an animated GIF."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation, patches, transforms  # noqa: E402

AGENT_COLOURS = ("tab:blue", "tab:orange")


def render_gif(
    frames: np.ndarray,
    box_size_m: np.ndarray,
    out: str | Path,
    *,
    success_radius_m: float = 1.0,
    agent_size_m: tuple[float, float] = (0.6, 0.3),
    dt_s: float = 0.02,
    frame_stride: int = 5,
    titles: list[str] | None = None,
) -> Path:
    """Write an animated top-down view of one or more episodes.

    Args:
        frames: (T, n, 17) global states (see `observations.global_state`) of n envs over T steps; rows
            after an env's episode ended repeat its last state.
        box_size_m: (n,) box side per env.
        out: path of the .gif to write.
        frame_stride: draw every k-th step (MAPush runs at 50 Hz; 5 gives 10 frames per second of sim time).
        titles: one line per env shown above its panel (e.g. the outcome).
    """
    frames = np.asarray(frames, dtype=np.float64)[::frame_stride]
    num_frames, n, _ = frames.shape
    cols = math.ceil(math.sqrt(n))  # 4 envs: 2 x 2, no empty panels
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows + 0.5), squeeze=False)
    panels = []
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        target = frames[0, k, 3:5]
        extent = max(3.5, np.abs(frames[:, k, [0, 1, 3, 4, 5, 6, 11, 12]]).max() + 1.0)
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_title(titles[k] if titles else f"env {k}", fontsize=9)
        ax.add_patch(patches.Circle(target, success_radius_m, fill=False, ls="--", color="tab:green"))
        ax.plot(*target, marker="*", color="tab:green", ms=12)
        half = box_size_m[k] / 2
        box = patches.Rectangle((-half, -half), 2 * half, 2 * half, color="saddlebrown", alpha=0.8)
        ax.add_patch(box)
        agents, trails, arrows = [], [], []
        for colour in AGENT_COLOURS:
            length, width = agent_size_m
            body = patches.Rectangle((-length / 2, -width / 2), length, width, color=colour, alpha=0.9)
            ax.add_patch(body)
            (trail,) = ax.plot([], [], color=colour, lw=1, alpha=0.6)
            (arrow,) = ax.plot([], [], color="k", lw=1.5)
            agents.append(body)
            trails.append(trail)
            arrows.append(arrow)
        time_text = ax.text(0.02, 0.95, "", transform=ax.transAxes, fontsize=8, va="top")
        panels.append((ax, box, agents, trails, arrows, time_text))

    def draw(t: int) -> list:
        artists = []
        for k, (ax, box, agents, trails, arrows, time_text) in enumerate(panels):
            state = frames[t, k]
            box.set_transform(transforms.Affine2D().rotate(state[2]).translate(*state[0:2]) + ax.transData)
            artists.append(box)
            for i in range(len(agents)):
                x, y, yaw = state[5 + 6 * i : 8 + 6 * i]
                agents[i].set_transform(transforms.Affine2D().rotate(yaw).translate(x, y) + ax.transData)
                trail_xy = frames[: t + 1, k, 5 + 6 * i : 7 + 6 * i]
                trails[i].set_data(trail_xy[:, 0], trail_xy[:, 1])
                nose = (x + 0.45 * math.cos(yaw), y + 0.45 * math.sin(yaw))
                arrows[i].set_data([x, nose[0]], [y, nose[1]])
                artists += [agents[i], trails[i], arrows[i]]
            time_text.set_text(f"t = {t * frame_stride * dt_s:4.1f} s")
            artists.append(time_text)
        return artists

    legend = [patches.Patch(color=colour, label=f"agent_{i} (line: heading, trail: path)")
              for i, colour in enumerate(AGENT_COLOURS)]
    legend += [patches.Patch(color="saddlebrown", label="box"),
               plt.Line2D([], [], marker="*", color="tab:green", ls="--", ms=10,
                          label=f"target, success radius {success_radius_m:g} m")]
    fig.legend(handles=legend, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (3.6 * rows + 0.5) + 0.04, 1, 1))
    anim = animation.FuncAnimation(fig, draw, frames=num_frames, blit=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    anim.save(out, writer=animation.PillowWriter(fps=max(1, round(1 / (dt_s * frame_stride)))))
    plt.close(fig)
    return out

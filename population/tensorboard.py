"""TensorBoard's first page for a run: the curves a user needs, in a custom-scalars layout.

Tune logs ~180 scalars per member under `ray/tune/<result key>`, in alphabetical order. The layout, written once
into the run folder (`tensorboard --logdir <run or storage>`, tab "Custom Scalars"), puts each member's
held-out success, contribution balance and freeloading, curriculum level, score and the values PBT mutates on
one page, every member on the same chart. The x-axis is env steps (`MAPushPPO.step` sets `timesteps_total`).
"""

from __future__ import annotations

from pathlib import Path

from tensorboardX import SummaryWriter

from population import result_keys as keys

LAYOUT_DIR = "tensorboard_layout"
_TAG = "ray/tune/{}"


def layout() -> dict:
    """{category: {chart: ["Multiline", [tag regexes]]}}, as TensorBoard's custom-scalars plugin reads it."""
    def chart(*result_keys: str) -> list:
        return ["Multiline", [_TAG.format(key) for key in result_keys]]

    return {
        "Team (held-out evaluation)": {
            "success rate": chart(keys.EVAL_SUCCESS_RATE),
            "contribution balance (0: one agent does nothing, 1: both needed)": chart(keys.EVAL_CONTRIBUTION_BALANCE),
            "freeloading index": chart(keys.EVAL_FREELOADING_INDEX),
            "finish time (s)": chart(keys.EVAL_FINISH_TIME),
        },
        "Curriculum and population": {
            "curriculum level (mean)": chart(keys.LEVEL_MEAN),
            "member score (what PBT ranks by)": chart(keys.SCORE),
            "values PBT mutates (as the learner and envs hold them)": chart(f"{keys.LIVE_SETTINGS}/.*"),
        },
    }


def write_layout(run_dir: Path) -> None:
    with SummaryWriter(str(run_dir / LAYOUT_DIR)) as writer:
        writer.add_custom_scalars(layout())

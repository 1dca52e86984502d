"""The report's reading of Tune's PBT history, as Tune writes it before and after a resume."""

from __future__ import annotations

import json

from population.report import load_exploits


def test_exploits_after_a_resume_name_the_members_without_tunes_perturbed_suffix(tmp_path) -> None:
    config = {"member": 0, "lr": 1e-3}
    lines = [  # [receiver tag, donor tag, receiver iteration, donor iteration, donor config, new config]
        ["0_member=0", "2_member=2", 59, 50, config, {**config, "lr": 2e-3}],
        ["3_member=3@perturbed[lr=0.002]", "0_member=0@perturbed[lr=0.002]", 210, 220, config, config],
    ]
    (tmp_path / "pbt_global.txt").write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, resumed = load_exploits(tmp_path)
    assert (first.receiver, first.donor, first.changes) == ("0_member=0", "2_member=2", {"lr": (1e-3, 2e-3)})
    assert (resumed.receiver, resumed.donor) == ("3_member=3", "0_member=0")

"""Population-based training on top of everything else: the experiment file, the members, Tune's PBT, reports.

The top layer: it imports the RLlib adapter (`mapush_rllib`) and the curriculum, nothing imports it. Users write
experiment paths (`rewards.per_agent_scales.agent_0.ocb`); `members.py` translates them once into the trial config
Tune mutates. Entry point: `python -m population.run configs/pbt.yaml`; lineage and curves:
`python -m population.report <run folder>`.
"""

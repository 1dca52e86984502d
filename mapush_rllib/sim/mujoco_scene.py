"""The MJCF scene of the pushing task, generated from `PhysicsConfig`.

One world holds a free box on a flat floor and two agents. An agent is a box with the Go1's footprint
on planar joints (slide x, slide y, hinge z) that floats just above the floor, so walking is replaced
by velocity servos: `velocity` actuators with *site* transmission track body-frame vx, vy and yaw rate
directly, with force limits in the range a Go1 can push with. Contacts: box-floor, agent-box and
agent-agent; agents never touch the floor (contype/conaffinity bits).

Friction: MuJoCo combines two geoms' friction by taking the max, PhysX (Isaac Gym) by averaging. The
box geom therefore carries the *combined* box-floor coefficient, (mu_box + mu_ground) / 2, and the floor
a lower one, so MuJoCo's max picks the PhysX-averaged value (spec §1.2).
"""

from __future__ import annotations

from mapush_rllib.sim.config import NUM_AGENTS, PhysicsConfig

AGENT_CLEARANCE_M = 0.05  # gap between the floor and an agent's collision body


def agent_centre_height_m(physics: PhysicsConfig) -> float:
    return AGENT_CLEARANCE_M + physics.agent_height_m / 2


def combined_box_friction(physics: PhysicsConfig, box_friction: float) -> float:
    """The box-floor friction that PhysX's average combine mode would give."""
    return 0.5 * (box_friction + physics.ground_friction)


def scene_xml(physics: PhysicsConfig, box_size_m: float = 1.2, box_mass_kg: float = 4.0) -> str:
    """MJCF of one world. The box footprint and mass here are only the defaults; they are per-env later."""
    half_box = (box_size_m / 2, box_size_m / 2, physics.box_height_m / 2)
    half_agent = (physics.agent_length_m / 2, physics.agent_width_m / 2, physics.agent_height_m / 2)
    box_mu = combined_box_friction(physics, sum(physics.box_friction_range) / 2)
    z_agent = agent_centre_height_m(physics)
    agents, actuators, sensors = [], [], []
    for i in range(NUM_AGENTS):
        agents.append(f"""
    <body name="agent{i}" pos="0 0 {z_agent}">
      <joint name="agent{i}_x" type="slide" axis="1 0 0"/>
      <joint name="agent{i}_y" type="slide" axis="0 1 0"/>
      <joint name="agent{i}_yaw" type="hinge" axis="0 0 1"/>
      <geom name="agent{i}" type="box" size="{half_agent[0]} {half_agent[1]} {half_agent[2]}"
            mass="{physics.agent_mass_kg}" contype="2" conaffinity="2" friction="0.5 0.005 0.0001"/>
      <site name="agent{i}_base"/>
    </body>""")
        force = physics.agent_max_force_n
        torque = physics.agent_max_torque_nm
        actuators.append(f"""
    <velocity name="agent{i}_vx" site="agent{i}_base" gear="1 0 0 0 0 0" kv="{physics.agent_velocity_gain}"
              forcelimited="true" forcerange="{-force} {force}"/>
    <velocity name="agent{i}_vy" site="agent{i}_base" gear="0 1 0 0 0 0" kv="{physics.agent_velocity_gain}"
              forcelimited="true" forcerange="{-force} {force}"/>
    <velocity name="agent{i}_wz" site="agent{i}_base" gear="0 0 0 0 0 1" kv="{physics.agent_yaw_gain}"
              forcelimited="true" forcerange="{-torque} {torque}"/>""")
        sensors.append(
            f'\n    <contact name="agent{i}_box" geom1="agent{i}" geom2="box" data="force" reduce="netforce"/>'
        )
    return f"""<mujoco model="mapush_go1push_mid">
  <compiler angle="radian"/>
  <option timestep="{physics.physics_dt_s}" iterations="{physics.solver_iterations}" ls_iterations="10"
          cone="pyramidal">
    <flag energy="disable"/>
  </option>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 0.1" contype="1" conaffinity="1"
          friction="{physics.ground_friction} 0.005 0.0001"/>
    <body name="box" pos="0 0 {half_box[2]}">
      <freejoint name="box"/>
      <geom name="box" type="box" size="{half_box[0]} {half_box[1]} {half_box[2]}" mass="{box_mass_kg}"
            contype="3" conaffinity="3" friction="{box_mu} 0.005 0.0001"/>
    </body>{"".join(agents)}
  </worldbody>
  <actuator>{"".join(actuators)}
  </actuator>
  <sensor>{"".join(sensors)}
  </sensor>
</mujoco>
"""

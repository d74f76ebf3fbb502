"""ROS 2 stack of the real arm and its simulated twin (installed as ``icpi.robot``).

The logic lives in plain Python modules that import neither rclpy nor ROS messages, so
``import icpi`` stays light and the logic is unit-tested without ROS:

- :mod:`icpi.robot.skill`: the arm model (planar 2R or xy gantry), θ → joint trajectory,
  limit checks and the trust region;
- :mod:`icpi.robot.track`: ball-track bookkeeping, rest detection, the watchdog;
- :mod:`icpi.robot.contract`: the request/result message contract between driver and arm;
- :mod:`icpi.robot.runner`: one trial from request to result (the skill node's logic);
- :mod:`icpi.robot.twin`: the MuJoCo twin behind the simulated arm node;
- :mod:`icpi.robot.adapter`: the :class:`~icpi.envs.spec.SkillTask` that runs
  ICPI's loop on the arm, and hindsight relabelling of real rollouts.

The nodes (:mod:`icpi.robot.arm_node`, :mod:`icpi.robot.sim_arm_node`,
:mod:`icpi.robot.driver_node`) are thin rclpy adapters around those; see
``robot/README.md`` for topics, parameters and safety.
"""

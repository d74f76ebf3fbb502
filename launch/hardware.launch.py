"""ICPI on the arm: arm skill node and ICPI driver; with ``twin:=true``, on the arm's twin.

    ros2 launch icpi hardware.launch.py [params:=/path/to.yaml] [driver:=false]
        [tracker:=true] [twin:=true]

``twin:=false`` (default): your arm's joint trajectory controller, its joint_states and a
camera (with ``tracker:=true``) or a ball tracker of your own must already run; edit
``params/hardware.yaml`` (next to this file, or ``ur5e.yaml`` / ``panda.yaml``) for your
arm first. ``twin:=true``: the same graph on the configured arm's MuJoCo twin
(``icpi-sim-arm-node`` from the ``icpi_sim_arm`` section of the same file: the arm model
on the table, its camera and ArUco marker) instead of the hardware, every node on the
twin's clock (``use_sim_time``). ``tracker:=true`` starts ``icpi-tracker-node``
(``icpi_tracker`` section; make its calibration first with ``icpi-calibrate``). Thin on
purpose: the nodes declare and check every parameter (see robot/README.md).
"""

import os

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

PARAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "params", "hardware.yaml")


def generate_launch_description():
    """The launch description."""
    params = LaunchConfiguration("params")
    twin = LaunchConfiguration("twin")
    # On the twin every node runs on its simulated clock (/clock); on hardware, wall time.
    clock = {"use_sim_time": ParameterValue(twin, value_type=bool)}
    return LaunchDescription(
        [
            DeclareLaunchArgument("params", default_value=PARAMS, description="params YAML"),
            DeclareLaunchArgument("driver", default_value="true", description="start the driver"),
            DeclareLaunchArgument(
                "tracker", default_value="false", description="start icpi-tracker-node"
            ),
            DeclareLaunchArgument(
                "twin", default_value="false", description="the arm's MuJoCo twin, not hardware"
            ),
            Node(
                package="icpi",
                executable="icpi-sim-arm-node",
                name="icpi_sim_arm",
                parameters=[params],
                output="screen",
                condition=IfCondition(twin),
            ),
            Node(
                package="icpi",
                executable="icpi-tracker-node",
                name="icpi_tracker",
                parameters=[params, clock],
                output="screen",
                condition=IfCondition(LaunchConfiguration("tracker")),
            ),
            Node(
                package="icpi",
                executable="icpi-arm-node",
                name="icpi_arm",
                parameters=[params, clock],
                output="screen",
            ),
            Node(
                package="icpi",
                executable="icpi-driver-node",
                name="icpi_driver",
                parameters=[params, clock],
                output="screen",
                condition=IfCondition(LaunchConfiguration("driver")),
            ),
        ]
    )

"""Whole ICPI graph on the simulated arm: MuJoCo twin, arm skill node, ICPI driver.

    ros2 launch icpi sim_arm.launch.py [params:=/path/to.yaml] [driver:=false]

Parameters come from ``params/sim_arm.yaml`` (next to this file). Thin on purpose: the
nodes declare and check every parameter (see robot/README.md).
"""

import os

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PARAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "params", "sim_arm.yaml")


def generate_launch_description():
    """The launch description."""
    params = LaunchConfiguration("params")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params", default_value=PARAMS, description="params YAML"),
            DeclareLaunchArgument("driver", default_value="true", description="start the driver"),
            Node(
                package="icpi",
                executable="icpi-sim-arm-node",
                name="icpi_sim_arm",
                parameters=[params],
                output="screen",
            ),
            Node(
                package="icpi",
                executable="icpi-arm-node",
                name="icpi_arm",
                parameters=[params],
                output="screen",
            ),
            Node(
                package="icpi",
                executable="icpi-driver-node",
                name="icpi_driver",
                parameters=[params],
                output="screen",
                condition=IfCondition(LaunchConfiguration("driver")),
            ),
        ]
    )

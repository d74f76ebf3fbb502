"""Colcon (ament_python) shim: ``colcon build`` runs this file; pip reads pyproject.toml.

It only adds the ROS 2 package index marker, package.xml, the launch files and their
parameters as data files, so ``ros2 launch icpi sim_arm.launch.py`` finds them.
"""

from glob import glob

from setuptools import setup

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/icpi"]),
        ("share/icpi", ["package.xml"]),
        ("share/icpi/launch", sorted(glob("launch/*.launch.py"))),
        ("share/icpi/launch/params", sorted(glob("launch/params/*.yaml"))),
    ]
)

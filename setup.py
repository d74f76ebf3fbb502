"""Colcon (ament_python) shim: ``colcon build`` runs this file; pip reads pyproject.toml.

It only adds the ROS 2 package index marker, package.xml, the launch files and their
parameters as data files, so ``ros2 launch icpi sim_arm.launch.py`` finds them. It also
writes ``python_requires`` back as text: colcon-python-setup-py reads the distribution's
attributes with ``ast.literal_eval``, and setuptools keeps ``requires-python`` as a
``SpecifierSet``, whose repr is no literal (colcon build failed with a SyntaxError).
"""

from glob import glob

from setuptools import setup
from setuptools.dist import Distribution


class _Distribution(Distribution):
    def parse_config_files(self, *args, **kwargs) -> None:
        super().parse_config_files(*args, **kwargs)
        for holder in (self, self.metadata):
            value = getattr(holder, "python_requires", None)
            if value is not None and not isinstance(value, str):
                holder.python_requires = str(value)


setup(
    distclass=_Distribution,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/icpi"]),
        ("share/icpi", ["package.xml"]),
        ("share/icpi/launch", sorted(glob("launch/*.launch.py"))),
        ("share/icpi/launch/params", sorted(glob("launch/params/*.yaml"))),
    ],
)

"""Launch files cannot run here (no `launch` on PyPI): check what they name instead.

Every executable a launch file starts is one of our console scripts with a ``main``; every
parameter its YAML sets is declared by that node, with the YAML's type; package.xml is an
ament_python manifest.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from icpi.robot.params import DriverConfig, SimArmConfig, SkillNodeConfig, TrackerConfig

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
# The [project.scripts] entries of the nodes.
SCRIPTS = {
    "icpi-arm-node": "icpi.robot.arm_node:main",
    "icpi-driver-node": "icpi.robot.driver_node:main",
    "icpi-sim-arm-node": "icpi.robot.sim_arm_node:main",
    "icpi-tracker-node": "icpi.robot.tracker_node:main",
    "icpi-calibrate": "icpi.robot.calibrate:main",
}
CONFIGS = {
    "icpi_arm": SkillNodeConfig,
    "icpi_sim_arm": SimArmConfig,
    "icpi_driver": DriverConfig,
    "icpi_tracker": TrackerConfig,
}
# Nested sections of a node's YAML that hold the typed run configuration (driver only).
NESTED = {"icpi_driver": {"run", "llm"}}
# Parameters every rclpy node declares itself.
ROS_PARAMS = {"use_sim_time"}
EXECUTABLE_OF = {
    "icpi_arm": "icpi-arm-node",
    "icpi_sim_arm": "icpi-sim-arm-node",
    "icpi_driver": "icpi-driver-node",
    "icpi_tracker": "icpi-tracker-node",
}


def launch_nodes(path: Path) -> tuple[list[dict[str, str]], str]:
    """The Node(...) calls of a launch file (keyword constants) and its params YAML name."""
    tree = ast.parse(path.read_text())
    nodes, yaml_name = [], None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node":
            found = {
                k.arg: k.value.value
                for k in node.keywords
                if isinstance(k.value, ast.Constant) and k.arg
            }
            found["conditional"] = any(k.arg == "condition" for k in node.keywords)
            nodes.append(found)
        if isinstance(node, ast.Constant) and str(node.value).endswith(".yaml"):
            yaml_name = node.value
    assert yaml_name, f"{path.name} names no params YAML"
    return nodes, yaml_name


def sections(yaml_path: Path) -> dict[str, dict]:
    data = yaml.safe_load(yaml_path.read_text())
    out = {}
    for key, body in data.items():
        assert key.startswith("/**/"), f"{yaml_path.name}: key {key} should be /**/<node>"
        out[key[4:]] = body["ros__parameters"]
    return out


LAUNCH_FILES = sorted(LAUNCH.glob("*.launch.py"))


def test_both_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} == {"sim_arm.launch.py", "hardware.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_real_executables_and_declared_parameters(path):
    nodes, yaml_name = launch_nodes(path)
    params = sections(LAUNCH / "params" / yaml_name)
    # Every section is a node of the launch file; every node it always starts has one.
    assert set(params) <= {n["name"] for n in nodes}
    assert {n["name"] for n in nodes if not n["conditional"] or n["name"] == "icpi_driver"} <= set(
        params
    )
    for n in nodes:
        if n["name"] not in params:
            continue
        assert n["package"] == "icpi"
        assert n["executable"] in SCRIPTS, n
        assert EXECUTABLE_OF[n["name"]] == n["executable"]
        module, _, func = SCRIPTS[n["executable"]].partition(":")
        assert callable(getattr(importlib.import_module(module), func))
        declared = {f.name for f in dataclasses.fields(CONFIGS[n["name"]])}
        unknown = set(params[n["name"]]) - declared - NESTED.get(n["name"], set()) - ROS_PARAMS
        assert not unknown, f"{yaml_name}: {n['name']} does not declare {sorted(unknown)}"


def test_sim_yaml_sets_every_parameter_and_shares_the_arm_geometry():
    params = sections(LAUNCH / "params" / "sim_arm.yaml")
    assert {"icpi_arm", "icpi_sim_arm", "icpi_driver"} <= set(params)
    for name in params:
        cls = CONFIGS[name]
        want = {f.name for f in dataclasses.fields(cls)} | NESTED.get(name, set())
        # Every one, but may leave unset those unset by default (start_theta: the
        # computed default runs).
        optional = {f.name for f in dataclasses.fields(cls) if f.default is None}
        assert want - optional <= set(params[name]) - ROS_PARAMS <= want, name
    for key in ("joint_names", "kinematics", "base_xy", "link_lengths", "elbow", "home"):
        assert params["icpi_sim_arm"][key] == params["icpi_arm"][key], key


def test_node_modules_run_as_scripts():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {k: v for k, v in scripts.items() if k != "icpi"} == SCRIPTS
    for target in SCRIPTS.values():
        module = target.partition(":")[0]
        source = (ROOT / "robot" / (module.rsplit(".", 1)[1] + ".py")).read_text()
        assert 'if __name__ == "__main__":' in source, module


@pytest.mark.parametrize("yaml_name", ["sim_arm.yaml", "hardware.yaml", "ur5e.yaml", "panda.yaml"])
def test_nodes_declare_the_yaml_parameters_with_their_types(yaml_name):
    """Load the YAML into real rclpy nodes: types and ranges are enforced by rclpy."""
    rclpy = pytest.importorskip("rclpy")
    from icpi.robot.params import declare_config, refuse_undeclared

    path = LAUNCH / "params" / yaml_name
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=["--ros-args", "--params-file", str(path)])
    try:
        for name, values in sections(path).items():
            node = rclpy.create_node(name, context=ctx)
            try:
                cfg = declare_config(node, CONFIGS[name])
                for key, value in values.items():
                    if key in NESTED.get(name, ()):
                        continue
                    assert node.has_parameter(key), (name, key)
                    if key not in ROS_PARAMS:
                        assert getattr(cfg, key) == value, (name, key)
                if name == "icpi_driver":  # run.* and llm.*: the typed run configuration
                    from icpi.config import leaf_names
                    from icpi.llm.config import LLMConfig
                    from icpi.manipulation.config import load_run_config, parameter_names
                    from icpi.robot.params import declare_layer

                    run = load_run_config(declare_layer(node, "run", parameter_names()))
                    assert run.task == values["run"]["task"] and run.settings.k == 20
                    llm = LLMConfig.from_sources(
                        overrides=declare_layer(node, "llm", leaf_names(LLMConfig)), env={}
                    )
                    assert llm.mode == values["llm"]["mode"] and llm.base_url is None
                if name == "icpi_arm":
                    assert cfg.limits() and cfg.arm() and cfg.timing()
                refuse_undeclared(node)  # rclpy's own reading: nothing in the file unused
            finally:
                node.destroy_node()
    finally:
        ctx.try_shutdown()


def test_package_xml_is_an_ament_python_manifest():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "icpi"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs"} <= deps
    assert (ROOT / "resource" / "icpi").is_file()


def test_one_argument_switches_hardware_to_the_twin():
    """hardware.launch.py twin:=true starts the configured arm's twin (and sim time)."""
    text = (LAUNCH / "hardware.launch.py").read_text()
    nodes, _ = launch_nodes(LAUNCH / "hardware.launch.py")
    by_name = {n["name"]: n for n in nodes}
    assert by_name["icpi_sim_arm"]["conditional"] and not by_name["icpi_arm"]["conditional"]
    assert 'DeclareLaunchArgument(\n                "twin", default_value="false"' in text
    assert "condition=IfCondition(twin)" in text and '"use_sim_time": ParameterValue(twin' in text
    # The shipped UR5e file holds its twin and its tracker: twin:=true tracker:=true runs.
    assert {"icpi_sim_arm", "icpi_tracker", "icpi_arm", "icpi_driver"} <= set(
        sections(LAUNCH / "params" / "ur5e.yaml")
    )


def test_a_parameter_no_node_declares_is_refused_with_the_one_meant():
    """`-p iterations:=5` once ran 20 rollouts silently; now the driver refuses to start."""
    rclpy = pytest.importorskip("rclpy")
    from icpi.manipulation.config import parameter_names
    from icpi.robot.params import declare_config, declare_layer, refuse_undeclared

    args = ["--ros-args", "-p", "iterations:=5", "-p", "velocity_limit:=[1.0, 1.0]"]
    args += ["-p", "run.iterations:=5", "-p", "run.iteration:=5"]
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=args)
    try:
        node = rclpy.create_node("icpi_driver", context=ctx)
        declare_config(node, DriverConfig)
        run = declare_layer(node, "run", parameter_names())
        assert run["iterations"] == 5
        with pytest.raises(ValueError) as err:
            refuse_undeclared(node)
        text = str(err.value)
        assert "iterations (did you mean run.iterations?)" in text
        assert "run.iteration (did you mean run.iterations?)" in text
        assert "velocity_limit" in text
        node.destroy_node()
    finally:
        ctx.try_shutdown()


@pytest.mark.parametrize("yaml_name", ["sim_arm.yaml", "hardware.yaml", "ur5e.yaml", "panda.yaml"])
def test_a_twin_in_a_yaml_serves_the_controller_names_its_arm_node_uses(yaml_name):
    params = sections(LAUNCH / "params" / yaml_name)
    if "icpi_sim_arm" not in params:
        pytest.skip(f"{yaml_name} has no twin")
    sim, arm = params["icpi_sim_arm"], params["icpi_arm"]
    for key in ("trajectory_topic", "trajectory_action", "joint_state_topic", "joint_names"):
        assert sim[key] == arm[key], key
    # ...and emulates the controller the arm node plans for.
    assert sim.get("controller_model", "stamp") == arm.get("controller_model", "stamp")


@pytest.mark.parametrize("yaml_name", ["sim_arm.yaml", "hardware.yaml", "ur5e.yaml", "panda.yaml"])
def test_the_driver_records_the_arm_nodes_topics(yaml_name):
    params = sections(LAUNCH / "params" / yaml_name)
    arm, driver = params["icpi_arm"], params["icpi_driver"]
    defaults = {f.name: f.default for f in dataclasses.fields(SkillNodeConfig)}
    for key in ("joint_state_topic", "sent_trajectory_topic", "ball_topic"):
        if key in driver:
            assert driver[key] == arm.get(key, defaults[key]), (yaml_name, key)


@pytest.mark.parametrize("yaml_name", ["sim_arm.yaml", "hardware.yaml", "ur5e.yaml", "panda.yaml"])
def test_the_twin_is_the_configured_arm(yaml_name):
    """twin:=true simulates the very arm the arm node plans for (same geometry and home)."""
    params = sections(LAUNCH / "params" / yaml_name)
    sim, arm = params["icpi_sim_arm"], params["icpi_arm"]
    defaults = {f.name: f.default for f in dataclasses.fields(SkillNodeConfig)}
    keys = ["joint_names", "kinematics", "home"]
    keys += ["model", "base_pose", "effector", "effector_height"]
    keys += ["base_xy", "link_lengths", "elbow"] if arm["kinematics"] != "serial" else []
    for key in keys:
        assert sim.get(key, defaults[key]) == arm.get(key, defaults[key]), (yaml_name, key)
    if yaml_name != "sim_arm.yaml":  # the hardware files' twins have the camera
        assert sim["camera"] is True and params["icpi_tracker"]["image_topic"] == sim["image_topic"]
        assert params["icpi_tracker"]["ball_topic"] == arm["ball_topic"]

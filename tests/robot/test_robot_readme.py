"""Every command shown in robot/README.md and launch/README.md does what the text says.

Commands are read from the ```bash blocks and from inline code that starts like a command;
each kind is checked against the real thing: node modules and their parameters (loaded
into a real rclpy node, which refuses what it does not declare), launch files and their
arguments, make targets, extras, test paths and markers, topics, message types, services,
and a trial request (decoded, and planned and checked as the UR5e's arm node would). A
command of a kind this test does not know fails it, so nothing shown goes unchecked.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "icpi" / "robot" / "README.md", ROOT / "launch" / "README.md"]
PARAMS = ROOT / "launch" / "params"
NODE_NAMES = {
    "arm_node": "icpi_arm",
    "driver_node": "icpi_driver",
    "sim_arm_node": "icpi_sim_arm",
    "tracker_node": "icpi_tracker",
}
# Inline code that starts so, with at least this many words, is a command (fewer: a
# mention of a tool, such as `ros2 param describe` or `colcon build`).
STARTS = {
    "ros2 ": 4,
    "python -m ": 4,
    "colcon ": 3,
    "pip install": 2,
    "make ": 2,
    ".venv/bin/": 2,
    "bash ": 2,
    "icpi-calibrate ": 2,
    "icpi ": 5,
}
# Shell around the commands in launch/README.md's colcon walk-through (not ours to check).
SHELL = ("cd ", "git clone ", "source install/setup.bash", "done")


def commands(path: Path) -> list[str]:
    """The commands of a README: fenced bash lines (continuations joined), inline code."""
    text = path.read_text()
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        loop: tuple[str, list[str]] | None = None
        for raw in lines:
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"for (\w+) in ([^;]+); do$", line)
            if m:
                loop = (m.group(1), m.group(2).split())
                continue
            if loop is not None and line != "done":
                var, values = loop
                out += [line.rstrip(" &").replace(f"${var}", v) for v in values]
                continue
            if line == "done":
                loop = None
                continue
            out += [part.strip() for part in line.split("&&")]
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        cmd = " ".join(span.split())
        least = next((n for start, n in STARTS.items() if cmd.startswith(start)), None)
        if least is not None and len(cmd.split()) >= least and "<" not in cmd:
            out.append(cmd)
    return out


ALL = [(p.parent.name + "/" + p.name, c) for p in READMES for c in commands(p)]


def test_the_readmes_show_the_commands_this_test_checks():
    shown = {c for _, c in ALL}
    # The walk-throughs a user follows (a sample; every command is checked below).
    for expected in (
        "make ros-types",
        "python -m icpi.robot.theta_box launch/params/ur5e.yaml --grid 7",
        "ros2 launch icpi hardware.launch.py params:=launch/params/ur5e.yaml driver:=false",
        "ros2 service call /icpi_arm/clear_estop std_srvs/srv/Trigger",
    ):
        assert expected in shown, expected
    assert any("run.iterations:=5" in c for c in shown)
    assert not any(" iterations:=" in c for c in shown)  # the parameter is run.iterations


def yaml_nodes(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    return {k.split("/")[-1]: v["ros__parameters"] for k, v in doc.items()}


def hardware_yamls() -> list[dict]:
    return [yaml_nodes(PARAMS / n) for n in ("hardware.yaml", "ur5e.yaml", "panda.yaml")]


def check_node(module: str, args: list[str]) -> None:
    """`python -m icpi.robot.<node> --ros-args ...`: every parameter declared by it."""
    rclpy = pytest.importorskip("rclpy")
    from icpi.robot.params import (
        DriverConfig,
        SimArmConfig,
        SkillNodeConfig,
        TrackerConfig,
        declare_config,
        declare_layer,
        refuse_undeclared,
    )

    configs = {
        "icpi_arm": SkillNodeConfig,
        "icpi_sim_arm": SimArmConfig,
        "icpi_driver": DriverConfig,
        "icpi_tracker": TrackerConfig,
    }

    name = NODE_NAMES[module]
    assert args[0] == "--ros-args", args
    if "--params-file" in args:
        path = ROOT / args[args.index("--params-file") + 1]
        assert name in yaml_nodes(path), f"{path.name} has no /**/{name} section"
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=args)
    try:
        node = rclpy.create_node(name, context=ctx)
        try:
            declare_config(node, configs[name])
            if name == "icpi_driver":
                from icpi.config import leaf_names
                from icpi.llm.config import LLMConfig
                from icpi.manipulation.config import load_run_config, parameter_names

                load_run_config(declare_layer(node, "run", parameter_names()))
                declare_layer(node, "llm", leaf_names(LLMConfig, skip=("api_key",)))
            refuse_undeclared(node)
        finally:
            node.destroy_node()
    finally:
        ctx.try_shutdown()


def launch_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "DeclareLaunchArgument"
    }


def check_request(data: list[float]) -> None:
    """A trial request shown for the UR5e: decodes, and its θ passes the UR5e's check."""
    from test_robot_arm_box import CheckingArm

    from icpi.robot.contract import TrialRequest

    req = TrialRequest.decode(data, 3, 2)
    assert CheckingArm("ur5e.yaml").why_refused(req.theta) == [], req.theta


def check(cmd: str) -> None:
    words = shlex.split(cmd)
    if cmd.startswith(SHELL):
        return
    if words[:2] == ["python", "-m"]:
        module = words[2]
        if module == "icpi.robot.theta_box":
            from icpi.robot.theta_box import parser

            ns = parser().parse_args(words[3:])
            assert (ROOT / ns.params).is_file(), ns.params
            return
        assert module.startswith("icpi.robot."), module
        check_node(module.rsplit(".", 1)[1], words[3:])
        return
    if words[0] == "icpi-calibrate":  # its own parser; the marker's numbers are the YAML's
        from icpi.robot.calibrate import build_parser

        ns = build_parser().parse_args(words[1:])
        twin = yaml_nodes(PARAMS / "ur5e.yaml")["icpi_sim_arm"]
        assert ns.marker_size == twin["marker_size"] and ns.marker_id == twin["marker_id"]
        assert list(ns.marker_center) == twin["marker_center"], cmd
        if ns.image_topic is not None:
            assert ns.image_topic == twin["image_topic"], cmd
        return
    if words[0] == "icpi":  # the icpi command's own parser
        from icpi.cli.main import build_parser as icpi_parser

        ns = icpi_parser().parse_args(words[1:])
        assert ns.verb in ("collect", "run"), cmd
        return
    if words[:2] == ["pip", "install"]:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        target = words[-1]
        m = re.fullmatch(r"\.?(?:src/icpi)?\[(.+)\]|\.|src/icpi", target.replace("'", ""))
        if m is None:  # a third-party tool with the version measured (launch/README.md)
            assert words[2] == target and re.fullmatch(r"[\w-]+==[\d.]+", target), cmd
            return
        for extra in (m.group(1) or "").split(","):
            assert not extra or extra in extras["optional-dependencies"], extra
        return
    if words[0] == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target
        return
    if words[0] == "bash":
        assert (ROOT / words[1]).is_file(), words[1]
        return
    if words[0] == ".venv/bin/pytest":
        paths = [w for w in words[1:] if w.startswith("tests")]
        assert paths and all((ROOT / p).exists() for p in paths), paths
        if "-m" in words:
            markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
            declared = {m.split(":")[0] for m in markers["ini_options"]["markers"]}
            used = set(re.findall(r"\w+", words[words.index("-m") + 1])) - {"not", "and", "or"}
            assert used <= declared, used
        return
    if words[0] == ".venv/bin/python":
        assert (ROOT / words[1]).is_file(), words[1]
        return
    if words[0] == "colcon":
        assert words[1:3] == ["build", "--packages-select"], cmd
        assert f"<name>{words[3]}</name>" in (ROOT / "package.xml").read_text()
        return
    if words[:2] == ["ros2", "launch"]:
        assert words[2] == "icpi", cmd
        launch = ROOT / "launch" / words[3]
        assert launch.is_file(), launch
        for arg in words[4:]:
            key, _, value = arg.partition(":=")
            assert key in launch_arguments(launch), (launch.name, key)
            if key == "params" and not value.startswith("/path/to/"):
                assert (ROOT / value).is_file(), value
        return
    if words[:3] == ["ros2", "topic", "pub"]:
        topic, msg_type, body = words[-3:]
        data = yaml.safe_load(body)["data"]
        arms = [nodes["icpi_arm"] for nodes in hardware_yamls()]
        if msg_type == "std_msgs/Float64MultiArray":
            assert all(a["request_topic"] == topic for a in arms), topic
            check_request(data)
        elif msg_type == "std_msgs/Bool":
            assert all(a["estop_topic"] == topic for a in arms) and data is True, cmd
        else:
            raise AssertionError(f"no node takes {msg_type} on {topic}")
        return
    if words[:3] == ["ros2", "topic", "echo"]:
        assert all(n["icpi_arm"]["result_topic"] == words[3] for n in hardware_yamls())
        return
    if words[:3] == ["ros2", "service", "call"]:
        node, _, service = words[3].strip("/").partition("/")
        assert node == NODE_NAMES["arm_node"] and words[4] == "std_srvs/srv/Trigger", cmd
        source = (ROOT / "icpi" / "robot" / "arm_node.py").read_text()
        assert f'create_service(Trigger, "~/{service}"' in source, service
        return
    raise AssertionError(f"a command of a kind no test checks: {cmd}")


@pytest.mark.parametrize(("readme", "cmd"), ALL, ids=[f"{r}: {c[:60]}" for r, c in ALL])
def test_readme_command(readme, cmd):
    check(cmd)


def test_the_launch_arguments_launch_readme_names_are_declared_by_both_files():
    text = (ROOT / "launch" / "README.md").read_text()
    shown = set(re.findall(r"`(\w+):=[^`]*`", text))
    files = sorted((ROOT / "launch").glob("*.launch.py"))
    assert {"params", "driver"} <= shown  # "Both take params:=... and driver:=..."
    for launch in files:
        assert {"params", "driver"} <= launch_arguments(launch), launch.name
    for arg in shown:
        assert any(arg in launch_arguments(f) for f in files), arg

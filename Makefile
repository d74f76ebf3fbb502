# Two commands on a fresh clone: `make demo` and `make test`.
# Both create .venv when absent and install the package with the exact versions of
# constraints.txt (pyproject.toml holds compatible ranges, for users' environments).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Headless rendering: EGL (Mesa llvmpipe on the CPU); the code falls back to osmesa.
export MUJOCO_GL ?= egl

BASE_STAMP := $(VENV)/.installed-base
DEMO_STAMP := $(VENV)/.installed-demo
FULL_STAMP := $(VENV)/.installed-full
ROS_TYPES_STAMP := $(VENV)/.installed-ros-types

.PHONY: demo test lint typecheck unit bench clean install ros-types

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

CONSTRAINTS := -c constraints.txt

$(BASE_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q $(CONSTRAINTS) -e ".[dev]"
	touch $@

# llama.cpp (the embedded LLM) is built from source once per venv, for any x86-64 CPU with
# AVX2 rather than -march=native, and never from pip's wheel cache: a native wheel built on
# one machine and cached dies of SIGILL/SIGSEGV on the first completion on another CPU.
LLAMA_CPP := CMAKE_ARGS="-DGGML_NATIVE=OFF $(CMAKE_ARGS)" $(PIP) install -q $(CONSTRAINTS) \
	--no-cache-dir "llama-cpp-python[server]"

# The demo needs the embedded LLM too.
$(DEMO_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(LLAMA_CPP)
	$(PIP) install -q $(CONSTRAINTS) -e ".[dev,llm]"
	touch $(BASE_STAMP) $@

# Everything the tests need, including the embedded LLM.
$(FULL_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(LLAMA_CPP)
	$(PIP) install -q $(CONSTRAINTS) -e ".[dev,llm,ray,ros,optuna,lang,report]"
	touch $(BASE_STAMP) $(DEMO_STAMP) $@

# ROS interface types not on the index, compiled into the venv from vendored upstream files
# and the index's rosidl/ament wheels (~1-2 min, once per venv; vendor/*/README.md):
# control_msgs' FollowJointTrajectory (the arm node then talks to the controller through the
# action; without it, through the topic), ur_dashboard_msgs' robot and safety modes and
# franka_msgs' robot state (read where configured).
$(ROS_TYPES_STAMP): vendor/build_ros_types.sh vendor/wheel_includes.cmake \
		$(wildcard vendor/*/*) $(wildcard vendor/*/*/*) | $(FULL_STAMP)
	bash vendor/build_ros_types.sh $(VENV)
	touch $@

ros-types: $(ROS_TYPES_STAMP)

install: $(FULL_STAMP) $(ROS_TYPES_STAMP)

# A short benchmark on the embedded defaults (no API key, no network): every task, every
# method, 1 instance, 10 rollouts each (about 9 min on 2 cores; 2 instances took 13); prints
# the table, writes demo_out/ and its HTML report demo_out/report.html (the last line
# printed says where it is).
demo: $(DEMO_STAMP)
	$(BIN)/icpi --log-level WARNING bench --tasks all --preset all --seeds 0 --iterations 10 \
		--out demo_out
	$(BIN)/icpi --log-level WARNING report demo_out

lint: $(FULL_STAMP)
	$(BIN)/ruff check icpi launch tests benchmarks examples
	$(BIN)/ruff format --check icpi launch tests benchmarks examples

typecheck: $(FULL_STAMP)
	$(BIN)/mypy

unit: $(FULL_STAMP)
	$(BIN)/pytest -q -m "not slow"

test: lint typecheck $(FULL_STAMP) $(ROS_TYPES_STAMP)
	$(BIN)/pytest -q -rs

bench: $(BASE_STAMP)
	$(BIN)/python benchmarks/bench_envs.py

clean:
	rm -rf $(VENV) demo_out .mypy_cache .ruff_cache .pytest_cache *.egg-info

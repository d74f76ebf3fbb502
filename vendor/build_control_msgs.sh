#!/usr/bin/env bash
# Build the vendored control_msgs types (FollowJointTrajectory) into a venv that has the
# `ros` extra: `bash vendor/build_control_msgs.sh [VENV]` (default .venv; `make ros-types`).
#
# Installs the `ros-build` extra (ament CMake, rosidl generators, catkin_pkg, CMake, all
# from the package index, versions from constraints.txt), configures vendor/control_msgs
# with the venv as both the prefix to find the ROS packages in and the one to install
# into, compiles and installs: the Python package lands in the venv's site-packages, the
# typesupport libraries in VENV/lib (on the library path of every interpreter of the venv,
# through the ros-* wheels' start-up hook). Safe to rerun: the build folder
# (VENV/build/control_msgs) is reused and the install overwrites the same files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(cd "${1:-$root/.venv}" && pwd)"
py="$venv/bin/python"
build="$venv/build/control_msgs"
start=$(date +%s)

"$py" -c 'import rclpy, trajectory_msgs.msg, action_msgs.msg' 2>/dev/null || {
  echo "error: $venv lacks rclpy and the standard messages: install the ros extra first" \
    "(pip install -c constraints.txt -e '.[ros]')" >&2
  exit 1
}
# The ros-build extra's requirements (pyproject.toml), without reinstalling icpi itself.
mapfile -t reqs < <("$py" -c 'import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["ros-build"]))' \
  "$root/pyproject.toml")
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$py" -m pip install -q -c "$root/constraints.txt" "${reqs[@]}" >"$log" 2>&1; then
  grep -v "is ignored" "$log" >&2
  echo "error: could not install the ros-build extra into $venv" >&2
  exit 1
fi

# The ament CMake helpers find packages through the ament index of the prefixes listed in
# AMENT_PREFIX_PATH; the generators run the venv's Python (from PATH).
export AMENT_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
step() {  # run a build step quietly; on failure show its output
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "error: control_msgs build step failed: $*" >&2
    exit 1
  fi
}
step cmake -S "$root/vendor/control_msgs" -B "$build" \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF
step cmake --build "$build" --parallel "$(nproc)"
step cmake --install "$build"
"$py" -c 'from control_msgs.action import FollowJointTrajectory as A; A.Goal(); print(A)'
echo "control_msgs built into $venv in $(($(date +%s) - start)) s"

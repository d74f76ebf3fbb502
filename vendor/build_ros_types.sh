#!/usr/bin/env bash
# Build the vendored ROS interface packages into a venv that has the `ros` extra:
# `bash vendor/build_ros_types.sh [VENV]` (default .venv; `make ros-types`).
#
# The packages (each a subset of its upstream, cited in its README.md): control_msgs
# (FollowJointTrajectory, the controller's action), ur_dashboard_msgs (a UR's robot and
# safety mode) and franka_msgs (a Franka's robot state). Installs the `ros-build` extra
# (ament CMake, rosidl generators, catkin_pkg, CMake, all from the package index, versions
# from constraints.txt), configures each package with the venv as both the prefix to find
# the ROS packages in and the one to install into, compiles and installs: the Python
# packages land in the venv's site-packages, the typesupport libraries in VENV/lib (on the
# library path of every interpreter of the venv, through the ros-* wheels' start-up hook).
# Safe to rerun: the build folders (VENV/build/<package>) are reused and the install
# overwrites the same files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(cd "${1:-$root/.venv}" && pwd)"
py="$venv/bin/python"
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
    echo "error: build step failed: $*" >&2
    exit 1
  fi
}
# Package, and a type of it to import once built.
for pkg in "control_msgs action.FollowJointTrajectory" "ur_dashboard_msgs msg.SafetyMode" \
  "franka_msgs msg.FrankaRobotState"; do
  read -r name type <<<"$pkg"
  build="$venv/build/$name"
  step cmake -S "$root/vendor/$name" -B "$build" \
    -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
    -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF
  step cmake --build "$build" --parallel "$(nproc)"
  step cmake --install "$build"
  "$py" -c "from $name.${type%.*} import ${type#*.} as T; print(T)"
done
echo "control_msgs, ur_dashboard_msgs, franka_msgs built into $venv in $(($(date +%s) - start)) s"

"""Contract of the five simulated tasks: Gymnasium API, determinism, physics hygiene."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import icpi  # noqa: F401  (registers the envs)
from icpi.envs import MAX_EPISODE_STEPS, TASKS, make_task
from icpi.envs.base import SUCCESS_TOLERANCE
from icpi.envs.search import search_theta

TASK_IDS = list(TASKS)
ENV_IDS = [env_id for env_id, _, _ in TASKS.values()]


@pytest.fixture(scope="module")
def tasks():
    return {tid: make_task(tid) for tid in TASK_IDS}


def mid_theta(task):
    return 0.5 * (task.theta_spec.low_array + task.theta_spec.high_array)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_contract(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=3)
    goal = info["goal"]
    g = len(goal)
    assert obs.shape == (2 * g,)
    np.testing.assert_array_equal(obs[:g], goal)
    np.testing.assert_array_equal(obs[g:], np.zeros(g))
    theta = env.action_space.sample()
    obs, reward, terminated, truncated, info = env.step(theta)
    assert reward == -info["cost"] == info["reward_cost"]
    np.testing.assert_allclose(info["e"], info["outcome"] - goal, rtol=0, atol=1e-15)
    assert info["cost"] == pytest.approx(float(np.linalg.norm(info["e"])), abs=1e-15)
    np.testing.assert_array_equal(obs[g:], info["e"])
    assert terminated == (info["cost"] < SUCCESS_TOLERANCE)
    assert not truncated
    assert info["trajectory"].ndim == 2 and info["trajectory"].shape[1] == 3
    assert set(info["physics"]) == set(env.unwrapped.task.physics_ranges)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_truncated_after_20_steps(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    low = env.action_space.low  # a poor θ: never within tolerance
    for i in range(MAX_EPISODE_STEPS):
        _, _, terminated, truncated, _ = env.step(low)
        assert not terminated
        assert truncated == (i == MAX_EPISODE_STEPS - 1)
    env.close()


def test_terminated_on_success(tasks):
    task = tasks["slide"]
    env = gym.make("icpi/Slide-v0")
    _, info = env.reset(seed=1)
    instance = env.unwrapped.instance
    theta, cost = search_theta(task, instance, np.random.default_rng(0))
    assert cost < SUCCESS_TOLERANCE
    _, _, terminated, _, info = env.step(theta)
    assert terminated and info["cost"] == pytest.approx(cost, abs=1e-12)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_reset_options_pin_instance(task_id, tasks):
    task = tasks[task_id]
    env = gym.make(TASKS[task_id][0])
    physics = {k: lo for k, (lo, _) in task.physics_ranges.items()}
    goal = list(task.goal_high if task.goal_conditioned else task.fixed_goal)
    _, info = env.reset(seed=5, options={"goal": goal, "physics": physics})
    assert info["physics"] == physics
    np.testing.assert_array_equal(info["goal"], goal)
    with pytest.raises(ValueError, match="outside its range"):
        env.reset(options={"physics": {k: hi * 10 for k, (_, hi) in task.physics_ranges.items()}})
    with pytest.raises(ValueError, match="unknown physical parameter"):
        env.reset(options={"physics": {"gravity": 1.0}})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goall": goal})
    env.close()


def test_fixed_goal_task_rejects_other_goal(tasks):
    with pytest.raises(ValueError, match="fixed goal"):
        tasks["slide"].make_instance(goal=(0.4, 0.0))
    with pytest.raises(ValueError, match="outside the goal region"):
        tasks["slide-gc"].make_instance(goal=(5.0, 0.0))


def test_same_seed_same_instance_and_different_seed_differs():
    env = gym.make("icpi/SlideGC-v0")
    _, a = env.reset(seed=11)
    _, b = env.reset(seed=11)
    _, c = env.reset(seed=12)
    assert a["physics"] == b["physics"] and np.array_equal(a["goal"], b["goal"])
    assert a["physics"] != c["physics"]


@pytest.mark.parametrize(
    ("theta", "message"),
    [
        ([np.nan, 0.1, 0.3], "finite"),
        ([0.0, np.inf, 0.3], "finite"),
        ([0.0, 0.1], "shape"),
        ([[0.0, 0.1, 0.3]], "shape"),
        (["a", "b", "c"], "must be 3 numbers"),
    ],
)
def test_bad_theta_raises(theta, message):
    env = gym.make("icpi/Slide-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(theta)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_out_of_bounds_theta_is_clipped_and_flagged(task_id, tasks):
    task = tasks[task_id]
    instance = task.sample_instance(np.random.default_rng(0))
    high = task.theta_spec.high_array
    inside = task.rollout(instance, mid_theta(task))
    assert not inside.clipped
    outside = task.rollout(instance, high + 1.0)
    assert outside.clipped
    np.testing.assert_array_equal(outside.theta, high)
    edge = task.rollout(instance, high)
    assert not edge.clipped
    np.testing.assert_array_equal(outside.trajectory, edge.trajectory)


_FRESH = """
import hashlib, sys, numpy as np
from icpi.envs import make_task
task = make_task(sys.argv[1])
inst = task.sample_instance(np.random.default_rng(7))
theta = task.theta_spec.sample(np.random.default_rng(8))
r = task.rollout(inst, theta)
print(hashlib.sha256(r.trajectory.tobytes() + r.outcome.tobytes()).hexdigest())
"""


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_bit_identical_in_fresh_process(task_id, tasks):
    task = tasks[task_id]
    inst = task.sample_instance(np.random.default_rng(7))
    theta = task.theta_spec.sample(np.random.default_rng(8))
    r = task.rollout(inst, theta)
    here = hashlib.sha256(r.trajectory.tobytes() + r.outcome.tobytes()).hexdigest()
    out = subprocess.run(
        [sys.executable, "-c", _FRESH, task_id], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == here


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_batch_on_threads_matches_serial(task_id, tasks):
    task = tasks[task_id]
    rng = np.random.default_rng(1)
    instances = [task.sample_instance(rng) for _ in range(4)]
    thetas = [task.theta_spec.sample(rng) for _ in range(4)]
    serial = [task.rollout(i, t) for i, t in zip(instances, thetas, strict=True)]
    batch = task.rollout_batch(instances, thetas, nthread=2)
    for a, b in zip(serial, batch, strict=True):
        np.testing.assert_array_equal(a.trajectory, b.trajectory)
        assert a.cost == b.cost


_THREADS = """
import sys, threading, numpy as np
from icpi.envs import make_task
task = make_task(sys.argv[1])
rng = np.random.default_rng(1)
instances = [task.sample_instance(rng) for _ in range(3)]
thetas = [task.theta_spec.sample(rng) for _ in range(12)]
alone = [task.rollout(instances[i % 3], t).cost for i, t in enumerate(thetas)]
batch = [r.cost for r in task.rollout_batch(instances[:1], thetas, nthread=1)]
got = {}
def rollouts(k):  # one rollout at a time, as an Optuna trial or a run does
    for i in range(k, len(thetas), 2):
        got[i] = task.rollout(instances[i % 3], thetas[i]).cost
def batches(k):  # whole batches, on MuJoCo's thread pool or serially
    got[k] = [r.cost for r in task.rollout_batch(instances[:1], thetas, nthread=1 + k % 2)]
threads = [threading.Thread(target=rollouts, args=(k,)) for k in (0, 1)]
threads += [threading.Thread(target=batches, args=(k,)) for k in (100, 101)]
[t.start() for t in threads]
[t.join() for t in threads]
print([got[i] for i in range(len(thetas))] == alone and got[100] == got[101] == batch)
"""


@pytest.mark.parametrize("task_id", ["slide", "ball-roll-gc"])
def test_one_task_object_is_safe_on_several_threads(task_id):
    """Issue 25: two threads calling rollout on one task shared its MjData (SIGSEGV)."""
    proc = subprocess.run(
        [sys.executable, "-c", _THREADS, task_id], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True"


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_plain_mj_step_matches_rollout_without_warnings(task_id, tasks):
    """Stepping the scene by hand gives the same path and trips no MuJoCo warning."""
    task = tasks[task_id]
    rng = np.random.default_rng(2)
    for _ in range(3):
        inst = task.sample_instance(rng)
        theta = task.theta_spec.sample(rng)
        model = task.model(inst)
        qpos0, ctrl = task._plan(theta, model)
        data = mujoco.MjData(model)
        data.qpos[:] = qpos0
        mujoco.mj_forward(model, data)
        adr = model.sensor(task.tracked_sensor).adr[0]
        path = [data.sensordata[adr : adr + 3].copy()]
        for k in range(task.nstep):
            data.ctrl[:] = ctrl[k]
            mujoco.mj_step(model, data)
            path.append(data.sensordata[adr : adr + 3].copy())
        warnings = {mujoco.mjtWarning(i).name: int(w.number) for i, w in enumerate(data.warning)}
        assert not any(warnings.values()), warnings
        np.testing.assert_array_equal(np.array(path), task.rollout(inst, theta).trajectory)


def test_rope_is_nearly_inextensible(tasks):
    task = tasks["rope-swing"]
    inst = task.sample_instance(np.random.default_rng(0))
    r = task.rollout(inst, task.theta_spec.high_array, record_states=True)  # fastest stroke
    model = task.model(inst)
    data = mujoco.MjData(model)
    length = inst.physics_dict["rope_length"]
    for state in r.states[::25]:
        mujoco.mj_setState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        mujoco.mj_forward(model, data)
        pts = [data.body(f"rope_{i}").xpos for i in range(10)] + [data.site("tip").xpos]
        arc = sum(np.linalg.norm(b - a) for a, b in itertools.pairwise(pts))
        assert abs(arc - length) / length < 0.05


def test_import_icpi_does_not_import_mujoco():
    code = "import sys, icpi; print('mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_task_is_neither_trivial_nor_impossible(task_id, tasks):
    """For sampled instances a search gets under 5 mm; random θ are at least 10x worse."""
    task = tasks[task_id]
    rng = np.random.default_rng(100)
    for _ in range(2):
        inst = task.sample_instance(rng)
        _, best = search_theta(task, inst, rng, max_evals_per_polish=400)
        assert best < SUCCESS_TOLERANCE
        random_costs = [
            r.cost
            for r in task.rollout_batch(
                [inst],
                rng.uniform(task.theta_spec.low_array, task.theta_spec.high_array, size=(100, 3)),
            )
        ]
        assert np.median(random_costs) >= 10 * SUCCESS_TOLERANCE

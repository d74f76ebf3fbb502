"""The ICPI loop on the simulated tasks: text format, retrieval, answers, run directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from icpi.core import ScriptedSampler, find_numbers
from icpi.envs import TASKS, make_task
from icpi.manipulation.dataset import load_default_dataset
from icpi.manipulation.methods import MethodContext, drive
from icpi.manipulation.methods.icpi import ICPI, ICPISettings
from icpi.manipulation.predictors import knn_mean, local_linear
from icpi.manipulation.retrieval import features, relabel_own
from icpi.manipulation.run import RunConfig, run_method
from icpi.manipulation.text import NumberFormat, example_line, query_line, situation_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from fake_openai import FakeOpenAI, Reply, completion_body

ICPI_BIN = str(Path(sys.executable).parent / "icpi")


def nearest_copy(prompt, n, seed):
    """A pattern-completing double: answer with the nearest (last) example's Δθ*."""
    lines = [ln for ln in str(prompt).splitlines() if "->" in ln and ln.split("->")[1].strip()]
    return [" " + " ".join(find_numbers(lines[-1].split("->")[1]))] * n


def example_lines(prompt):
    return [ln for ln in str(prompt).splitlines() if "->" in ln and ln.split("->")[1].strip()]


# ---------------------------------------------------------------- text format
def test_number_format_round_trip_and_line_shape():
    fmt = NumberFormat(low=(-0.6, 0.05, 0.2), high=(0.6, 0.30, 0.8))
    assert fmt.theta_to_int([-0.6, 0.30, 0.5]) == [0, 100, 50]
    assert fmt.theta_to_int([-5.0, 9.0, 0.5]) == [0, 100, 50]  # out of range saturates
    d = fmt.int_to_dtheta([12, -4, 0])
    assert fmt.dtheta_to_int(d) == [12, -4, 0]
    np.testing.assert_allclose(d, [0.144, -0.01, 0.0])
    assert fmt.length_to_int([0.123, -0.049, 50.0]) == [12, -5, 999]
    situation = situation_text(fmt, [0.0, 0.175, 0.5], [-0.12, 0.03])
    assert situation == "50 50 50 -12 3"
    assert example_line(situation, fmt, d) == "50 50 50 -12 3 -> 12 -4 0"
    assert query_line(situation) == "50 50 50 -12 3 ->"
    raw = situation_text(fmt, [0.0, 0.175, 0.5], [0, 0], [0.4, 0.1], [0.55, 0.15], "raw")
    assert raw == "50 50 50 40 10 55 15"
    with pytest.raises(ValueError, match="raw feature"):
        situation_text(fmt, [0.0, 0.175, 0.5], [0, 0], feature="raw")


# ---------------------------------------------------------------- predictors
def test_local_linear_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5))
    w = rng.normal(size=(5, 3))
    y = x @ w + 0.3
    q = rng.normal(size=5)
    np.testing.assert_allclose(local_linear(x, y, q, ridge=0.0), q @ w + 0.3, atol=1e-9)
    np.testing.assert_allclose(knn_mean(y), y.mean(axis=0))
    with pytest.raises(ValueError):
        local_linear(x, y[:5], q)
    with pytest.raises(ValueError):
        knn_mean(np.zeros((0, 3)))


# ---------------------------------------------------------------- retrieval
def make_improver(task_id="slide-gc", sampler=None, buffer=None, task=None, **settings):
    task = task or make_task(task_id)
    instance = make_task(task_id).sample_instance(np.random.default_rng(4))
    theta0 = 0.5 * (task.theta_spec.low_array + task.theta_spec.high_array)
    ctx = MethodContext(
        task=task,
        instance=instance,
        theta0=theta0,
        seed=0,
        dataset=load_default_dataset(task_id),
        sampler=sampler or ScriptedSampler(nearest_copy),
        buffer=buffer,
    )
    return ICPI(ctx, ICPISettings(**settings))


@pytest.mark.parametrize("feature", ["e", "raw"])
def test_retrieval_matches_brute_force_and_is_farthest_first(feature):
    imp = make_improver(feature=feature, k=20)
    drive(imp, imp.ctx.task, imp.ctx.instance, 3)
    state = imp.loop.state()
    shown = imp.build(state)
    assert len(shown) == 20
    index = imp.retriever.index
    feats = np.array([features(ex, feature) for ex in imp.retriever.examples])
    x = (feats - index.offset) / index.scale
    q = (features(imp.where(state), feature) - index.offset) / index.scale
    dist = np.linalg.norm(x - q, axis=1)
    expected = np.argsort(dist, kind="stable")[:20][::-1]  # farthest first, nearest last
    lines = [imp.text.line(ex) for ex in shown]
    assert lines == [imp.text.line(imp.retriever.examples[i]) for i in expected]
    prompt = str(imp.loop.prompt.render(state, shown))
    assert example_lines(prompt) == lines
    assert prompt.rstrip().endswith("->")


def test_k_and_dataset_size_switches(tmp_path):
    s = run_method(
        RunConfig(
            task="slide",
            method="icpi",
            seed=2,
            iterations=3,
            dataset_size=50,
            settings=ICPISettings(k=5),
        ),
        tmp_path,
        sampler=ScriptedSampler(nearest_copy),
    )
    lines = [json.loads(x) for x in open(tmp_path / "attempts.jsonl")]
    attempts = [x["attempt"] for x in lines if x["kind"] == "attempt"]
    assert all(len(example_lines(a["prompt"])) == 5 for a in attempts if a["prompt"])
    assert s["iterations"] == 3


# ---------------------------------------------------------------- the loop
@pytest.mark.parametrize("task_id", list(TASKS))
def test_nearest_neighbour_answers_lower_the_cost(task_id, tmp_path):
    """Plumbing check: a model that copies the nearest example's Δθ* improves every task."""
    s = run_method(
        RunConfig(task=task_id, method="icpi", seed=1),
        tmp_path,
        sampler=ScriptedSampler(nearest_copy),
    )
    assert s["iterations"] == 20
    assert s["sources"] == {"model": 19}
    assert s["best_cost"] < 0.5 * s["initial_cost"]


@pytest.mark.parametrize(
    "answers",
    [
        ["I think you should push harder."],  # prose
        [" 1 2"],  # wrong arity
        [" nan 1 2"],  # not finite
        [" 1e300 2 3"],  # huge
        [""],  # empty
    ],
)
def test_malformed_answers_fall_back_and_are_counted(answers, tmp_path):
    sampler = ScriptedSampler(answers)
    s = run_method(
        RunConfig(task="slide", method="icpi", seed=0, iterations=4), tmp_path, sampler=sampler
    )
    assert s["iterations"] == 4
    assert s["sources"] == {"fallback": 3}
    assert s["parse_failures"] == 3 * 2  # one query + one re-sample per iteration
    assert len(sampler.calls) == 6
    records = [json.loads(x) for x in open(tmp_path / "records.jsonl")]
    task = make_task("slide")
    for r in records:
        assert np.all(np.asarray(r["theta"]) >= task.theta_spec.low_array)
        assert np.all(np.asarray(r["theta"]) <= task.theta_spec.high_array)
        assert np.isfinite(r["cost"])


def test_out_of_range_answer_is_clipped_to_the_theta_box(tmp_path):
    s = run_method(
        RunConfig(task="slide", method="icpi", seed=0, iterations=2),
        tmp_path,
        sampler=ScriptedSampler([" 100 100 100"]),
    )
    assert s["sources"] == {"model": 1}
    last = [json.loads(x) for x in open(tmp_path / "records.jsonl")][-1]
    np.testing.assert_array_equal(last["theta"], make_task("slide").theta_spec.high_array)


def test_consensus_takes_the_median_of_samples(tmp_path):
    sampler = ScriptedSampler([" 10 0 0", " 2 0 0", " 4 0 0", "junk", " 6 0 0"])
    run_method(
        RunConfig(
            task="slide", method="icpi", seed=0, iterations=2, settings=ICPISettings(n_samples=5)
        ),
        tmp_path,
        sampler=sampler,
    )
    records = [json.loads(x) for x in open(tmp_path / "records.jsonl")]
    theta0, theta1 = np.asarray(records[0]["theta"]), np.asarray(records[1]["theta"])
    span = make_task("slide").theta_spec.high_array - make_task("slide").theta_spec.low_array
    np.testing.assert_allclose(theta1 - theta0, [0.05 * span[0], 0.0, 0.0], atol=1e-12)


def test_online_relabel_shows_own_rollouts(tmp_path):
    imp = make_improver("ball-roll-gc", online_relabel=True, k=20)
    drive(imp, imp.ctx.task, imp.ctx.instance, 6)
    state = imp.loop.state()
    own = relabel_own(imp.ctx.task, imp.goal, imp._rollouts(state))
    assert len(own) == 6 * 5
    # relabelling is exact: from a, the step to b reaches b's outcome
    ex = own[0]
    np.testing.assert_allclose(ex["e"], ex["outcome"] - ex["goal"])
    shown = imp.build(state)
    assert len(shown) == 20
    assert any(any(ex is o for o in own) for ex in shown) or len(shown) == 20
    # the trajectories live in the buffer: a resumed run relabels without re-running
    calls = []
    spy = type(
        "Spy",
        (),
        {
            "task_id": "ball-roll-gc",
            "theta_spec": imp.ctx.task.theta_spec,
            "outcome": imp.ctx.task.outcome,
            "rollout": lambda self, *a: calls.append(a),
        },
    )()
    resumed = make_improver(
        "ball-roll-gc", online_relabel=True, k=20, buffer=imp.loop.buffer, task=spy
    )
    again = relabel_own(spy, resumed.goal, resumed._rollouts(resumed.loop.state()))
    assert len(again) == 30 and calls == []


def test_run_directory_explains_itself_and_resumes(tmp_path):
    cfg = RunConfig(task="rope-swing", method="icpi", seed=3, iterations=5)
    first = run_method(cfg, tmp_path, sampler=ScriptedSampler(nearest_copy))
    for name in ("config.json", "meta.json", "attempts.jsonl", "records.jsonl", "summary.json"):
        assert (tmp_path / name).exists(), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["run"]["task"] == "rope-swing" and config["run"]["seed"] == 3
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["versions"]["mujoco"] and meta["seed"] == 3
    records = [json.loads(x) for x in open(tmp_path / "records.jsonl")]
    assert [r["iteration"] for r in records] == list(range(5))
    assert {"iteration", "theta", "e", "cost"} <= set(records[0])
    # a longer budget resumes: the five finished rollouts are kept, not redone
    sampler = ScriptedSampler(nearest_copy)
    second = run_method(
        RunConfig(task="rope-swing", method="icpi", seed=3, iterations=8),
        tmp_path / "other",
        sampler=sampler,
    )
    assert second["iterations"] == 8
    again = ScriptedSampler(nearest_copy)
    resumed = run_method(cfg, tmp_path, sampler=again)
    assert again.calls == [] and resumed["final_cost"] == first["final_cost"]
    with pytest.raises(ValueError, match="another configuration"):
        run_method(RunConfig(task="rope-swing", method="icpi", seed=4, iterations=5), tmp_path)


def test_cli_run_is_killed_and_resumes_without_losing_rollouts(tmp_path):
    """``icpi run`` against an OpenAI-compatible server through the real openai client."""
    fake = FakeOpenAI()
    fake.set(Reply(body=completion_body(" 1 -1 0", prompt_tokens=450), delay_s=0.15))
    out = tmp_path / "run"
    cmd = [
        ICPI_BIN, "run", "--task", "slide", "--method", "icpi", "--seed", "0", "--iterations", "20",
        "--out", str(out),
        "--base-url", fake.base_url, "--model", "fake", "--cache", str(tmp_path / "c.sqlite3"),
    ]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-secret-123"}
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        records = out / "records.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline:
            if records.exists() and len(records.read_text().splitlines()) >= 6:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = [json.loads(x) for x in records.read_text().splitlines()]
        assert 6 <= len(before) < 20
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    finally:
        fake.close()
    after = [json.loads(x) for x in records.read_text().splitlines()]
    assert [r["iteration"] for r in after] == list(range(20))
    assert after[: len(before)] == before
    assert json.loads(done.stdout)["iterations"] == 20
    for path in out.iterdir():
        assert "sk-test-secret-123" not in path.read_text(), path


#: A full 20-rollout run on one task; a short one on each other task (the embedded model
#: takes 1-10 s a call on 2 cores: 20 rollouts on every task took 16 min of `make test`).
EMBEDDED_ITERATIONS = {t: 20 if t == "slide-gc" else 5 for t in TASKS}


@pytest.mark.slow
@pytest.mark.parametrize("task_id", list(TASKS))
def test_embedded_model_completes_its_iterations(task_id, tmp_path):
    """The real pipeline: embedded SmolLM2 server, real openai client, every task."""
    n = EMBEDDED_ITERATIONS[task_id]
    proc = subprocess.run(
        [ICPI_BIN, "run", "--task", task_id, "--method", "icpi", "--seed", "0",
         "--iterations", str(n), "--max-resamples", "0", "--out", str(tmp_path / "run"),
         "--cache", str(tmp_path / "cache.sqlite3")],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["iterations"] == n
    assert summary["mean_prompt_tokens"] > 100
    records = [json.loads(x) for x in open(tmp_path / "run" / "records.jsonl")]
    assert len(records) == n and all(np.isfinite(r["cost"]) for r in records)
    calls = [json.loads(x) for x in open(tmp_path / "run" / "llm_calls.jsonl")]
    assert len(calls) == n - 1
    # replay: the same run from the cache alone, with no server and no HTTP request
    replay = subprocess.run(
        [ICPI_BIN, "run", "--task", task_id, "--method", "icpi", "--seed", "0",
         "--iterations", str(n), "--max-resamples", "0", "--out", str(tmp_path / "replay"),
         "--cache", str(tmp_path / "cache.sqlite3"), "--offline"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr[-3000:]
    replayed = [json.loads(x) for x in open(tmp_path / "replay" / "records.jsonl")]
    assert [r["theta"] for r in replayed] == [r["theta"] for r in records]
    assert [r["cost"] for r in replayed] == [r["cost"] for r in records]


def test_chat_mode_through_an_openai_endpoint(tmp_path):
    """Chat prompts: a system message and one user message; prose around the answer is read."""
    from fake_openai import chat_body

    fake = FakeOpenAI()
    fake.set(Reply(body=chat_body("Correction: 3 -2 1", prompt_tokens=480)))
    try:
        proc = subprocess.run(
            [ICPI_BIN, "run", "--task", "ball-roll-gc", "--method", "icpi", "--seed", "1",
             "--iterations", "3",
             "--out", str(tmp_path / "run"), "--mode", "chat", "--base-url", fake.base_url,
             "--model", "fake", "--cache", str(tmp_path / "c.sqlite3")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        bodies = [r["body"] for r in fake.requests if r["path"].endswith("/chat/completions")]
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["sources"] == {"model": 2}
    messages = bodies[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].rstrip().endswith("->")
    assert len(example_lines(messages[1]["content"])) == 20

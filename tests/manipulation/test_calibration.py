"""The calibration proposer: an OpenAI-compatible endpoint of known quality, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from icpi.envs import load_task
from icpi.llm import LLMClient, LLMConfig
from icpi.llm.errors import LLMError
from icpi.manipulation.calibration import (
    INSTANCE_PREFIX,
    Mode,
    OptimumStore,
    instance_params,
    instance_tag,
    read_prompt,
    serve,
)
from icpi.manipulation.config import load_run_config
from icpi.manipulation.run import run_method

TASK, SEED = "ball-roll-gc", 102  # an instance whose θ* search is quick (~8 s)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding the θ* of (TASK, SEED), searched on the real env once."""
    folder = tmp_path_factory.mktemp("optima")
    store = OptimumStore(folder)
    opt = store.get(TASK, SEED)
    assert opt.cost < 1e-3  # near-optimal: below a millimetre
    assert json.loads(store.path(TASK, SEED).read_text())["theta"] == list(opt.theta)
    return store


@pytest.fixture
def endpoint(store):
    with serve(0, store) as ep:
        yield ep


def client(ep, model, mode="completion"):
    cfg = LLMConfig(base_url=ep.base_url, model=model, mode=mode, use_cache=False)
    return LLMClient(cfg)


def icpi_prompt(theta_ints, unit="percent"):
    return (
        f"Parameters ({unit} of range) and error (cm), then the correction ({unit} of range)"
        " that fixes it:\n10 20 30 1 -2 -> 1 1 1\n" + " ".join(map(str, theta_ints)) + " 4 -5 ->"
    )


def test_mode_and_instance_come_from_the_request():
    assert Mode.parse("calibration-sigma3") == Mode("sigma", 0.03)
    assert Mode.parse("calibration-sigma0.5").sigma == pytest.approx(0.005)
    assert Mode.parse("calibration-random").kind == "random"
    assert Mode.parse("calibration-zero").kind == "zero"
    assert Mode.parse("calibration-sigma3-draw2") == Mode("sigma", 0.03, draw=2)
    with pytest.raises(Exception, match="unknown model"):
        Mode.parse("gpt-4o")
    assert instance_tag("slide-gc", 7) == f"{INSTANCE_PREFIX}7:slide-gc"
    # only a calibration model is told the instance; the method's own fields are kept
    assert instance_params("SmolLM2", "slide", 1, {"a": 1}) == {"a": 1}
    tagged = instance_params("calibration-zero", "slide", 1, {"extra_body": {"grammar": "g"}})
    assert tagged["extra_body"] == {"grammar": "g", "user": f"{INSTANCE_PREFIX}1:slide"}


def test_the_query_theta_and_its_unit_are_read_from_the_prompt():
    steps, q = read_prompt(icpi_prompt([45, 12, 80]), 3)
    assert steps == 100 and q.tolist() == [45, 12, 80]
    steps, q = read_prompt(icpi_prompt([450, 120, 800], unit="permille"), 3)
    assert steps == 1000 and q.tolist() == [450, 120, 800]
    with pytest.raises(Exception, match="query"):
        read_prompt("Parameters (percent of range)\n1 2 3 ->\n4 5 6", 3)


def test_sigma0_answers_the_correction_to_theta_star_in_the_prompts_units(endpoint, store):
    spec = load_task(TASK).theta_spec
    low, span = spec.low_array, spec.high_array - spec.low_array
    star = (np.asarray(store.get(TASK, SEED).theta) - low) / span
    user = {"extra_body": {"user": instance_tag(TASK, SEED)}}
    for steps, unit in ((100, "percent"), (1000, "permille")):
        query = [steps // 2, steps // 4, steps // 3]
        with client(endpoint, "calibration-sigma0") as c:
            resp = c.generate(icpi_prompt(query, unit), n=3, **user)
        assert len(resp.texts) == 3  # n is honoured
        expected = np.rint(star * steps - np.asarray(query))
        for text in resp.texts:
            assert text.startswith(" ")  # it continues "... ->"
            assert [int(x) for x in text.split()] == expected.astype(int).tolist()


def test_noise_random_and_zero_modes(endpoint):
    user = {"extra_body": {"user": instance_tag(TASK, SEED)}}
    prompt = icpi_prompt([50, 50, 50])
    with client(endpoint, "calibration-sigma10") as c:
        noisy = c.generate(prompt, n=4, seed=1, **user).texts
        again = c.generate(prompt, n=4, seed=1, **user).texts
    assert len(set(noisy)) > 1 and noisy == again  # noisy, and seeded by the request
    with client(endpoint, "calibration-sigma10-draw1") as c:
        other = c.generate(prompt, n=4, seed=1, **user).texts
    assert other != noisy  # another draw of the same noise
    with client(endpoint, "calibration-random") as c:
        rand = [[int(x) for x in t.split()] for t in c.generate(prompt, n=8, **user).texts]
    assert all(-100 <= v <= 100 for row in rand for v in row) and len({*map(tuple, rand)}) > 1
    with client(endpoint, "calibration-zero", mode="chat") as c:
        assert c.generate(prompt, n=2, **user).texts == ["0 0 0", "0 0 0"]


def test_a_request_without_its_instance_is_refused_with_the_reason(endpoint):
    with client(endpoint, "calibration-sigma0") as c, pytest.raises(LLMError, match="user"):
        c.generate(icpi_prompt([1, 2, 3]))


def test_an_icpi_run_asks_it_through_the_real_client_and_lands_near_theta_star(endpoint, tmp_path):
    cfg = load_run_config(
        {"task": TASK, "method": "icpi", "seed": SEED, "iterations": 2},
        {"settings": {"theta_steps": 1000, "e_unit": 0.001}},
    )
    llm = LLMConfig(
        base_url=endpoint.base_url, model="calibration-sigma0", cache_path=tmp_path / "c.db"
    )
    summary = run_method(cfg, tmp_path / "run", llm=llm)
    calls = [json.loads(x) for x in (tmp_path / "run" / "llm_calls.jsonl").open()]
    assert calls[0]["request"]["extra_body"]["user"] == instance_tag(TASK, SEED)
    assert summary["final_cost"] < 0.005  # one permille step from θ0 lands within 5 mm


def test_a_corrupt_optimum_file_is_searched_again_to_the_same_theta_star(store, tmp_path):
    other = OptimumStore(tmp_path)
    other.path(TASK, SEED).write_text("{not json")
    assert other.get(TASK, SEED) == store.get(TASK, SEED)  # the search is deterministic
    assert json.loads(other.path(TASK, SEED).read_text())["seed"] == SEED


def test_cli_serves_it_until_terminated(tmp_path):
    import signal
    import subprocess
    import sys
    import urllib.request

    icpi = str(Path(sys.executable).parent / "icpi")
    cmd = [icpi, "llm", "serve", "--calibration", "--optimum-cache", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:
            models = [m["id"] for m in json.loads(resp.read())["data"]]
        assert "calibration-sigma0" in models and "calibration-random" in models
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0

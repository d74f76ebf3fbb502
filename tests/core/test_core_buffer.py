import json

import numpy as np
import pytest

from icpi.core.buffer import BufferMismatchError, ExperienceBuffer
from icpi.core.records import Attempt, jsonable


def _attempt(i, reward=1.0):
    return Attempt(iteration=i, action=np.array([i, 0.5]), reward=reward, info={"e": [0.1]})


def test_buffer_appends_and_resumes(tmp_path):
    path = tmp_path / "attempts.jsonl"
    buf = ExperienceBuffer(path, fingerprint={"task": "toy", "k": 3})
    for i in range(3):
        buf.append(_attempt(i, reward=-i))
    again = ExperienceBuffer(path, fingerprint={"task": "toy", "k": 3})
    assert len(again) == 3
    assert [a.reward for a in again] == [0.0, -1.0, -2.0]
    assert again.attempts[1].action == [1.0, 0.5]
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "header"
    assert len(lines) == 4


def test_buffer_drops_partial_last_line(tmp_path):
    path = tmp_path / "attempts.jsonl"
    buf = ExperienceBuffer(path)
    buf.append(_attempt(0))
    buf.append(_attempt(1))
    with path.open("a") as fh:  # a kill in the middle of a write
        fh.write('{"kind": "attempt", "attempt": {"iteration": 2, "act')
    again = ExperienceBuffer(path)
    assert len(again) == 2
    again.append(_attempt(2))
    assert len(ExperienceBuffer(path)) == 3


def test_buffer_refuses_other_run(tmp_path):
    path = tmp_path / "attempts.jsonl"
    ExperienceBuffer(path, fingerprint={"seed": 1}).append(_attempt(0))
    with pytest.raises(BufferMismatchError):
        ExperienceBuffer(path, fingerprint={"seed": 2})


def test_buffer_rejects_out_of_order(tmp_path):
    buf = ExperienceBuffer(tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="out of order"):
        buf.append(_attempt(1))


def test_buffer_rejects_corrupt_middle_line(tmp_path):
    path = tmp_path / "a.jsonl"
    ExperienceBuffer(path).append(_attempt(0))
    text = path.read_text()
    path.write_text(text + "not json\n")
    with pytest.raises(ValueError, match="not JSON"):
        ExperienceBuffer(path)


def test_nan_reward_roundtrip_is_strict_json(tmp_path):
    path = tmp_path / "a.jsonl"
    buf = ExperienceBuffer(path)
    buf.append(Attempt(iteration=0, action=None, reward=float("nan"), info={"x": np.inf}))
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    a = ExperienceBuffer(path).attempts[0]
    assert np.isnan(a.reward)
    assert a.info["x"] is None


def test_jsonable_converts_numpy():
    data = jsonable({"a": np.float32(1.5), "b": (np.int64(2), np.bool_(True)), 3: np.zeros(2)})
    assert data == {"a": 1.5, "b": [2, True], "3": [0.0, 0.0]}
    json.dumps(data)

import numpy as np
import pytest

from icpi.core.context import AllAttempts, KNearest, LastN, SortedByReward
from icpi.core.prompts import PromptTemplate, format_number
from icpi.core.records import Attempt, LoopState


def _history(rewards):
    return [Attempt(iteration=i, action=f"a{i}", reward=r) for i, r in enumerate(rewards)]


def test_all_last_sorted():
    state = LoopState(iteration=4, history=_history([0.5, 2.0, -1.0, 1.0]))
    assert [ex["action"] for ex in AllAttempts().build(state)] == ["a0", "a1", "a2", "a3"]
    assert [ex["action"] for ex in LastN(2).build(state)] == ["a2", "a3"]
    assert LastN(0).build(state) == []
    ranked = SortedByReward().build(state)
    assert [ex["action"] for ex in ranked] == ["a2", "a0", "a3", "a1"]  # best last
    top2 = SortedByReward(max_examples=2, best_last=False).build(state)
    assert [ex["action"] for ex in top2] == ["a1", "a3"]
    budget = SortedByReward(max_chars=2, size=lambda ex: 1).build(state)
    assert [ex["action"] for ex in budget] == ["a3", "a1"]
    hidden = AllAttempts(view=lambda a: None if a.reward < 0 else a.view()).build(state)
    assert len(hidden) == 3


def _knn(k=3, **kw):
    examples = [{"x": [float(i), 0.0], "label": i} for i in range(10)]
    return KNearest(
        examples,
        features=lambda ex: ex["x"],
        query=lambda s: s.task.get("q"),
        k=k,
        **kw,
    )


def test_knearest_orders_nearest_last_and_matches_brute_force():
    knn = _knn(k=3)
    out = knn.build(LoopState(iteration=0, history=[], task={"q": [6.2, 0.0]}))
    assert [ex["label"] for ex in out] == [5, 7, 6]  # decreasing distance
    first = _knn(k=3, nearest_last=False).build(
        LoopState(iteration=0, history=[], task={"q": [6.2, 0.0]})
    )
    assert [ex["label"] for ex in first] == [6, 7, 5]
    assert _knn().build(LoopState(iteration=0, history=[], task={})) == []


def test_knearest_merges_own_attempts():
    knn = _knn(
        k=2,
        history_view=lambda a: {"x": a.action, "label": f"own{a.iteration}"},
    )
    hist = [Attempt(iteration=0, action=[3.05, 0.0], reward=0.0)]
    out = knn.build(LoopState(iteration=1, history=hist, task={"q": [3.1, 0.0]}))
    assert [ex["label"] for ex in out] == [3, "own0"]


def test_knearest_normalises_features():
    # Second feature spans 1000x the first: unnormalised it would dominate.
    examples = [{"f": [float(i), 1000.0 * j]} for i in range(5) for j in range(5)]
    knn = KNearest(examples, features=lambda ex: ex["f"], query=lambda s: [2.0, 2000.0], k=1)
    assert knn.build(LoopState(0, []))[0]["f"] == [2.0, 2000.0]
    assert np.all(knn.scale > 1)


def test_knearest_validates():
    with pytest.raises(ValueError):
        KNearest([], features=lambda ex: [0.0], query=lambda s: None)
    with pytest.raises(ValueError):
        KNearest([{"f": 1}], features=lambda ex: [0.0], query=lambda s: None, k=0)


def test_format_number():
    assert format_number(0.12345) == "0.123"
    assert format_number(-0.0001) == "0.000"
    assert format_number(2.0, 1) == "2.0"
    assert format_number(float("nan")) == "nan"


def test_template_completion_rendering():
    t = PromptTemplate(
        header="goal {goal}",
        example="{theta} {e} -> {dtheta}",
        query="{theta} {e} ->",
        precision=2,
        query_fields=lambda s: {"theta": np.array([0.1, -0.2]), "e": (0.333, 1)},
    )
    ctx = [{"theta": [0.0, 1.0], "e": [0.5, 0.25], "dtheta": [-0.125, 0.0]}]
    text = t.render(LoopState(3, [], task={"goal": 1.5}), ctx)
    assert text == "goal 1.50\n0.00 1.00 0.50 0.25 -> -0.12 0.00\n0.10 -0.20 0.33 1.00 ->"


def test_template_chat_and_instruction_and_specs():
    t = PromptTemplate(
        system="You are careful.",
        example="Attempt {iteration}: {action} <Reward: {reward:.1f}>",
        query="{instruction}",
        instruction=lambda s: "Explore." if s.iteration % 2 == 0 else "Exploit.",
    )
    hist = [Attempt(0, "x=1", 0.25)]
    msgs = t.render(LoopState(1, hist), [a.view() for a in hist])
    assert msgs == [
        {"role": "system", "content": "You are careful."},
        {"role": "user", "content": "Attempt 0: x=1 <Reward: 0.2>\nExploit."},
    ]
    assert PromptTemplate(example="{a}", chat=True).render(LoopState(0, []), [{"a": "z"}]) == [
        {"role": "user", "content": "z"}
    ]


def test_template_missing_field_names_it():
    with pytest.raises(KeyError, match="dtheta"):
        PromptTemplate(example="{dtheta}").render(LoopState(0, []), [{"theta": 1}])

"""Answers of any length (#21 item 1): the whole answer is scored, later prompts keep its answer.

Before: responses were cut to 4000 characters before scoring (a math answer scored 1 at
3,016 characters and 0 at 4,010), and past math attempts were shown by their first 512
tokens, so the ``<answer>`` that earned the reward was not in the prompt.
"""

import json

import pytest
from lang_support import EXACT, SOLUTION_3457

from icpi.core import Attempt, LoopState
from icpi.language.config import lang_config
from icpi.language.methods.attempts import tagged_response
from icpi.language.runner import run_language
from icpi.language.tasks import Game24Task, MathSettings, MathTask, Problem
from icpi.llm import LLMConfig
from icpi.llm.testing import Reply, completion_body

THINKING = "Let me try another way of combining them and check each step again. "
LONG = 10_000


def long_math_answer(answer="42"):
    head = THINKING * (LONG // len(THINKING) + 1)
    return head[: LONG - len(f"<answer>{answer}</answer>")] + f"<answer>{answer}</answer>"


def long_cot_24():
    think = "<think>" + THINKING * (LONG // len(THINKING)) + "</think>\n"
    return think[: LONG - len(SOLUTION_3457) - 9] + "</think>\n" + SOLUTION_3457


def answering(fake, text_of):
    """An endpoint answering each completion with ``text_of(prompt)``, 4 characters a token."""

    def respond(path, body):
        if path.endswith("/models"):
            return Reply(body={"object": "list", "data": [{"id": "fake", "object": "model"}]})
        prompt = body["prompt"]
        return Reply(body=completion_body(text_of(prompt), prompt_tokens=len(prompt) // 4 + 1))

    fake.responder = respond


def http_llm(fake, tmp_path):
    return LLMConfig(
        base_url=fake.base_url, model="fake", cache_path=tmp_path / "c.sqlite3", timeout_s=5.0,
        max_retries=0,
    )  # fmt: skip


def test_a_10000_character_math_answer_scores_1_through_a_real_endpoint(fake, tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text('{"question": "What is 6 * 7?", "answer": "42"}\n')
    answer = long_math_answer()
    assert len(answer) == LONG
    answering(fake, lambda prompt: answer)
    cfg = lang_config(task="math", method="icrl-preset", math_file=str(q), problems=1, rounds=3)
    summary = run_language(cfg, tmp_path / "m", llm=http_llm(fake, tmp_path))
    assert summary["success_rate"] == [1.0, 1.0, 1.0] and summary["final_success"] == 1.0
    recs = [json.loads(x) for x in (tmp_path / "m" / "records.jsonl").open()]
    assert [r["response_chars"] for r in recs] == [LONG] * 3 and recs[0]["answer"] == "42"
    # Later prompts show the earlier attempts with the answer that earned their reward.
    later = fake.requests[-1]["body"]["prompt"]
    assert later.count("<answer>42</answer>") == 2 and later.count("<Reward: 1.00>") == 2


def test_a_10000_character_long_cot_game24_answer_succeeds(fake, tmp_path):
    answer = long_cot_24()
    assert len(answer) == LONG
    answering(fake, lambda prompt: answer)
    from icpi.language import game24

    position = game24.standard_ranking().index((3, 4, 5, 7))
    cfg = lang_config(method="long-cot", problems=1, split="all", start=position, **EXACT)
    summary = run_language(cfg, tmp_path / "g", llm=http_llm(fake, tmp_path))
    assert summary["final_success"] == 1.0
    line = (tmp_path / "g" / "attempts" / "000.jsonl").read_text().splitlines()[1]
    attempt = json.loads(line)["attempt"]
    assert attempt["reward"] == 19.0  # three sure steps and the bonus, after the thoughts


@pytest.mark.parametrize("chars", [3_000, 4_010, 10_000, 50_000])
def test_the_math_reward_reads_the_whole_answer(tmp_path, chars):
    task = MathTask(MathSettings(math_file=str(tmp_path / "unused.jsonl")))
    problem = Problem(0, "math:0", {"question": "?", "answer": "1/2"})
    text = ("x" * chars)[: chars - 17] + "<answer>1/2</answer>"
    fb = task.reward(problem, None)(text, LoopState(0, []))
    assert fb.reward == 1.0 and fb.info["success"]


def test_a_cut_attempt_keeps_its_start_its_answer_and_its_tags():
    task = Game24Task()
    text = SOLUTION_3457.replace("Answer:", THINKING * 150 + "\nAnswer:")
    fb = task.reward(Problem(0, "24:3 4 5 7", {"numbers": [3, 4, 5, 7]}), None, judged=False)(
        text, LoopState(0, [])
    )
    shown = tagged_response(
        Attempt(0, text, fb.reward, fb.info), max_chars=400, span=task.answer_span
    )
    assert len(shown) < 600 and "[…]" in shown
    assert shown.startswith("Step1: 7 - 5 = 2 (left: 2 3 4) <Reward: 3.00>")
    assert "Answer: (3 * 4) * (7 - 5) = 24 <Reward: 10.00>" in shown
    assert shown.endswith("Total reward: <Reward: 19.00>")

"""Remote context windows (#21 item 5): read from the endpoint, learnt from a refusal.

Before: against a 4096-token endpoint the default budget (31,768 tokens) made 8 of 20
rounds fail, and 8 "(no response)" blocks filled the context.
"""

import json
import math

import pytest
from lang_support import SOLUTION_3457

from icpi.core import Attempt
from icpi.language.budget import TokenBudget, window_in_message
from icpi.language.config import lang_config
from icpi.language.runner import run_language
from icpi.llm import LLMConfig
from icpi.llm.testing import Reply, completion_body
from icpi.llm.window import endpoint_context_window, window_of

WINDOW = 4096
#: A long answer: the context overflows a 4096-token window after a few rounds.
ANSWER = SOLUTION_3457 + "\n" + "Checked: every number used once, and each step is right. " * 30
VLLM_REFUSAL = (
    "This model's maximum context length is {w} tokens. However, you requested {n} tokens"
    " ({p} in the messages, {c} in the completion). Please reduce the length of the messages"
    " or completion."
)


class Endpoint:
    """A vLLM-like endpoint: 3 characters a token; refuses prompt + max_tokens > window."""

    def __init__(self, fake, report_window: bool):
        self.fake = fake
        self.report = report_window
        self.sent: list[int] = []  # prompt + max_tokens of every completion request
        self.refused = 0
        fake.responder = self.respond

    def respond(self, path, body):
        if path.endswith("/models"):
            entry = {"id": "fake", "object": "model"}
            if self.report:
                entry["max_model_len"] = WINDOW
            return Reply(body={"object": "list", "data": [entry]})
        tokens = math.ceil(len(body["prompt"]) / 3)
        self.sent.append(tokens + body["max_tokens"])
        if tokens + body["max_tokens"] > WINDOW:
            self.refused += 1
            msg = VLLM_REFUSAL.format(
                w=WINDOW, n=tokens + body["max_tokens"], p=tokens, c=body["max_tokens"]
            )
            return Reply(status=400, body={"object": "error", "message": msg, "code": 400})
        if "Game of 24 rule" in body["prompt"]:
            text = "Looks fine.\nAnswer: 10" if "Proposed" in body["prompt"] else "Answer: 3"
        elif body["prompt"].rstrip().endswith("Reflection:"):
            text = "I should combine 3 and 4 first."
        else:
            text = ANSWER
        return Reply(body=completion_body(text, prompt_tokens=tokens))


def http_llm(fake, tmp_path):
    return LLMConfig(
        base_url=fake.base_url, model="fake", cache_path=tmp_path / "c.sqlite3", timeout_s=5.0,
        max_retries=0,
    )  # fmt: skip


@pytest.mark.parametrize("method", ["icrl-preset", "reflexion"])
def test_a_reported_4096_token_window_is_never_exceeded(fake, tmp_path, method):
    endpoint = Endpoint(fake, report_window=True)
    cfg = lang_config(method=method, problems=1, rounds=20, split="random", max_tokens=300)
    summary = run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    assert len(summary["success_rate"]) == 20
    assert endpoint.refused == 0 and max(endpoint.sent) <= WINDOW
    recs = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").open()]
    assert all(r["source"] == "model" for r in recs)  # no round lost
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["context_window"] == {
        "tokens": WINDOW, "source": "endpoint /v1/models max_model_len of 'fake'",
    }  # fmt: skip
    assert config["context_budget"] == WINDOW - 300 - 64
    # The context was full: older attempts were dropped, the prompt still grew close to it.
    if method == "icrl-preset":
        assert max(endpoint.sent) > WINDOW * 0.7


def test_a_refusal_naming_the_window_costs_one_round_then_fits(fake, tmp_path):
    endpoint = Endpoint(fake, report_window=False)
    cfg = lang_config(problems=1, rounds=20, split="random", max_tokens=300)
    summary = run_language(cfg, tmp_path / "r", llm=http_llm(fake, tmp_path))
    assert len(summary["success_rate"]) == 20
    recs = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").open()]
    sources = [r["source"] for r in recs]
    assert sources.count("fallback") == 1 and endpoint.refused == 1
    after = endpoint.sent[endpoint.sent.index(max(endpoint.sent)) + 1 :]
    assert after and max(after) <= WINDOW  # once the window is known, never again


@pytest.mark.parametrize(
    "message, window",
    [
        (VLLM_REFUSAL.format(w=4096, n=5000, p=4000, c=1000), 4096),
        ("This model's maximum context length is 8192 tokens. However, your messages", 8192),
        ("Requested tokens (5000) exceed context window of 2048", 2048),
        ("the request exceeds the available context size (4096 tokens)", 4096),
        ("HTTP 400: prompt too long", None),
    ],
)
def test_the_window_is_read_from_refusals(message, window):
    assert window_in_message(message) == window


def test_a_named_window_caps_the_budget_an_unnamed_refusal_shrinks_it():
    budget = TokenBudget(31_704, reserve=1064)
    refusal = VLLM_REFUSAL.format(w=4096, n=9000, p=8000, c=1000)
    named = Attempt(0, "", 0.0, {}, llm={"errors": [f"ContextOverflowError: {refusal}"]})
    assert budget.limit([named]) == 4096 - 1064
    unnamed = Attempt(0, "", 0.0, {}, llm={"errors": ["ContextOverflowError: prompt too long"]})
    assert budget.limit([unnamed]) == int(31_704 * 0.75)
    assert budget.limit([named, named]) == int((4096 - 1064) * 0.75)  # still refused: shrink


def test_window_of_reads_the_known_keys():
    vllm = {"data": [{"id": "a", "max_model_len": 8192}, {"id": "b", "max_model_len": 4096}]}
    assert window_of(vllm, "b").tokens == 4096 and window_of(vllm, None).tokens == 8192
    assert window_of({"data": [{"id": "m", "context_length": 131072}]}, "m").tokens == 131072
    assert window_of({"data": [{"id": "m"}]}, "m") is None
    assert window_of({"data": [{"id": "m", "max_model_len": True}]}, "m") is None
    assert window_of(["not", "a", "dict"], None) is None


def test_no_window_from_a_dead_or_offline_endpoint(tmp_path):
    dead = LLMConfig(base_url="http://127.0.0.1:9/v1", connect_timeout_s=1.0, timeout_s=1.0)
    assert endpoint_context_window(dead) is None
    assert endpoint_context_window(dead.replace(offline=True, model="m")) is None
    assert endpoint_context_window(LLMConfig()) is None  # embedded: its n_ctx is known

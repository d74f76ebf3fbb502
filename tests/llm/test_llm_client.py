import json
import sqlite3
import time

import pytest
from fake_openai import AUTO, Reply, chat_body, completion_body

from icpi.llm import (
    CacheMissError,
    CallLog,
    LLMAuthError,
    LLMBadRequestError,
    LLMClient,
    LLMConfig,
    LLMEmptyResponseError,
    LLMUnavailableError,
)
from icpi.llm.server import free_port


def test_chat_forwards_every_parameter(fake, make_client):
    fake.set(Reply(body=chat_body("a", "b", prompt_tokens=20, completion_tokens=4)))
    client = make_client(mode="chat")
    resp = client.generate(
        "hello", n=2, temperature=0.6, top_p=0.95, seed=7, stop=["\n"], max_tokens=33
    )
    assert resp.texts == ["a", "b"]
    assert (resp.prompt_tokens, resp.completion_tokens) == (20, 4)
    assert not resp.cached and resp.latency_s > 0
    (req,) = fake.requests
    assert req["path"] == "/v1/chat/completions"
    body = req["body"]
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["model"] == "fake-model"
    assert (body["n"], body["temperature"], body["top_p"]) == (2, 0.6, 0.95)
    assert (body["seed"], body["stop"], body["max_tokens"]) == (7, ["\n"], 33)


def test_completion_mode(fake, make_client):
    fake.set(Reply(body=completion_body(" 0.1 0.2")))
    client = make_client(mode="completion")
    resp = client.complete("1 2 ->", max_tokens=5, seed=None)
    assert resp.texts == [" 0.1 0.2"]
    req = fake.requests[0]
    assert req["path"] == "/v1/completions"
    assert req["body"]["prompt"] == "1 2 ->"
    assert "seed" not in req["body"] and "stop" not in req["body"]


def test_messages_force_chat_mode(fake, make_client):
    fake.set(Reply(body=chat_body("x")))
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    make_client(mode="completion").generate(msgs)
    assert fake.requests[0]["body"]["messages"] == msgs


def test_n_is_topped_up_when_server_returns_fewer(fake, make_client):
    fake.set(Reply(body=completion_body("one")))  # like llama.cpp: always 1 choice
    resp = make_client().complete("p", n=3, seed=5)
    assert resp.texts == ["one"] * 3
    assert [r["body"]["n"] for r in fake.requests] == [3, 2, 1]
    seeds = [r["body"]["seed"] for r in fake.requests]
    assert len(set(seeds)) == 3 and seeds[0] == 5
    assert resp.prompt_tokens == 21


def test_cache_hit_makes_no_request_and_key_covers_request(fake, make_client):
    fake.set(Reply(body=AUTO))
    client = make_client()
    first = client.complete("p", seed=1)
    again = client.complete("p", seed=1)
    assert again.cached and again.texts == first.texts and again.key == first.key
    assert len(fake.requests) == 1
    for change in ({"seed": 2}, {"temperature": 0.5}, {"max_tokens": 3}, {"n": 1, "top_p": 0.9}):
        client.complete("p", **{"seed": 1, **change})
    client.complete("q", seed=1)
    client.chat([{"role": "user", "content": "p"}], seed=1)
    assert len(fake.requests) == 7
    other_model = make_client(model="other")
    other_model.complete("p", seed=1)
    assert len(fake.requests) == 8
    assert client.stats["cache_hits"] == 1


def test_offline_replays_and_fails_loudly_on_miss(fake, make_client, tmp_path):
    fake.set(Reply(body=completion_body("cached answer")))
    live = make_client()
    live.complete("p", seed=3)
    fake.set(Reply(status=500, body={"error": "must not be called"}))
    offline = make_client(offline=True)
    resp = offline.complete("p", seed=3)
    assert resp.cached and resp.texts == ["cached answer"]
    with pytest.raises(CacheMissError, match="offline"):
        offline.complete("p", seed=4)
    assert fake.requests == []
    assert offline._sdk is None  # no HTTP client was ever built


def test_offline_needs_model_name_and_cache(fake, tmp_path):
    with pytest.raises(ValueError, match="pass --model"):  # refused before any run directory
        LLMConfig(base_url=fake.base_url, offline=True)
    with pytest.raises(ValueError, match="no cache"):  # refused before any run directory
        LLMConfig(offline=True, use_cache=False)
    # the embedded endpoint needs no model name and starts nothing offline
    offline = LLMClient(LLMConfig(offline=True, cache_path=tmp_path / "c.sqlite3"))
    with pytest.raises(CacheMissError):
        offline.complete("p")
    assert offline._sdk is None and offline._server is None


def test_5xx_retried_then_clear_error(fake, make_client):
    fake.set(Reply(status=503, body={"error": {"message": "overloaded"}}))
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match="HTTP 503") as info:
        make_client(max_retries=2).complete("p")
    assert time.perf_counter() - t0 < 1.0
    assert len(fake.requests) == 3  # 1 + 2 retries
    assert fake.base_url in str(info.value)


def test_5xx_then_success(fake, make_client):
    fake.set(Reply(status=500, body={}), Reply(body=completion_body("fine")))
    assert make_client().complete("p").texts == ["fine"]
    assert len(fake.requests) == 2


def test_rate_limit_retried_then_clear_error(fake, make_client):
    fake.set(Reply(status=429, body={"error": {"message": "slow down"}}))
    with pytest.raises(LLMUnavailableError, match="rate limited"):
        make_client(max_retries=1).complete("p")
    assert len(fake.requests) == 2


def test_failed_calls_are_recorded(fake, make_client, tmp_path):
    fake.set(Reply(status=500, body={}))
    client = make_client(max_retries=0)
    with pytest.raises(LLMUnavailableError):
        client.complete("p")
    (rec,) = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert rec["error"].startswith("LLMUnavailableError: ") and "HTTP 500" in rec["error"]
    assert rec["texts"] == [] and rec["latency_s"] > 0
    assert client.stats["errors"] == 1 and client.stats["calls"] == 0


def test_4xx_not_retried(fake, make_client):
    fake.set(Reply(status=400, body={"error": {"message": "bad request"}}))
    with pytest.raises(LLMBadRequestError, match="HTTP 400"):
        make_client().complete("p")
    assert len(fake.requests) == 1
    fake.set(Reply(status=401, body={"error": {"message": "bad key"}}))
    with pytest.raises(LLMAuthError, match=r"HTTP 401.*api-key"):
        make_client().complete("q")
    assert len(fake.requests) == 1


def test_timeout_bounded(fake, make_client):
    fake.set(Reply(body=completion_body("late"), delay_s=1.0))
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError) as info:
        make_client(timeout_s=0.15, max_retries=1).complete("p")
    assert time.perf_counter() - t0 < 0.9
    assert len(fake.requests) == 2
    # the message states what happened to each attempt and the real budget
    msg = str(info.value)
    assert msg.count("no answer within the read timeout of 0.15 s") == 2
    assert "2 attempt(s)" in msg and "connect 5 s and read 0.15 s per attempt" in msg
    assert "150 s in all" in msg


def test_refused_connection_bounded(make_client):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match="connection failed"):
        make_client(base_url=url, max_retries=1).complete("p")
    assert time.perf_counter() - t0 < 1.0


def test_dropped_connection_bounded(fake, make_client):
    fake.set(Reply(drop=True))
    with pytest.raises(LLMUnavailableError):
        make_client(max_retries=1).complete("p")
    assert len(fake.requests) == 2


def test_malformed_json_is_a_clear_error(fake, make_client):
    fake.set(Reply(body="this is not json"))
    with pytest.raises(LLMUnavailableError, match="not JSON"):
        make_client().complete("p")


def test_empty_answers_reasked_then_error(fake, make_client):
    fake.set(Reply(body=completion_body("  ")))
    with pytest.raises(LLMEmptyResponseError, match="empty or refused"):
        make_client(empty_retries=2).complete("p", seed=1)
    assert len(fake.requests) == 3
    assert len({r["body"]["seed"] for r in fake.requests}) == 3  # re-asks reseed


def test_refusal_counts_as_empty(fake, make_client):
    fake.set(
        Reply(body=chat_body(None, refusal="I can't help with that")),
        Reply(body=chat_body("0.1 0.2")),
    )
    resp = make_client(mode="chat").generate("p")
    assert resp.texts == ["0.1 0.2"]
    assert len(fake.requests) == 2


def test_content_filter_blanks_sample(fake, make_client):
    fake.set(Reply(body=chat_body("bad", "good", finish="content_filter")))
    with pytest.raises(LLMEmptyResponseError):
        make_client(mode="chat", empty_retries=0).chat([{"role": "user", "content": "p"}], n=2)


def test_partial_empty_samples_are_kept(fake, make_client):
    fake.set(Reply(body=completion_body("", "0.3")))
    assert make_client().complete("p", n=2).texts == ["", "0.3"]


def test_records_and_stats(fake, make_client, tmp_path):
    fake.set(Reply(body=completion_body("x", prompt_tokens=9, completion_tokens=1)))
    client = make_client()
    client.complete("p")
    client.complete("p")
    lines = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [x["cached"] for x in lines] == [False, True]
    assert lines[0]["prompt_tokens"] == 9 and lines[0]["completion_tokens"] == 1
    assert lines[0]["latency_s"] > 0 and lines[0]["http_requests"] == 1
    assert lines[0]["request"]["prompt"] == "p"
    assert lines[0]["request_ids"] == ["req_1"]
    s = client.stats
    assert (s["calls"], s["cache_hits"], s["http_requests"], s["prompt_tokens"]) == (2, 1, 1, 9)


def test_api_key_never_stored(fake, make_client, tmp_path, caplog):
    secret = "sk-SECRET-do-not-leak-42"
    fake.set(Reply(body=completion_body("x")))
    caplog.set_level("DEBUG")
    client = make_client(api_key=secret)
    client.complete("p")
    assert fake.requests[0]["headers"]["authorization"] == f"Bearer {secret}"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in repr(client.config)
    assert secret not in json.dumps(client.config.public_dict())
    assert secret not in caplog.text
    rows = sqlite3.connect(tmp_path / "cache.sqlite3").execute("SELECT * FROM completions")
    assert secret not in repr(rows.fetchall())


def test_model_discovery(fake, tmp_path):
    fake.set(
        Reply(
            body={
                "object": "list",
                "data": [{"id": "served-model", "object": "model", "created": 0, "owned_by": "me"}],
            }
        ),
        Reply(body=completion_body("x")),
    )
    client = LLMClient(LLMConfig(base_url=fake.base_url, cache_path=tmp_path / "c.sqlite3"))
    client.complete("p")
    assert fake.requests[0]["path"] == "/v1/models"
    assert fake.requests[1]["body"]["model"] == "served-model"


def test_shared_call_log(fake, make_client):
    fake.set(Reply(body=completion_body("x")))
    log = CallLog()
    a = LLMClient(make_client().config, call_log=log)
    a.complete("p1")
    a.complete("p2")
    assert log.stats.calls == 2

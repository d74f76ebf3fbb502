"""The client against a misbehaving endpoint: bodies that are not completions, rate limits,
outages, credentials in URLs. Each of these failed on the package before issue 14."""

from __future__ import annotations

import json
import time

import pytest
from fake_openai import Reply, completion_body

from icpi.errors import EndpointDownError
from icpi.llm import LLMClient, LLMConfig, LLMEndpointDownError, LLMUnavailableError
from icpi.llm.server import free_port


def test_html_page_is_a_typed_error_naming_url_and_status(fake, make_client):
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    fake.set(Reply(body=page, headers={"Content-Type": "text/html"}))
    with pytest.raises(LLMUnavailableError) as info:
        make_client(max_retries=1).complete("p")
    msg = str(info.value)
    assert "/v1/completions answered HTTP 200 (text/html)" in msg and "not JSON" in msg
    assert "502 Bad Gateway" in msg  # a snippet of what came back


@pytest.mark.parametrize(
    "body",
    ['{"choices": [', {"object": "list", "data": []}, {"choices": "many"}, "null"],
    ids=["truncated-json", "not-a-completion", "bad-choices", "json-null"],
)
def test_malformed_bodies_are_retried_then_succeed(fake, make_client, body):
    fake.set(Reply(body=body), Reply(body=completion_body(" 1 2 3")))
    assert make_client(max_retries=2).complete("p").texts == [" 1 2 3"]
    assert len(fake.requests) == 2


@pytest.mark.parametrize("count", ["many", -3, 1.5, None, True])
def test_a_malformed_token_count_is_no_error(fake, make_client, count):
    body = completion_body(" 4 5")
    body["usage"] = {"prompt_tokens": count, "completion_tokens": count, "total_tokens": count}
    fake.set(Reply(body=body))
    answer = make_client(max_retries=0).complete("p")
    assert answer.texts == [" 4 5"] and answer.prompt_tokens == answer.completion_tokens == 0


def test_retry_after_is_honoured(fake, make_client):
    fake.set(
        Reply(status=429, body={"error": {"message": "slow"}}, headers={"Retry-After": "0.4"}),
        Reply(body=completion_body("ok")),
    )
    t0 = time.perf_counter()
    assert make_client(max_retries=2).complete("p").texts == ["ok"]
    assert time.perf_counter() - t0 >= 0.4


def test_a_call_never_outlasts_its_budget(fake, make_client):
    """A server that accepts the connection and never answers: bounded by call_timeout_s."""
    fake.set(Reply(body=completion_body("late"), delay_s=5.0))
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match=r"budget per call.*1\.2 s in all"):
        make_client(timeout_s=0.5, max_retries=10, call_timeout_s=1.2).complete("p")
    assert time.perf_counter() - t0 < 2.5


def test_an_endpoint_down_past_the_outage_time_stops_the_run(make_client):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = make_client(base_url=url, max_retries=0, outage_s=0.6)
    with pytest.raises(LLMUnavailableError) as first:
        client.complete("p1")
    assert not isinstance(first.value, EndpointDownError)  # one failed call: fall back
    time.sleep(0.7)
    with pytest.raises(LLMEndpointDownError, match=r"unreachable for \d+ s.*resume") as down:
        client.complete("p2")
    assert isinstance(down.value, EndpointDownError)  # the CLI exits 3 on this


def test_a_success_ends_the_outage(fake, make_client):
    fake.set(Reply(status=500, body={}), Reply(body=completion_body("ok")), Reply(status=500))
    client = make_client(max_retries=0, outage_s=0.3)
    with pytest.raises(LLMUnavailableError):
        client.complete("a")
    assert client.complete("b").texts == ["ok"]
    time.sleep(0.4)
    with pytest.raises(LLMUnavailableError) as info:  # a fresh outage, not 0.4 s old
        client.complete("c")
    assert not isinstance(info.value, EndpointDownError)


def test_credentials_in_the_url_are_never_stored(fake, tmp_path, caplog):
    caplog.set_level("DEBUG")
    port = fake.base_url.split(":")[2].split("/")[0]
    url = f"http://alice:PW-SECRET-1@127.0.0.1:{port}/v1?api_key=TOKEN-SECRET-2&x=1"
    fake.set(Reply(status=500, body={}), Reply(body=completion_body("ok")))
    cfg = LLMConfig(
        base_url=url,
        model="m",
        cache_path=tmp_path / "cache.sqlite3",
        log_path=tmp_path / "calls.jsonl",
        max_retries=2,
    )
    with LLMClient(cfg) as client:
        assert client.complete("p").texts == ["ok"]
        assert "SECRET" not in client.endpoint_id
    assert len(fake.requests) == 2  # the server got the URL as given, credentials included
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path
    assert "SECRET" not in caplog.text
    assert "SECRET" not in json.dumps(cfg.public_dict()) + json.dumps(cfg.recorded())


def test_each_attempt_is_capped_at_what_is_left_of_the_call_budget(fake, make_client):
    """Issue 25: the budget was checked only between attempts (150 s held a call 183.8 s)."""
    fake.set(Reply(body=completion_body("late"), delay_s=5.0))
    client = make_client(timeout_s=1.0, max_retries=5, call_timeout_s=1.5)
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match=r"1\.5 s in all"):
        client.complete("p")
    assert time.perf_counter() - t0 < 1.5 + 0.3  # before: 2.0 s (a second 1 s attempt)


def test_model_discovery_is_retried_and_resolved_once(fake, make_client):
    """Issue 25: the listing ran outside the retries, again on every call after a failure."""
    models = {"object": "list", "data": [{"id": "listed-model", "object": "model"}]}
    fake.set(Reply(status=503, body={}), Reply(body="<html>proxy</html>"), Reply(body=models))
    client = make_client(model=None, max_retries=3)
    assert client.resolve_model() == "listed-model"
    assert [r["path"] for r in fake.requests] == ["/v1/models"] * 3
    fake.set(Reply(body=completion_body("ok")))
    assert client.complete("p").texts == ["ok"] and client.complete("q").texts == ["ok"]
    assert [r["path"] for r in fake.requests] == ["/v1/completions"] * 2
    assert fake.requests[0]["body"]["model"] == "listed-model"


def test_model_discovery_stops_on_the_outage_clock_in_one_short_line(make_client):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = make_client(base_url=url, model=None, max_retries=1, outage_s=0.8)
    t0 = time.perf_counter()
    with pytest.raises(LLMEndpointDownError) as down:
        client.resolve_model()
    assert 0.8 <= time.perf_counter() - t0 < 3.0
    message = str(down.value)
    assert message.endswith("(connection failed); rerun the same command to resume")
    assert len(message) < 120 and "attempt" not in message, message

import multiprocessing as mp

from icpi.llm.cache import CompletionCache, request_key


def _writer(path, start):
    cache = CompletionCache(path)
    for i in range(start, start + 40):
        cache.put(f"k{i}", {"i": i}, {"texts": [str(i)]})
    cache.close()


def test_key_is_canonical_and_complete():
    a = request_key({"model": "m", "prompt": "p", "seed": 1, "stop": []})
    assert a == request_key({"stop": [], "seed": 1, "prompt": "p", "model": "m"})
    assert a != request_key({"model": "m", "prompt": "p", "seed": 2, "stop": []})
    assert len(a) == 64


def test_cache_roundtrip_and_persistence(tmp_path):
    path = tmp_path / "c.sqlite3"
    cache = CompletionCache(path)
    assert cache.get("x") is None
    cache.put("x", {"prompt": "p"}, {"texts": ["a"], "prompt_tokens": 3})
    cache.close()
    again = CompletionCache(path)
    assert again.get("x") == {"texts": ["a"], "prompt_tokens": 3}
    assert len(again) == 1


def test_cache_shared_by_processes(tmp_path):
    path = tmp_path / "c.sqlite3"
    CompletionCache(path).close()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in (0, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    cache = CompletionCache(path)
    assert len(cache) == 80 and cache.get("k79") == {"texts": ["79"]}

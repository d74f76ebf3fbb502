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


def test_many_openers_of_a_new_cache_at_once_all_succeed(tmp_path):
    # Two benchmark runs starting together opened one new cache, and SQLite answered the
    # second switch to WAL "database is locked" at once (3 of 30 trials of 8 openers here).
    import threading

    for trial in range(30):
        path = tmp_path / f"c{trial}.db"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_it(path=path, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                CompletionCache(path).put("k", {"q": 1}, {"a": 1})
            except BaseException as err:  # collected, asserted below
                errors.append(err)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

"""graywsgi._request_ids: generated request ids are random, well-formed and never shared."""

from __future__ import annotations

import os
import re
import threading
import warnings

from graywsgi.httputil import request_ids as _request_ids
from graywsgi.httputil.request_ids import BATCH, new_request_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_unique_across_batches() -> None:
    ids = [new_request_id() for _ in range(BATCH * 5 + 3)]
    assert all(HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_get_the_same_id() -> None:
    found: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def draw(out: list[str]) -> None:
        start.wait()
        out.extend(new_request_id() for _ in range(BATCH * 4))

    threads = [threading.Thread(target=draw, args=(out,)) for out in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    every = [i for out in found for i in out]
    assert len(every) == 8 * BATCH * 4
    assert len(set(every)) == len(every)


def test_a_forked_child_draws_its_own_ids() -> None:
    _request_ids._pool.clear()  # other tests drew ids too: start from a known pool
    new_request_id()
    assert len(_request_ids._pool) == BATCH - 1  # ids a child would inherit
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads alive, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave at once
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, " ".join(new_request_id() for _ in range(5)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = {new_request_id() for _ in range(5)}
    assert len(child) == 5 and all(HEX32.fullmatch(i) for i in child)
    assert not child & parent  # without the at-fork reset both would hand out the same pooled ids

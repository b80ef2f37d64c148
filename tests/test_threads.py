"""The store's own threads (``vfs._os.threads``): what the pack writes, the packs'
finishing and their fsyncs rely on, as they relied on ``concurrent.futures``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vfs._os.threads import Task, Threads
from vfs.store.durable import many_at_once


def test_calls_run_on_at_most_n_threads_and_each_task_ends_with_its_own_outcome() -> None:
    pool = Threads(2, "t")
    gate = threading.Event()
    running: set[str] = set()

    def work(i: int) -> int:
        running.add(threading.current_thread().name)
        gate.wait()
        if i == 3:
            raise OSError(5, "bad disk")
        return i * i

    tasks = [pool.submit(work, i) for i in range(6)]
    assert not any(t.done() for t in tasks)
    gate.set()
    assert [t.result() for t in tasks if t is not tasks[3]] == [0, 1, 4, 16, 25]
    err = tasks[3].exception()
    assert isinstance(err, OSError) and err.errno == 5
    with pytest.raises(OSError):
        tasks[3].result()
    assert running <= {"t_0", "t_1"} and len(running) >= 1
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(work, 0)


def test_shutdown_runs_what_is_queued_first() -> None:
    pool = Threads(1, "t")
    done: list[int] = []
    for i in range(20):
        pool.submit(done.append, i)
    pool.shutdown()
    assert done == list(range(20))


def test_a_task_is_waited_for_by_every_thread_that_asks() -> None:
    task: Task[str] = Task()
    got: list[str] = []
    waiters = [threading.Thread(target=lambda: got.append(task.result())) for _ in range(4)]
    for w in waiters:
        w.start()
    with pytest.raises(TimeoutError):
        task.result(timeout=0.01)
    task.set_result("ok")
    for w in waiters:
        w.join()
    assert got == ["ok"] * 4 and task.done()
    with pytest.raises(RuntimeError):
        task.set_result("again")


def test_many_at_once_raises_the_first_error_after_every_item_ended() -> None:
    ended: list[int] = []

    def work(i: int) -> int:
        if i in (2, 5):
            raise OSError(i, "failed")
        ended.append(i)
        return i

    assert many_at_once(lambda i: i + 1, list(range(5)), "t") == [1, 2, 3, 4, 5]
    with pytest.raises(OSError) as info:
        many_at_once(work, list(range(8)), "t")
    assert info.value.errno == 2 and sorted(ended) == [0, 1, 3, 4, 6, 7]


def test_calls_queued_when_the_interpreter_exits_run_to_their_end(tmp_path: Path) -> None:
    """A command that never shuts its store's pools down (the CLI leaves the process
    to end) still has what it queued done, as ``concurrent.futures``' pools had."""
    import subprocess
    import sys

    out = tmp_path / "lines"
    code = (
        "import sys\n"
        "from vfs._os.threads import Threads\n"
        "pool = Threads(1, 't')\n"
        "f = open(sys.argv[1], 'a', buffering=1)\n"
        "for i in range(500):\n"
        "    pool.submit(f.write, f'{i}\\n')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=60)
    assert out.read_text().split() == [str(i) for i in range(500)]


def test_a_pool_dropped_unclosed_stops_its_threads() -> None:
    """A store its user never closed (``vfs.Repo`` without ``close``) drops its pools:
    their threads end once the calls queued have run, rather than wait for ever (a
    process opening repositories again and again would gather them)."""
    import gc

    pool = Threads(2, "dropped")
    tasks = [pool.submit(sum, [i, i]) for i in range(4)]
    threads = [t for t in threading.enumerate() if t.name.startswith("dropped_")]
    assert threads
    del pool
    gc.collect()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert [t.result() for t in tasks] == [0, 2, 4, 6]


def test_a_task_still_queued_is_cancelled_and_never_runs() -> None:
    """``dvfs add`` cancels the hashing tasks still queued when one before them failed,
    as it did with ``Future.cancel``: a cancelled call never runs (it would read a
    buffer given back), a running or ended one is not cancelled, and the pool's
    threads go on with the calls after it."""
    from vfs._os.threads import Cancelled

    pool = Threads(1, "c")
    started, gate = threading.Event(), threading.Event()
    ran: list[int] = []

    def work(i: int) -> int:
        if i == 0:
            started.set()
            gate.wait()
        ran.append(i)
        return i

    tasks = [pool.submit(work, i) for i in range(4)]
    started.wait()  # (the one thread runs the first call: the others wait in the queue)
    assert not tasks[0].cancel()  # running
    assert tasks[2].cancel() and tasks[2].cancel() and tasks[2].cancelled()
    assert tasks[2].done() and not tasks[1].cancelled()
    gate.set()
    assert [tasks[i].result() for i in (0, 1, 3)] == [0, 1, 3]
    with pytest.raises(Cancelled):
        tasks[2].result()
    with pytest.raises(Cancelled):
        tasks[2].exception()
    assert not tasks[3].cancel() and not tasks[3].cancelled()  # ended
    pool.shutdown()
    assert ran == [0, 1, 3]


def test_cancelling_and_taking_calls_at_once_runs_each_call_at_most_once() -> None:
    """Each task ends once: cancelled (its call never runs) or with its call's result,
    however cancels and the threads taking calls interleave."""
    pool = Threads(2, "race")
    runs: dict[int, int] = {}
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            runs[i] = runs.get(i, 0) + 1
        return i

    tasks = [pool.submit(work, i) for i in range(2000)]
    cancelled = {i for i, t in enumerate(tasks) if i % 3 == 0 and t.cancel()}
    pool.shutdown()
    assert all(n == 1 for n in runs.values())
    assert set(runs) == set(range(2000)) - cancelled
    assert all(t.done() and t.cancelled() == (i in cancelled) for i, t in enumerate(tasks))
    assert all(tasks[i].result() == i for i in runs)

"""A few threads of our own running calls, and the end of each call: for the store.

The store writes a pack's blocks and finishes and fsyncs its packs on threads. Run on
``concurrent.futures``' pools, every command that stores an object (a commit's few
trees) imported that package and with it ``logging`` (with ``traceback``, ``string``
and ``tokenize``): 4.4-6.1 ms of CPU in a commit whose other modules were loaded.
:class:`Threads` runs calls on up to N threads, first submitted first started;
:class:`Task` is the end of one call, its result or its error, waited for by whoever
asks. They have the methods of ``ThreadPoolExecutor`` and ``Future`` that the store and
its callers use, and :class:`Submits` and :class:`Waitable` name those, so code given
either kind (``vfs._os.direct_io.DirectAppender``) works with both. ``dvfs add``'s
hashing pools (``vfs.worktree.pools.Workers``) run on them too, so a task still queued
can be cancelled (:meth:`Task.cancel`), as a ``Future`` can, when the work before it
failed.

Threads are started as calls come, up to N, and never stop while the pool is open.
As ``concurrent.futures``' pools are, the pools still open when the interpreter exits
are shut down first: the calls queued run to their end (a full pack handed to the
thread that finishes it is finished, as before, by a command that never closed its
store).
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
P = ParamSpec("P")


class Waitable(Protocol[T_co]):
    """The end of a call running elsewhere (a :class:`Task` or a ``Future``)."""

    def result(self, timeout: float | None = None) -> T_co:
        """Its value once it has ended (its error raised)."""
        ...

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Its error once it has ended (None: none)."""
        ...

    def done(self) -> bool:
        """Whether it has ended."""
        ...


class Cancellable(Waitable[T_co], Protocol[T_co]):
    """The end of a call that may still be queued (a :class:`Task` of a pool or a
    ``Future``): it can be kept from running."""

    def cancel(self) -> bool:
        """Keep the call from running if it has not started: True if so."""
        ...


class Submits(Protocol):
    """Something that runs calls elsewhere (:class:`Threads`, a ``ThreadPoolExecutor``)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Waitable[T]:
        """Start ``fn(*args, **kwargs)``; the end of it."""
        ...


class Cancelled(Exception):
    """What the result of a task cancelled before it started raises."""


class Task(Generic[T]):
    """The end of one call: set once (:meth:`set_result` or :meth:`set_exception`),
    waited for by any number of threads. A task of a :class:`Threads` pool can be
    cancelled while it is queued (:meth:`cancel`)."""

    __slots__ = ("_calls", "_done", "_error", "_gate", "_started", "_value")
    _value: T

    def __init__(self, calls: _Calls | None = None) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()  # let go once the end is set: waiting is acquiring it
        self._done = False
        self._started = calls is None  # (a task of no pool is never cancelled)
        self._calls = calls  # the pool's queue, whose lock orders a start and a cancel
        self._error: BaseException | None = None

    def set_result(self, value: T) -> None:
        self._value = value
        self._end()

    def set_exception(self, exc: BaseException) -> None:
        self._error = exc
        self._end()

    def _end(self) -> None:
        if self._done:
            raise RuntimeError("a task's end is set once")
        self._done = True
        self._gate.release()

    def done(self) -> bool:
        return self._done

    def cancel(self) -> bool:
        """Keep the call from running if no thread has taken it yet: True if so (or
        if it was cancelled before), False if it has started or ended. A cancelled
        task's :meth:`result` and :meth:`exception` raise :class:`Cancelled`."""
        calls = self._calls
        if calls is None:
            return False
        with calls.cond:
            if self._started:
                return isinstance(self._error, Cancelled)
            self._started = True
            for i, queued in enumerate(calls.queue):  # (a few: the callers bound them)
                if queued[0] is self:
                    del calls.queue[i]  # (and the call, with what it holds)
                    break
        self.set_exception(Cancelled())
        return True

    def cancelled(self) -> bool:
        """Whether :meth:`cancel` kept the call from running."""
        return self._done and isinstance(self._error, Cancelled)

    def _wait(self, timeout: float | None) -> None:
        if self._done:
            return
        if not self._gate.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError
        self._gate.release()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        if isinstance(self._error, Cancelled):
            raise self._error
        return self._error

    def result(self, timeout: float | None = None) -> T:
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value


_open: weakref.WeakSet[Threads] = weakref.WeakSet()  # pools to shut down at exit
_hooked: list[bool] = []  # the exit hook registered


def _shut_all() -> None:
    """At exit: shut every pool still open down (what is queued runs first)."""
    for pool in list(_open):
        pool.shutdown()


class _Calls:
    """What a pool's threads share with it: the calls queued and the state of the pool.
    The threads hold this, not the pool, so that a pool dropped unclosed (a store its
    user never closed) stops its threads once it is collected, as ``concurrent.futures``'
    do, instead of leaving them waiting for ever."""

    __slots__ = ("cond", "idle", "queue", "stopping")

    def __init__(self) -> None:
        self.queue: deque[tuple[Task[Any], Callable[[], Any]]] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.idle = 0  # threads waiting for a call and not yet woken for one
        self.stopping = False


def _work(calls: _Calls) -> None:
    """A pool's thread: run the calls queued, in order, until the pool stops."""
    while True:
        with calls.cond:
            while not calls.queue:
                if calls.stopping:
                    return
                calls.idle += 1
                calls.cond.wait()
            task, call = calls.queue.popleft()
            task._started = True  # (under the lock :meth:`Task.cancel` takes)
        try:
            value = call()
        except BaseException as exc:
            task.set_exception(exc)
        else:
            task.set_result(value)
        del task, call  # (nothing held while waiting for the next)


def _stop(calls: _Calls) -> None:
    """Let the threads end once the calls queued have run."""
    with calls.cond:
        calls.stopping = True
        calls.cond.notify_all()


class Threads:
    """Up to ``threads`` threads named ``name`` running the calls submitted, each
    taken in the order submitted; an error ends the call's :class:`Task`, not the
    thread."""

    def __init__(self, threads: int, name: str) -> None:
        if not _hooked:
            import atexit

            _hooked.append(True)
            atexit.register(_shut_all)
        _open.add(self)
        self._most = threads
        self._name = name
        self._calls = _Calls()
        self._threads: list[threading.Thread] = []
        weakref.finalize(self, _stop, self._calls)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
        """Queue ``fn(*args, **kwargs)``; its task."""
        calls = self._calls
        task: Task[T] = Task(calls)
        with calls.cond:
            if calls.stopping:
                raise RuntimeError(f"{self._name}: submitted after shutdown")
            calls.queue.append((task, lambda: fn(*args, **kwargs)))
            if calls.idle:
                calls.idle -= 1
                calls.cond.notify()
            elif len(self._threads) < self._most:
                t = threading.Thread(
                    target=_work, args=(calls,), name=f"{self._name}_{len(self._threads)}",
                    daemon=True,
                )  # fmt: skip
                self._threads.append(t)
                t.start()
        return task

    def shutdown(self) -> None:
        """Run what is queued, then stop the threads; return once they have."""
        _open.discard(self)
        _stop(self._calls)
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join()

"""The one place where errors become errno values for the kernel.

pyfuse3's contract is that a handler raises nothing but ``FUSEError``; every
handler is wrapped in :func:`handler`, which turns anything else into one:

================================  ===========  ======================================
raised                            errno        logged
================================  ===========  ======================================
FUSEError                         its own      no
RevisionNotFound                  ENOENT       no
UsageError                        EINVAL       warning
StorageFull                       ENOSPC       error
any other DvfsError (corrupt or   EIO          error, with the message (it names the
missing object, bad record,                    object id or the remote)
remote down, timeout)
OSError                           its errno    error
anything else (a bug)             EIO          error, with the traceback
================================  ===========  ======================================
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3

from vfs import DvfsError, RevisionNotFound, StorageFull, UsageError

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def errno_of(exc: BaseException) -> int:
    """The errno a failed request answers with (see the table above)."""
    if isinstance(exc, pyfuse3.FUSEError):
        return exc.errno
    if isinstance(exc, RevisionNotFound):
        return errno.ENOENT
    if isinstance(exc, UsageError):
        return errno.EINVAL
    if isinstance(exc, StorageFull):
        return errno.ENOSPC
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


def handler(
    fn: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Wrap a request handler so that it raises only FUSEError (logging the cause)."""

    @functools.wraps(fn)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as exc:  # converted here, and only here
            code = errno_of(exc)
            if not isinstance(exc, (DvfsError, OSError)):
                log.exception("%s failed with an internal error", fn.__name__)
            elif code != errno.ENOENT:
                level = logging.WARNING if isinstance(exc, UsageError) else logging.ERROR
                log.log(level, "%s: %s (%s)", fn.__name__, exc, errno.errorcode.get(code, code))
            raise pyfuse3.FUSEError(code) from None

    return wrapper

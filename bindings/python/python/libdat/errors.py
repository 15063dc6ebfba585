"""The exceptions libdat raises.

Every error from the library is a :class:`DatError` (also exported as ``libdat.Error``); the
subclass says what kind of failure it was and the message is the core's, e.g.::

    try:
        log.get(5, timeout=2.0)
    except libdat.TimeoutError as e:
        print(e)  # "timed out: block 5 did not arrive within 2s"

Where a built-in exception means the same thing, the class derives from it too, so
``except ValueError`` catches :class:`InvalidArgument` and ``except TimeoutError`` catches
:class:`libdat.TimeoutError`.
"""

import builtins

__all__ = [
    "DatError",
    "Error",
    "NotFound",
    "NotAvailable",
    "TimeoutError",
    "CancelledError",
    "InvalidArgument",
    "OutOfBounds",
    "NotWritable",
    "CorruptionError",
    "VerificationError",
    "ProtocolError",
    "IoError",
    "StorageError",
    "ClosedError",
]


class DatError(Exception):
    """Base class of every libdat error."""


Error = DatError


class NotFound(DatError, LookupError):
    """No log, drive or file by that key, name or path."""


class NotAvailable(DatError, LookupError):
    """A block that is not stored here (never downloaded, or cleared), read without waiting."""


class TimeoutError(DatError, builtins.TimeoutError):  # noqa: A001 - mirrors the builtin on purpose
    """A wait ran out of time: no peer delivered the block, range or drive in time."""


class CancelledError(DatError):
    """A wait was abandoned: its range was cancelled, or the log closed."""


class InvalidArgument(DatError, ValueError):
    """A bad argument (a malformed path, an unknown event name, a request that cannot be answered)."""


class OutOfBounds(InvalidArgument, IndexError):
    """An index, byte offset or version beyond the log, file or drive."""


class NotWritable(DatError):
    """A write to a log or drive this side cannot sign (a remote one, or a checkout)."""


class CorruptionError(DatError):
    """Stored bytes do not match what was written, or the store is of an unsupported version."""


class VerificationError(DatError):
    """Data from a peer or a caller failed verification: a proof, signature or manifest that
    does not check out, or a fork that conflicts with the local one."""


class ProtocolError(DatError):
    """A peer broke the wire protocol, the handshake failed, or bytes could not be decoded."""


class IoError(DatError, OSError):
    """An operating-system I/O operation failed: files, sockets (a refused connection, ...)."""


class StorageError(IoError):
    """The storage layer (LMDB) failed."""


class ClosedError(DatError):
    """The store (and so every log, drive and handle from it) or the handle was closed."""

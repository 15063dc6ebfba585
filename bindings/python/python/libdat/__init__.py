"""libdat: Hypercore 11 logs and Hyperdrive 13 drives, replicated peer to peer.

A Python package over libdat's Rust core (the private native module ``libdat._native``)::

    import libdat

    with libdat.Store("/tmp/chat") as store:
        log = store.core(name="chat")
        log.append(b"hello")
        drive = store.drive()
        drive.put("/hello.txt", b"hello world")

Blocking calls release the GIL; calls that wait on the network have asyncio forms
(``await range``, ``await drive.get_async(path)``, ``async for change in drive.changes(live=True)``).
Errors are :class:`libdat.DatError` subclasses (see :mod:`libdat.errors`).
"""

import atexit as _atexit

from . import errors
from .errors import (
    CancelledError,
    ClosedError,
    CorruptionError,
    DatError,
    Error,
    InvalidArgument,
    IoError,
    NotAvailable,
    NotFound,
    NotWritable,
    OutOfBounds,
    ProtocolError,
    StorageError,
    TimeoutError,
    VerificationError,
)
from ._file import DriveFile
from . import _native
from ._native import (
    Blob,
    Change,
    Changes,
    Connection,
    Cursor,
    Diff,
    Download,
    Drive,
    Entry,
    Event,
    Events,
    FileVersion,
    Log,
    Range,
    ReadStream,
    Server,
    Store,
    Subscription,
)

__version__ = _native.__version__

# callbacks stop calling into Python once the interpreter is exiting
_atexit.register(_native._shutdown)

__all__ = [
    "Blob",
    "CancelledError",
    "Change",
    "Changes",
    "ClosedError",
    "Connection",
    "CorruptionError",
    "Cursor",
    "DatError",
    "Diff",
    "Download",
    "Drive",
    "DriveFile",
    "Entry",
    "Error",
    "Event",
    "Events",
    "FileVersion",
    "InvalidArgument",
    "IoError",
    "Log",
    "NotAvailable",
    "NotFound",
    "NotWritable",
    "OutOfBounds",
    "ProtocolError",
    "Range",
    "ReadStream",
    "Server",
    "StorageError",
    "Store",
    "Subscription",
    "TimeoutError",
    "VerificationError",
    "errors",
]

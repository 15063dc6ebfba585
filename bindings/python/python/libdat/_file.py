"""Files of a drive as Python binary file objects (``drive.open(path)``)."""

import io
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from ._native import Cursor


class DriveFile(io.RawIOBase):
    """A read-only, seekable binary file over a drive's byte cursor.

    An :class:`io.RawIOBase`: ``read``, ``readinto``, ``readall``, ``seek``, ``tell``, and
    usable in ``with`` blocks and under :class:`io.BufferedReader`. Seeking past the end of the
    file raises :class:`libdat.OutOfBounds`.
    """

    def __init__(self, cursor: "Cursor", name: str) -> None:
        super().__init__()
        self._cursor = cursor
        self.name = name

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self._cursor.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def read(self, size: Optional[int] = -1) -> bytes:
        self._checkClosed()
        if size is None:
            size = -1
        return self._cursor.read(size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: "WriteableBuffer") -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        data = self._cursor.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._cursor.tell() + offset
        elif whence == io.SEEK_END:
            position = self._cursor.size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        return self._cursor.seek(position)

    def tell(self) -> int:
        self._checkClosed()
        return self._cursor.tell()

    def close(self) -> None:
        if not self.closed:
            self._cursor.close()
        super().close()

    def __repr__(self) -> str:
        return f"<libdat.DriveFile {self.name!r} size={self._cursor.size}>"

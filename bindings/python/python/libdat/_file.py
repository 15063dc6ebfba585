"""Files of a drive as Python binary file objects (``drive.open(path)``)."""

import io


class DriveFile(io.RawIOBase):
    """A read-only, seekable binary file over a drive's byte cursor.

    An :class:`io.RawIOBase`: ``read``, ``readinto``, ``readall``, ``seek``, ``tell``, and
    usable in ``with`` blocks and under :class:`io.BufferedReader`. Seeking past the end of the
    file raises :class:`libdat.OutOfBounds`.
    """

    def __init__(self, cursor, name):
        super().__init__()
        self._cursor = cursor
        self.name = name

    @property
    def size(self):
        """The file's size in bytes."""
        return self._cursor.size

    def readable(self):
        return True

    def seekable(self):
        return True

    def writable(self):
        return False

    def read(self, size=-1):
        self._checkClosed()
        if size is None:
            size = -1
        return self._cursor.read(size)

    def readall(self):
        return self.read(-1)

    def readinto(self, buffer):
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        data = self._cursor.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=io.SEEK_SET):
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

    def tell(self):
        self._checkClosed()
        return self._cursor.tell()

    def close(self):
        if not self.closed:
            self._cursor.close()
        super().close()

    def __repr__(self):
        return f"<libdat.DriveFile {self.name!r} size={self._cursor.size}>"

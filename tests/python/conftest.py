"""Fixtures: stores in temporary directories, and pairs of stores replicating over 127.0.0.1."""

import sys
import threading

import pytest

import libdat


@pytest.fixture
def store(tmp_path):
    with libdat.Store(tmp_path / "store") as s:
        yield s


class Peers:
    """A writer store and a reader store, connected over TCP on 127.0.0.1."""

    def __init__(self, root):
        self.writer = libdat.Store(root / "writer")
        self.reader = libdat.Store(root / "reader")
        self.server = self.writer.listen("127.0.0.1:0")
        self.connection = self.reader.connect(self.server.address)

    def close(self):
        self.reader.close()
        self.writer.close()


@pytest.fixture
def peers(tmp_path):
    p = Peers(tmp_path)
    yield p
    p.close()


def synced_drive(reader, drive, timeout=10.0):
    """The reader's copy of `drive`, once it knows the writer's current content length (so a
    test that counts the content blocks fetched sees the whole log's length first). Reads do not
    need this: a remote read waits for the length it needs."""
    remote = reader.drive(key=drive.key, sparse=True, timeout=timeout)
    content = len(drive.content_log)
    reached = remote.content_log.wait_length(content, timeout=timeout)
    assert reached >= content
    return remote


class Unraisable:
    """Collects what `sys.unraisablehook` receives (exceptions raised by callbacks)."""

    def __init__(self):
        self.seen = []
        self.event = threading.Event()

    def __call__(self, info):
        self.seen.append(info)
        self.event.set()


@pytest.fixture
def unraisable(monkeypatch):
    hook = Unraisable()
    monkeypatch.setattr(sys, "unraisablehook", hook)
    return hook

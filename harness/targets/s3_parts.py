"""Multipart geometry and bounded part buffers: what keeps an upload's memory fixed.

Every upload drillbook makes (a restore, a safety copy's proof, the lab's own) reads its stream
into parts of :data:`PART_SIZE`; a :class:`PartBudget` bounds how many part buffers are alive at
once across every upload that shares it, and reuses them (see the class and
:func:`_big_blocks_outside_the_heaps` for why reuse, and a fixed mmap threshold, are what keep
the resident set at the budget). :func:`fill` and :func:`read_part` read a stream into a part,
short only at its end (pipes return short reads). Split from :mod:`harness.targets.s3`, which
re-exports these names.
"""

from __future__ import annotations

import ctypes
import io
import threading

from harness.integrity import Readable

#: Multipart geometry of every upload drillbook makes: the same as boto3's managed transfer with
#: 16 MiB parts, so a restored object gets the ETag its original upload had (replication jobs
#: that compare ETags then see nothing to copy again).
PART_SIZE = 16 * 1024 * 1024
MULTIPART_THRESHOLD = 8 * 1024 * 1024


class PartBudget:
    """At most ``parts`` part buffers alive at once, across every upload that shares it: what
    bounds a restore's memory, whatever the artifact's size.

    :meth:`take` hands out a buffer and :meth:`give` takes it back. Buffers are reused, here and
    by later budgets (up to :data:`SPARE_BUFFERS` idle ones are kept for the process): glibc
    serves a freed 16 MiB block again from its heaps rather than returning it, so allocating a
    fresh part each time grows the resident set well past ``parts`` parts over a drill."""

    def __init__(self, parts: int) -> None:
        if parts < 1:
            raise ValueError("a part budget needs at least one part")
        self.parts = parts
        self._sem = threading.BoundedSemaphore(parts)
        self.made = 0  # buffers this budget had to allocate (the rest were reused)

    def acquire(self) -> None:
        self._sem.acquire()

    def release(self) -> None:
        self._sem.release()

    def take(self, size: int) -> bytearray:
        """A buffer of ``size`` bytes, once one of the ``parts`` units is free."""
        self.acquire()
        with _SPARES_LOCK:
            for i, buf in enumerate(_SPARES):
                if len(buf) == size:
                    return _SPARES.pop(i)
            self.made += 1
        return bytearray(size)

    def give(self, buf: bytearray) -> None:
        with _SPARES_LOCK:
            # keep spares of the size in use now: a stale size (an earlier upload's parts)
            # would otherwise fill the list and make every later part a new allocation
            while len(_SPARES) >= SPARE_BUFFERS and any(len(b) != len(buf) for b in _SPARES):
                _SPARES.pop(next(i for i, b in enumerate(_SPARES) if len(b) != len(buf)))
            if len(_SPARES) < SPARE_BUFFERS:
                _SPARES.append(buf)
        self.release()


def _big_blocks_outside_the_heaps() -> None:
    """Fix glibc's mmap threshold at 4 MiB (Linux; a no-op elsewhere). By default glibc raises
    the threshold to the size of any mmapped block freed, so once one 16 MiB part has been freed
    every later block up to 16 MiB is carved from the per-thread heaps, which keep it resident
    after it is freed: the drill's RSS then grows with the number of threads that ever held a
    part or a read buffer, not with what is alive. A fixed threshold keeps part buffers mmapped
    (returned to the system when freed) and small blocks in the heaps."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


_big_blocks_outside_the_heaps()

#: idle part buffers kept for reuse by the whole process (6 x 16 MiB at most: the restore's
#: default budget)
SPARE_BUFFERS = 6
_SPARES: list[bytearray] = []
_SPARES_LOCK = threading.Lock()


def read_part(stream: Readable, size: int) -> bytes:
    """Up to ``size`` bytes, short only at the end of the stream (pipes return short reads)."""
    first = stream.read(size)
    if len(first) == size or not first:
        return first
    chunks = [first]
    got = len(first)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


#: reads of streams that cannot read into a buffer (botocore's StreamingBody) go by this much
COPY_CHUNK = 1024 * 1024


def fill(stream: Readable, buf: bytearray) -> int:
    """Fill ``buf`` from ``stream``; the byte count, short only at the end of the stream."""
    view = memoryview(buf)
    got = 0
    readinto = getattr(stream, "readinto", None)
    while got < len(buf):
        if readinto is not None:
            try:
                n = readinto(view[got:])
            except (NotImplementedError, io.UnsupportedOperation):
                readinto = None  # an IOBase that only implements read()
                continue
        else:
            block = stream.read(min(COPY_CHUNK, len(buf) - got))
            n = len(block)
            view[got:got + n] = block
        if not n:
            break
        got += n
    return got

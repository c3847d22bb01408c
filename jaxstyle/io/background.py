"""Work beside the main thread: decoding the next frames and writing finished ones while the network
paints (decoders, Pillow and zlib release the GIL; XLA runs in its own threads).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], ahead: int) -> Iterator[T]:
    """Yields `items` in order, produced up to `ahead` in advance by a background thread; an exception
    there is raised here, at its place in the order. Closing the iterator early stops the thread."""
    slots: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((item, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            slots.put((_END, e))
            return
        slots.put((_END, None))

    thread = threading.Thread(target=produce, daemon=True, name="jaxstyle-prefetch")
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting for a free slot
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass


class Writer:
    """Runs `write(*args)` calls one at a time, in order, in a background thread. `close` (or leaving
    the `with` block) waits for them all and raises the first error any of them raised."""

    def __init__(self, write: Callable[..., object]):
        self._write = write
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxstyle-writer")
        self._pending: list[concurrent.futures.Future] = []

    def submit(self, *args) -> None:
        for f in self._pending:
            if f.done() and f.exception() is not None:
                f.result()  # an earlier write failed: stop here
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._write, *args))

    def close(self) -> None:
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        else:  # the error on its way out is the one to report; the writes made so far are kept
            self._pool.shutdown(wait=True)

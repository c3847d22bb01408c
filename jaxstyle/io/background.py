"""Work beside the main thread: decoding the next frames (`prefetch`), writing finished ones and encoding
the video (`Pipe`) while the network paints (decoders, encoders, Pillow and zlib release the GIL; XLA runs in its own threads).
"""

from __future__ import annotations

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


class Aborted(Exception):
    """Raised inside a `Pipe`'s consumer when the producer gave up: its partial work is to be discarded."""


_ABORT = object()


class Pipe:
    """`consume(items)` run in a background thread over the items `put` here, in order (up to `ahead`
    waiting). `close` ends the items and returns what `consume` returned, or raises what it raised;
    leaving the `with` block on an error makes the items raise `Aborted` inside `consume` instead."""

    def __init__(self, consume: Callable[[Iterator], T], ahead: int = 16):
        self._slots: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._result, self._error, self._ended = None, None, False
        self._thread = threading.Thread(target=self._run, args=(consume,), daemon=True, name="jaxstyle-pipe")
        self._thread.start()

    def _run(self, consume) -> None:
        try:
            self._result = consume(self._items())
        except BaseException as e:  # noqa: BLE001 - handed to the producer
            self._error = e
            while not self._ended:  # keep taking items, so that a producer waiting for a slot is never stuck
                self._ended = self._slots.get() in (_END, _ABORT)

    def _items(self) -> Iterator:
        while True:
            item = self._slots.get()
            self._ended = item is _END or item is _ABORT
            if item is _END:
                return
            if item is _ABORT:
                raise Aborted
            yield item

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._slots.put(item)

    def close(self):
        self._slots.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        else:
            self._slots.put(_ABORT)
            self._thread.join()

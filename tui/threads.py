"""Worker threads that never hold up quitting.

Textual runs thread workers on the event loop's default executor, and ``asyncio.run`` waits
for that executor's threads when the app exits: a worker blocked in a Docker build or a log
stream would keep the terminal for as long as it runs. The app installs this executor
instead, whose threads are daemons and whose shutdown does not wait, so `q` quits at once
and whatever a worker was doing is abandoned with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonExecutor(ThreadPoolExecutor):
    """One daemon thread per task; ``shutdown`` never waits for them."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="devmesh-tui")
        self._count = 0
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to whoever awaits the future
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._count += 1
        threading.Thread(target=run, name=f"devmesh-tui-{self._count}", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True

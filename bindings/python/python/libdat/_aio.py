"""asyncio glue: native operations complete on libdat's threads and settle asyncio futures.

A native awaitable passes a ``register(done)`` function; libdat calls ``done(result, error)``
exactly once from its callback thread, and :func:`bridge` hands that over to the event loop with
``call_soon_threadsafe``. Cancelling the awaiting task only drops the future (a range keeps
going until it is cancelled or its handle dropped).
"""

import asyncio
from typing import Any, Callable, Optional

_Done = Callable[[Any, Optional[BaseException]], None]


def bridge(register: Callable[[_Done], Any]) -> "asyncio.Future[Any]":
    """A future of the running loop, settled by ``done(result, error)`` given to ``register``."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Any, error: Optional[BaseException]) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def done(result: Any, error: Optional[BaseException]) -> None:
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    register(done)
    return future


async def anext(it: Any) -> Any:
    """``__anext__`` of a native iterator: ``_take()`` an item, else ``_poll`` for one."""
    while True:
        item = it._take()
        if item is not None:
            return item
        if it._ended:
            raise StopAsyncIteration
        await bridge(lambda done: it._poll(0.25, done))

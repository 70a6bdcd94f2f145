"""Where the Dask backend computes (docs/backends.md, "Running on a cluster").

By default Dask's own: its threaded scheduler on this machine (one thread per core, in
this process: no cluster to start, no data to send), or the ``dask.distributed`` client
this process has already made.  A scheduler's address (``--scheduler ADDRESS``,
``$LAMAD_SCHEDULER``, the API's ``scheduler=``) sends every computation of the process
to that cluster; ``local`` starts a ``LocalCluster`` of worker processes on this machine,
with Dask's dashboard.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from lamad.backend import Backend, BackendError

LOCAL = "local"
"""The address that starts a cluster on this machine."""

_CLIENTS: dict[str, Any] = {}
"""The clients made, by address: one per scheduler and process, made once (Dask's default
is the last made)."""


def use(backend: Backend, address: str | None = None) -> None:
    """Send ``backend``'s computations to the scheduler at ``address`` (default, on the
    dask backend: ``$LAMAD_SCHEDULER``; neither: Dask's default).  A scheduler given for a
    backend other than Dask, or one that cannot be reached, is a :class:`BackendError`;
    ``$LAMAD_SCHEDULER`` is for the dask backend alone (the others ignore it)."""
    if address and backend.name != "dask":
        raise BackendError(f"a scheduler ('{address}') needs the dask backend, not {backend.name}")
    address = address or (os.environ.get("LAMAD_SCHEDULER") if backend.name == "dask" else None)
    if not address:
        return
    if address not in _CLIENTS:
        _CLIENTS[address] = _connect(address)


def _connect(address: str) -> Any:
    """A ``dask.distributed`` client of the scheduler at ``address`` (``local``: of a new
    ``LocalCluster``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise BackendError("a scheduler needs dask.distributed: pip install 'lamad[dask]'") from None
    try:
        client = Client(LocalCluster() if address == LOCAL else address, timeout="10s")
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise BackendError(f"cannot reach the Dask scheduler at '{address}': {e}") from None
    atexit.register(client.close)  # before its cluster's workers go: they hold the persisted arrays
    return client

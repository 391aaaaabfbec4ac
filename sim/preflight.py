"""Checks that run before any simulation, so a command that cannot finish fails at once, in one line, having
written nothing: the Dask scheduler's address is well formed and answers."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from .scenario import ScenarioError

#: Dask's communication protocols that listen on a host and port
NETWORK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
DASK_DEFAULT_PORT = 8786


def check_scheduler(address: str, timeout: float = 5.0) -> None:
    """Raise ScenarioError unless ``address`` (``tcp://HOST:PORT``, ``HOST:PORT``, or another Dask protocol) is well
    formed and something accepts a connection there within ``timeout`` seconds."""
    bad = f"--scheduler {address}: "
    text = address.strip()
    url = urlsplit(text if "://" in text else f"tcp://{text}")
    if url.scheme == "inproc":
        return  # a scheduler inside this process: nothing to reach over the network
    if url.scheme not in NETWORK_SCHEMES:
        raise ScenarioError(bad + f"unknown protocol {url.scheme!r}; give an address such as tcp://HOST:8786 "
                            f"(protocols: {', '.join(NETWORK_SCHEMES)})")
    try:
        host, port = url.hostname, DASK_DEFAULT_PORT if url.port is None else url.port
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ScenarioError(bad + "the port must be a number from 1 to 65535, e.g. tcp://HOST:8786")
    if not host or url.path not in ("", "/") or url.query or url.fragment or " " in text:
        raise ScenarioError(bad + "not a scheduler address; give one such as tcp://HOST:8786")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ScenarioError(bad + f"cannot connect to {host}:{port} ({reason}); is `dask scheduler` running there?") from None

"""Checks that run before any simulation, so a command that cannot finish fails at once, in one line, having
written nothing: the Dask scheduler's address is well formed and a Dask scheduler answers there."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

from ..state.scenario import ScenarioError

#: Dask's communication protocols that listen on a host and port
NETWORK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
DASK_DEFAULT_PORT = 8786


def check_scheduler(address: str, timeout: float = 5.0, handshake_timeout: float = 10.0, in_process: bool = False) -> None:
    """Raise ScenarioError unless ``address`` (``tcp://HOST:PORT``, ``HOST:PORT``, or another Dask network protocol)
    is well formed, something accepts a connection there within ``timeout`` seconds, and a Dask client completes
    its handshake with it within ``handshake_timeout`` seconds (a web server or a silent port is refused, not
    waited on for ever). ``in_process`` accepts an ``inproc://`` scheduler of this process (Python callers only)."""
    bad = f"--scheduler {address}: "
    text = address.strip()
    try:
        url = urlsplit(text if "://" in text else f"tcp://{text}")
    except ValueError:
        raise ScenarioError(bad + "not a scheduler address; give one such as tcp://HOST:8786") from None
    if in_process and url.scheme == "inproc":
        return
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
    problem = _dask_handshake(text, handshake_timeout)
    if problem:
        raise ScenarioError(bad + f"{host}:{port} answers but not as a Dask scheduler ({problem})")


def _dask_handshake(address: str, deadline: float) -> str | None:
    """None if a Dask client connects to ``address`` within ``deadline`` seconds, else what went wrong. The client
    runs in a daemon thread, so a peer that never answers cannot hold this process past the deadline."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ScenarioError("--scheduler needs Dask: pip install 'reoffsim[dask]'") from None
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            Client(address, timeout=f"{deadline:g}s").close()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported in one line
            outcome.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    thread = threading.Thread(target=connect, name="scheduler-check", daemon=True)
    thread.start()
    thread.join(deadline + 1)
    return outcome[0] if outcome else f"no answer within {deadline:g} s"

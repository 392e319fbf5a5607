"""The shared probe of a local port."""

from __future__ import annotations

import errno
import socket

from devmesh.ports import bind_error


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_port_nobody_listens_on_is_free() -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
    assert bind_error(port) is None


def test_a_listened_port_gives_the_address_in_use_error() -> None:
    with _listener() as sock:
        error = bind_error(sock.getsockname()[1])
    assert error is not None and error.errno == errno.EADDRINUSE


def test_an_address_not_on_this_machine_gives_its_own_error() -> None:
    # 192.0.2.0/24 is reserved for documentation, so no interface here holds it.
    error = bind_error(0, "192.0.2.1")
    assert error is not None and error.errno == errno.EADDRNOTAVAIL


def test_the_probe_releases_the_port() -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
    assert bind_error(port) is None
    assert bind_error(port) is None

"""Whether a local TCP port is free to listen on."""

from __future__ import annotations

import socket


def bind_error(port: int, host: str = "127.0.0.1") -> OSError | None:
    """Why ``host:port`` cannot be bound now (None: it can), found by binding it briefly.

    A bind rather than a connect, so a program listening on the port is found whatever it
    answers; SO_REUSEADDR so connections lingering in TIME_WAIT after a server stopped do
    not count as in use, while a listening socket still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None

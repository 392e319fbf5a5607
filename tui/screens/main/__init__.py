"""The main screen, in three parts: the screen with its layout and the handlers that show
what the workers read (``screen``), the thread workers and their messages (``workers``), and
what the keys do (``actions``)."""

from tui.screens.main.screen import MainScreen

__all__ = ["MainScreen"]

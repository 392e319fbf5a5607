"""Screens of the devmesh TUI, one per module (the main screen is a package of its parts)."""

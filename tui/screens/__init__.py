"""Screens of the devmesh TUI, one per module."""

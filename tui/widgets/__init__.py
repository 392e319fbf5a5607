"""Widgets of the devmesh TUI, one per module."""

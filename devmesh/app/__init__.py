"""The use cases: what a person does with devmesh, for every front end alike.

The CLI (``devmesh.cli``) and the TUI (``tui``) call this floor and hold no rules of their
own; it calls down to the runtimes, builds, live sync's core and the manifest repo, and never
up to a front end.
"""

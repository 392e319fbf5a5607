"""The devmesh terminal UI (Textual). Depends on the core library; the core never imports it."""

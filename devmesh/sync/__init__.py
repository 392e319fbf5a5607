"""Live sync: saved files reach a forked service's running containers without a rebuild.

The pieces, each with one job:

- ``rules``: which files of a service are synced, where each goes in the container, and what
  is refused (``..``, absolute paths, symbolic links leaving the source tree);
- ``changes``: a change set (what happened to which paths) and the plan it turns into;
- ``archive``: the plan's files as one tar stream;
- ``transport``: how a tar stream and deletions reach a container (docker, or exec for
  runtimes that only offer exec with stdin);
- ``reload``: what runs after a sync (restart, signal, command);
- ``engine``: one service — plan, send, reload, or rebuild — and the events it emits;
- ``watcher`` / ``live``: watchfiles threads that feed the engines, started by the CLI.

Nothing here is imported by ``devmesh --help``: submodules load docker and watchfiles lazily.
"""

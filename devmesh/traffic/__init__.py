"""What traffic did: the mesh's own records of every request, as hop chains and per-version
figures.

Every proxy devmesh configures writes one JSON line per request it routed (its access log) in
the format of :func:`records.access_log_fields`: the docker runtime's Envoy on its stdout, and
the Istio proxies on the kind runtime through the mesh config. :mod:`.records` reads those lines
into :class:`~records.Hop` s (the version that served each hop comes from the proxy's upstream
cluster, the caller from the downstream address); :mod:`.chains` groups hops by request id into
chains (``web@baseline → api@feature-x → stock@baseline``); :mod:`.stats` keeps requests/s,
error %, rate-limited requests and p50/p95 latency per service × version over a sliding window,
in memory that does not grow with the number of requests; :mod:`.store` holds both, bounded.

Pure: no engine, no cluster. The runtimes hand in lines and an address book.
"""

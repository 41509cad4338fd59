"""The load test (``nox -s load``): many concurrent connections on one server."""

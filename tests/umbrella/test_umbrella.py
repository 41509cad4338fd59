"""The umbrella re-exports, and only re-exports, the documented API.

Code written against netaio 0.0.2's module paths (``netaio.common``,
``netaio.auth``, ``netaio.client``, ``netaio.server``) imports unchanged, and
every name is the very object the distribution that owns it defines.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import logging
from pathlib import Path

import pytest

import netaio
import netaio_auth
import netaio_client
import netaio_core
import netaio_node
import netaio_server

# The names each documented module path provides (netaio 0.0.2's layout).
MODULE_PATHS = {
    "netaio.common": [
        "Header",
        "AuthFields",
        "Body",
        "Message",
        "MessageType",
        "HeaderProtocol",
        "AuthFieldsProtocol",
        "BodyProtocol",
        "MessageProtocol",
        "keys_extractor",
        "make_error_response",
        "Handler",
        "default_server_logger",
        "default_client_logger",
    ],
    "netaio.auth": ["AuthPluginProtocol", "HMACAuthPlugin"],
    "netaio.client": ["TCPClient"],
    "netaio.server": ["TCPServer", "not_found_handler"],
}
OWNERS = (netaio_core, netaio_auth, netaio_client, netaio_server, netaio_node)


@pytest.mark.parametrize("module_name", sorted(MODULE_PATHS))
def test_documented_module_paths_import(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in MODULE_PATHS[module_name]:
        assert hasattr(module, name), f"{module_name}.{name} is missing"
        if hasattr(netaio, name):
            assert getattr(module, name) is getattr(netaio, name), f"{module_name}.{name}"
    assert set(MODULE_PATHS[module_name]) <= set(module.__all__)


def test_every_public_name_is_the_owning_distributions_object() -> None:
    for name in netaio.__all__:
        if name == "version":
            continue
        value = getattr(netaio, name)
        owners = [m for m in OWNERS if getattr(m, name, None) is value]
        assert owners, f"netaio.{name} is not re-exported from a netaio distribution"


def test_umbrella_defines_nothing_but_version() -> None:
    """No logic in the umbrella: its modules hold imports, ``__all__``,
    ``__version__`` and the ``version()`` function only."""
    source_dir = Path(netaio.__file__).parent
    for path in sorted(source_dir.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # docstring
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Assign) and all(
                isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in node.targets
            ):
                continue
            if isinstance(node, ast.FunctionDef) and node.name == "version":
                assert path.name == "__init__.py"
                continue
            if path.name == "__main__.py" and isinstance(node, ast.Expr):
                continue  # `python -m netaio`: the call of the command-line entry point
            pytest.fail(f"{path.name}:{node.lineno}: umbrella code beyond re-exports")


def test_all_lists_only_real_names() -> None:
    for module_name in ["netaio", *MODULE_PATHS]:
        module = importlib.import_module(module_name)
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{module_name}.__all__ names missing objects: {missing}"


def test_default_loggers_are_the_documented_ones() -> None:
    assert netaio.default_server_logger is logging.getLogger("netaio.server")
    assert netaio.default_client_logger is logging.getLogger("netaio.client")
    for logger in (netaio.default_server_logger, netaio.default_client_logger):
        assert logger.level == logging.INFO
        assert all(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_version_is_the_umbrella_distribution_version() -> None:
    assert netaio.version() == importlib.metadata.version("netaio") == netaio.__version__
    assert inspect.signature(netaio.version).parameters == {}

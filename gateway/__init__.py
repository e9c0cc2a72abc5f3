"""Switchyard, the gateway. `__version__` is the installed distribution's (pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("switchyard")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

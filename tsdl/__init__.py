"""tsdl: train and tune time-series deep-learning models on Ray, from a laptop to KubeRay."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tsdl")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__"]

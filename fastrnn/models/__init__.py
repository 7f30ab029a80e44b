"""Models: containers of layers with compile / fit / evaluate / predict / save."""
from .model import Sequential

__all__ = ["Sequential"]

"""planta-edge: the contract rules and bundle reader shared by the hub and the edge runtime."""

__version__ = "0.1.0"
__all__ = ["__version__"]

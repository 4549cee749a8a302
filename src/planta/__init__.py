"""planta: MLOps for small and mid-size factories."""

__version__ = "0.1.0"
__all__ = ["__version__"]

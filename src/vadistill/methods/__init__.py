"""The anomaly-detection methods, by command-line name (one explicit dict, no registry)."""

from vadistill.methods.aed_mae import AedMae
from vadistill.methods.base import VadMethod

METHODS: dict[str, type[VadMethod]] = {
    "aed-mae": AedMae,
}

__all__ = ["METHODS", "AedMae", "VadMethod"]

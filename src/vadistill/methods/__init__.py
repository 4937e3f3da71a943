"""The anomaly-detection methods, by command-line name (one explicit dict, no registry)."""

from vadistill.methods.aed_mae import AedMae
from vadistill.methods.base import VadMethod
from vadistill.methods.dakd import Dakd
from vadistill.methods.fast_aed import FastAed

METHODS: dict[str, type[VadMethod]] = {
    "aed-mae": AedMae,
    "dakd": Dakd,
    "fast-aed": FastAed,
}

__all__ = ["METHODS", "AedMae", "Dakd", "FastAed", "VadMethod"]

"""vadistill: video anomaly detection by knowledge distillation.

Convention used everywhere: a higher anomaly score means *more anomalous*.
"""

__version__ = "0.1.0"

"""Datasets: a registry kind (``"dataset"``) open to plugins."""

from scoreflow.data.base import SPLITS, TensorData, dequantize
from scoreflow.data.idx import IDXFormatError, parse_idx, read_idx_gz

__all__ = ["SPLITS", "IDXFormatError", "TensorData", "dequantize", "parse_idx", "read_idx_gz"]

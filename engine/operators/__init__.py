"""Covariance operators Q: kernels on a domain and their eigenbases on a grid."""

from __future__ import annotations

from engine.operators.covariance import KernelCovariance, WhiteCovariance, covariance_from_config
from engine.operators.kernels import KERNELS, kernel_length_scale, kernel_matrix

__all__ = ["KERNELS", "KernelCovariance", "WhiteCovariance", "covariance_from_config", "kernel_length_scale",
           "kernel_matrix"]

"""Evaluation after Oh et al. 2019: metrics, attribute classifiers, craniofacial measures, report."""

from .protocol import evaluate

__all__ = ["evaluate"]

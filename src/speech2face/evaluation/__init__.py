"""Evaluation after Oh et al. 2019: metrics, attribute classifiers, craniofacial measures, report.

Nothing is imported eagerly: ``from speech2face.evaluation import EvalConfig, evaluate`` loads the
protocol, ``speech2face.evaluation.metrics`` only the metrics."""


def __getattr__(name: str):
    if name == "evaluate":
        from .protocol import evaluate

        return evaluate
    if name == "EvalConfig":
        from .config import EvalConfig

        return EvalConfig
    raise AttributeError(f"module 'speech2face.evaluation' has no attribute {name!r}")


__all__ = ["EvalConfig", "evaluate"]

"""Evaluation: the paper's Table 1 protocol offline (``sinfree eval``)."""

from .evaluate import METRICS, EvaluationRun, ImageEvaluation, evaluate, evaluate_image, image_files, load_run
from .report import write_report

__all__ = ["METRICS", "EvaluationRun", "ImageEvaluation", "evaluate", "evaluate_image", "image_files", "load_run", "write_report"]

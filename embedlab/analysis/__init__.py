"""What the features and models say: norm statistics, projections, model results.

Every function returns numbers, tables or Plotly figures; none shows or
saves anything. :func:`embedlab.report.write_report` puts them on one page.

>>> import numpy as np
>>> from embedlab.analysis import compare_groups
>>> r = compare_groups(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
>>> r["auc"], r["cliffs_delta"]
(1.0, 1.0)
"""

from embedlab.analysis.gap import (class_recalls, difference_interval, gap_summary, origin_confusions,
                                  plot_confusion_pair, recall_gap)
from embedlab.analysis.detection import (detection_curves, detection_table, plot_reliability, plot_source_matrix,
                                        source_matrix)
from embedlab.analysis.groups import (EMOTIONS, GENERATED, REAL, combine_tables, dataset_is_generated,
                                      origin_of_labels)
from embedlab.analysis.learning import last_doubling_gain, learning_curves, more_data_sentence, plot_learning_curves
from embedlab.analysis.norms import (compare_groups, dimension_effects, l2_norms, norm_tests,
                                     plot_dimension_effects, plot_norm_boxes, plot_norm_distributions,
                                     summarize_groups)
from embedlab.analysis.projection import Projection, knn_transfer, plot_projection, project, separation
from embedlab.analysis.spectra import mean_spectra, plot_mean_spectra
from embedlab.analysis.results import (RunRecord, comparison_table, confident_mistakes, plot_confusion,
                                      per_class_accuracy, plot_history, plot_per_class_accuracy, plot_pr, plot_roc,
                                      read_run_folder, wilson_interval)
from embedlab.analysis.shipped import SHIPPED_SETS, ShippedScore, score_shipped, shipped_per_class
from embedlab.runs.scoring import TARGET_FPR

__all__ = [
    "EMOTIONS", "GENERATED", "REAL", "combine_tables", "dataset_is_generated", "origin_of_labels",
    "compare_groups", "dimension_effects", "l2_norms", "norm_tests", "plot_dimension_effects",
    "plot_norm_boxes", "plot_norm_distributions", "summarize_groups",
    "Projection", "knn_transfer", "plot_projection", "project", "separation",
    "RunRecord", "comparison_table", "confident_mistakes", "plot_confusion", "plot_history", "plot_pr",
    "plot_roc", "read_run_folder", "wilson_interval",
    "plot_reliability", "plot_source_matrix", "source_matrix", "detection_curves", "detection_table",
    "per_class_accuracy", "plot_per_class_accuracy", "TARGET_FPR", "mean_spectra", "plot_mean_spectra",
    "SHIPPED_SETS", "ShippedScore", "score_shipped", "shipped_per_class",
    "learning_curves", "last_doubling_gain", "more_data_sentence", "plot_learning_curves",
    "class_recalls", "difference_interval", "gap_summary", "origin_confusions", "plot_confusion_pair", "recall_gap",
]

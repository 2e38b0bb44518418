"""One self-contained, offline HTML page with everything embedlab found.

>>> from embedlab.report import ReportOptions, write_report  # doctest: +SKIP
>>> write_report("results/report.html", datasets=["data/sample/real-vs-fake"],
...              runs=["results/runs"], options=ReportOptions(workers=1))  # doctest: +SKIP
PosixPath('results/report.html')
"""

from embedlab.report.sources import (DatasetSource, default_features, find_run_folders, parse_dataset_arg,
                                     LAYOUT_FEATURES)
from embedlab.report.writer import ReportOptions, write_report

__all__ = ["write_report", "ReportOptions", "DatasetSource", "parse_dataset_arg", "default_features", "find_run_folders",
           "LAYOUT_FEATURES"]

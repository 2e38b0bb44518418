"""Loading face datasets into one table, whatever their layout.

>>> from embedlab import datasets
>>> df = datasets.load("data/sample/real-vs-fake")
>>> df.attrs["layout"], sorted(df["label"].unique())
('kaggle-140k', ['fake', 'real'])
"""

from embedlab.datasets.combined import combine
from embedlab.datasets.inspection import DatasetReport, inspect_dataset
from embedlab.datasets.layouts import LAYOUTS
from embedlab.datasets.sources import FAKE_LABEL, fake_sources, leave_out_source
from embedlab.datasets.tables import COLUMNS, as_table, image_table, images_of, load, sample_per_class

__all__ = ["load", "combine", "sample_per_class", "as_table", "image_table", "images_of", "inspect_dataset", "DatasetReport",
           "LAYOUTS", "COLUMNS", "FAKE_LABEL", "fake_sources", "leave_out_source"]

"""Neural detectors and emotion networks: registered by name, trained and opened like any run.

>>> from embedlab.nets import NETWORKS
>>> "emotion-cnn" in NETWORKS and "fusion-cnn" in NETWORKS
True

Nothing here imports torch at import time; it loads when a network is built.
Importing this package also lets the ``cnn`` feature read network runs
(``cnn:results/runs/NAME``, see :mod:`embedlab.nets.features`).
"""

from embedlab.nets.models import NETWORKS, TRAINING_DEFAULTS, NetworkSpec
from embedlab.nets.fit import fit_network
from embedlab.nets.run import NetworkRun, is_network_run, load_network_run
from embedlab.nets import features  # noqa: F401,E402  (plugs network runs into the cnn feature)

__all__ = ["NETWORKS", "TRAINING_DEFAULTS", "NetworkSpec", "fit_network", "load_network_run", "NetworkRun",
           "is_network_run"]

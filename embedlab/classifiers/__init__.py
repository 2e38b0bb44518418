"""Classifiers for cached features, found by name; :mod:`.fit` fits them, :mod:`.run` opens their runs.

Every classifier is a scikit-learn :class:`~sklearn.pipeline.Pipeline` whose
last step is called ``model`` (scaling comes first where the model needs it),
so ``clone``, ``GridSearchCV`` and ``predict_proba`` work the same for all.

>>> from embedlab.classifiers import CLASSIFIERS, create_classifier
>>> CLASSIFIERS.names()
['knn', 'linear-svm', 'logreg', 'mlp', 'random-forest', 'svm', 'xgboost']
>>> create_classifier("logreg", {"C": 0.5}).named_steps["model"].C
0.5
"""

from embedlab.classifiers.pipelines import (
    CLASSIFIERS,
    SEARCH_SPACES,
    create_classifier,
    model_parameters,
    parse_params,
    search_space,
    supports_sample_weight,
)

# Fitting (embedlab.classifiers.fit) and opened runs (embedlab.classifiers.run) are imported
# from their modules: this package stays as light as the registry, so that `embedlab --help`,
# which lists the classifiers, answers at once.
__all__ = ["CLASSIFIERS", "SEARCH_SPACES", "create_classifier", "model_parameters", "parse_params",
           "search_space", "supports_sample_weight"]

"""Where crops become a model: input pipelines, the classifier, training, metrics, plots.

Plain functions with no database and no Celery. ``data``, ``models`` and ``fit`` import
TensorFlow; ``evaluate`` and ``plots`` do not. This package imports none of them itself.
"""

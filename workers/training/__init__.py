"""Where crops become a model: input pipelines, the classifier, training, metrics, plots.

``data``, ``models``, ``fit``, ``evaluate`` and ``plots`` are plain functions with no database and
no Celery (``data``, ``models`` and ``fit`` import TensorFlow; ``evaluate`` and ``plots`` do not).
``run`` ties them to the database: it loads a recorded split, trains, and records the outcome.
This package imports none of them itself.
"""

"""Model serving: a FastAPI service over the model registry with per-project API keys.

``keys`` (hashed API keys in SQLite), ``catalog`` (served models and versions), ``predictors``
(input checks and the pipeline's preprocessing), ``request_log`` (append-only sinks),
``monitoring`` (counts, latency, class drift), ``app`` (the REST API), ``cli`` (``eeflow serve``).
"""

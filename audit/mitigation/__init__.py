"""Mitigation what-ifs (``face-audit mitigate``): per-group thresholds, Fair Score Normalization and
FairCal-style calibration, each evaluated on held-out people.

- :mod:`audit.mitigation.methods`: the methods as pure functions of scores, groups and clusters;
- :mod:`audit.mitigation.evaluate`: folds by subject, fitting, held-out counting, intervals;
- :mod:`audit.mitigation.runner`: the command (config, embeddings through the cache, outputs).
"""

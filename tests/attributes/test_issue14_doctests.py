"""The docstring examples of the issue-14 modules run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "audit.attributes.metrics", "audit.attributes.runner", "audit.labelfile",
    "audit.skintone.measure", "audit.skintone.people", "audit.skintone.landmarks",
    "audit.mitigation.methods", "audit.mitigation.evaluate",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0

"""Skin tone measured from images (``face-audit skintone``): ITA, L* and hue of a landmark-masked
skin region, per-person medians and consistency, and bins usable as a grouping (a label file).

- :mod:`audit.skintone.measure`: colour normalisation, CIELAB, ITA, bins (pure numpy);
- :mod:`audit.skintone.landmarks`: dlib's 68 landmarks and the skin mask;
- :mod:`audit.skintone.people`: per-person medians, bins and consistency;
- :mod:`audit.skintone.runner`: the command (config, label file, report).
"""

"""Thresholds at target FMRs from a scan: from the exact tail, or, deeper than a capped tail, by
narrowing passes (the per-cell histograms locate the bin, sub-histogram passes narrow it, a last
pass collects the few pairs left)."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import MetricError
from .numerics import _f32_down, _f32_up, _just_above, _k_rule
from .tail import _kth_in_band
from .workers import _run


class ThresholdsMixin:
    """:meth:`thresholds_at_fmr` of :class:`audit.engine.scan.TileScan`."""

    def thresholds_at_fmr(self, targets: Sequence[float]) -> np.ndarray:
        """Thresholds at target FMRs over all impostor comparisons of the scan.

        ``thresholds[j]`` equals :func:`audit.metrics.threshold_at_fmr` on the canonical scores of
        all impostor pairs: with ``k = floor(target × impostors)``, the next float64 above the
        (k+1)-th largest impostor score, so that at most ``k`` impostors have
        ``score >= threshold`` (ties at the boundary fall below it; the target is never exceeded).

        Parameters
        ----------
        targets : sequence of float, shape (m,)
            Each in (0, ``max_fmr``].

        Returns
        -------
        ndarray of float64, shape (m,)

        Raises
        ------
        MetricError
            No impostor comparisons, or a target outside (0, max_fmr] (rescan with a larger
            ``max_fmr``).
        """
        tg = np.asarray(targets, dtype=np.float64).reshape(-1)
        if self._tail is None or self._n_imp == 0:
            raise MetricError(
                "the scan has no impostor comparisons, so no threshold can be set at a target FMR. "
                "Check the subjects (every pair is mated?) and the impostor protocol."
            )
        bad = np.flatnonzero(~((tg > 0) & (tg <= self._max_fmr)))
        if bad.size:
            raise MetricError(
                f"every target must be in (0, max_fmr={self._max_fmr:g}]; got {tg[bad[0]]!r} at index {int(bad[0])}. "
                "Call score_tiles with max_fmr at least the largest target."
            )
        v, r, c, _ = self._tail
        geo = self._geo
        w = geo.margin
        out = np.empty(tg.shape, dtype=np.float64)
        size = v.size
        deep = []
        for j, t in enumerate(tg):
            k = _k_rule(float(t), self._n_imp)
            if k + 1 > self._tail_k:  # deeper than the capped tail: narrowing passes
                deep.append((j, k))
                continue
            if k + 1 > size:  # internal invariant: the tail holds its top k + 1
                raise RuntimeError(f"tail holds {size} pairs, fewer than k + 1 = {k + 1}; this is a bug")
            pivot = float(v[size - 1 - k])  # (k+1)-th largest screening value
            lo = int(np.searchsorted(v, _f32_down(pivot - w), side="left"))
            hi = int(np.searchsorted(v, _f32_up(pivot + w), side="right"))
            above = size - hi
            out[j] = _just_above(_kth_in_band(geo, r[lo:hi], c[lo:hi], k - above), np.dtype(np.float64))
        if deep:
            for (j, _), value in zip(deep, self._deep_thresholds([k for _, k in deep])):
                out[j] = _just_above(value, np.dtype(np.float64))
        return out

    def _deep_thresholds(self, ks: list[int]) -> list[float]:
        """The (k+1)-th largest canonical impostor score for each k, without a tail that long.

        A window of screening values certainly holds the (k+1)-th largest screening value (the
        histogram says which bin; its neighbours within the margin are added); while a window holds
        more than ``max_tail_pairs`` pairs, a pass histograms it into 4096 sub-bins and the window
        shrinks to one of them; then a pass collects its pairs and counts the impostors above it,
        and the canonical scores of the collected pairs give the value (as for the tail: every pair
        above the window scores higher, every pair below lower).
        """
        geo = self._geo
        w = geo.margin
        top = float(geo.hist_bins) + 1.0
        # (lo, hi, hist over [lo, hi), impostors above hi) per k; level 0 is the scan's histogram
        if self._hist_global is not None:
            base = (1.0, top, self._hist_global, 0)
        else:
            (above, h, _), = self._window_pass([(1.0, top, geo.hist_bins, False)], "scoring pairs (histogram)")
            base = (1.0, top, h, above)
        state = {i: base for i in range(len(ks))}
        while True:
            windows, est = {}, {}
            for i, k in enumerate(ks):
                lo, hi, h, above = state[i]
                width = (hi - lo) / h.size
                from_top = above + np.concatenate([np.cumsum(h[::-1])[::-1][1:], [0]])  # pairs in the bins above each bin
                s = int(np.flatnonzero((from_top <= k) & (k < from_top + h))[0])
                nlo, nhi = lo + s * width - w, lo + (s + 1) * width + w
                if s == h.size - 1 and hi >= top:
                    nhi = top + 1.0  # the scan's top bin also holds anything above its range
                windows[i] = (float(_f32_down(nlo)), float(_f32_up(nhi)))
                est[i] = int(h[max(0, s - 1): s + 2].sum())
            # narrow while a window holds too many pairs to collect, and while narrowing can help
            wide = [i for i in windows if est[i] > self._max_tail and windows[i][1] - windows[i][0] > 8 * w]
            if not wide:
                break
            got = self._window_pass([(*windows[i], 4096, False) for i in wide], "narrowing the threshold search")
            for i, (above, h, _) in zip(wide, got):
                state[i] = (windows[i][0], windows[i][1], h, above)
                # the new window's own histogram: the next round picks a sub-bin of it
        got = self._window_pass([(*windows[i], 0, True) for i in range(len(ks))], "collecting pairs at the thresholds")
        return [_kth_in_band(geo, r, c, k - above) for k, (above, _, (_v, r, c)) in zip(ks, got)]

    def _window_pass(self, windows: list[tuple], desc: str) -> list[tuple]:
        """One pass over the tiles for ``windows``; per window (impostors above, histogram, pairs)."""
        parts = _run(self._geo, self._tiles, mated=self._mated, tail_k=None, tail_floor=None, thresholds=[],
                     histogram=False, workers=self._workers, engine=self._engine, progress=self._progress, desc=desc, windows=windows)
        self._stats = replace(self._stats, passes=self._stats.passes + 1)
        out = []
        for i in range(len(windows)):
            res = [p["windows"][i] for p in parts]
            above = sum(x[0] for x in res)
            h = sum(x[1] for x in res) if res[0][1] is not None else None
            pairs = None
            if res[0][2] is not None:
                pairs = tuple(np.concatenate([x[2][j] for x in res]) for j in range(3))
            out.append((above, h, pairs))
        return out

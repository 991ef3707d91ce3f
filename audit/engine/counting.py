"""Counts at thresholds from a scan: from the exact tail (with its rows, so per-cell and
per-subject counts need no second pass), from the counts of thresholds given to the scan, or by a
counting pass over the tiles; the impostor pairs at or above a threshold; per-person counts for the
people-level bootstrap."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..errors import MetricError
from . import _fused
from .counts import CellCounts
from .geometry import _raw_band
from .kernel import merge_fm
from .numerics import _canonical, _f32_down
from .workers import _run


def _subtract_mated(fm: np.ndarray, th: np.ndarray, mated, m_scores: np.ndarray, grp: np.ndarray) -> None:
    """Remove the scanned mated pairs from pass counts ``fm`` (T, N, G): the kernel counts every
    pair of a tile, and a mated pair inside it was counted exactly when its canonical score
    reached the threshold."""
    ma, mb, in_scan, _ = mated
    for k in range(th.size):
        hit = in_scan & (m_scores >= th[k])
        np.subtract.at(fm[k], (ma[hit], grp[mb[hit]]), 1)
        np.subtract.at(fm[k], (mb[hit], grp[ma[hit]]), 1)


class CountingMixin:
    """:meth:`counts_at`, :meth:`false_match_rows` and :meth:`people_counts` of
    :class:`audit.engine.scan.TileScan`."""

    def counts_at(self, thresholds: Sequence[float], *, allow_rescan: bool = True) -> CellCounts:
        """Exact false matches per cell/subject and false non-matches per group/subject.

        Each threshold is counted from the tail when it is at or above :attr:`tail_floor`, from the
        pass counts when it was given to :func:`score_tiles`, and otherwise by a second pass over
        the tiles (all such thresholds together; ``rescanned`` says so).

        Parameters
        ----------
        thresholds : sequence of float, shape (T,)
            Similarity units; ``-inf``/``inf`` allowed.
        allow_rescan : bool, default True
            When False, a threshold that needs a second pass raises instead.

        Returns
        -------
        CellCounts

        Raises
        ------
        MetricError
            NaN thresholds, or a rescan needed while ``allow_rescan`` is False.
        """
        th = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if np.isnan(th).any():
            raise MetricError("thresholds must not be NaN; check how they were computed.")
        geo = self._geo
        n, g = geo.e32.shape[0], geo.n_groups
        fm_row = np.zeros((th.size, n, g), dtype=np.int64)
        need = []
        for k, t in enumerate(th):
            lo32, hi32 = _raw_band(geo, float(t))
            fixed_hit = np.flatnonzero(self._fixed == t)
            if self._tail is not None and lo32 >= self._tail[3]:
                fm_row[k] = self._tail_counts(float(t), lo32, hi32)
            elif fixed_hit.size:
                fm_row[k] = self._fm_fixed[fixed_hit[0]]
            elif self._tail is None and self._n_imp == 0:
                pass  # nothing to count
            else:
                need.append(k)
        rescanned = False
        if need:
            if not allow_rescan:
                raise MetricError(
                    f"threshold(s) {th[need].tolist()} lie below the exact tail (floor {self.tail_floor:.6g}) and were not "
                    "given to score_tiles; counting them needs a second pass. Pass allow_rescan=True, give them as "
                    "score_tiles(thresholds=...), or raise max_fmr."
                )
            parts = _run(geo, self._tiles, mated=self._mated, tail_k=None, tail_floor=None, thresholds=th[need].tolist(),
                         histogram=False, workers=self._workers, engine=self._engine, progress=self._progress,
                         desc="second pass (thresholds below the tail)")
            fm = merge_fm(parts)
            _subtract_mated(fm, th[need], self._mated, self._mated_scores, geo.grp)
            fm_row[need] = fm
            self._stats = replace(self._stats, passes=self._stats.passes + 1)
            rescanned = True
        return self._assemble(th, fm_row, rescanned)

    def false_match_rows(self, threshold: float, *, max_pairs: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Every impostor pair scoring at or above ``threshold``, as (row, row) in scan order.

        From the tail when the threshold is at or above :attr:`tail_floor`; otherwise by a pass
        that collects them, when the scan's counts show at most ``max_pairs`` (default
        ``max_tail_pairs``) of them. Returns ``None`` when there are more (nothing is collected)."""
        geo = self._geo
        t = float(threshold)
        lo32, hi32 = _raw_band(geo, t)
        if self._tail is not None and lo32 >= self._tail[3]:
            v, r, c, _ = self._tail
            i_lo = int(np.searchsorted(v, lo32, side="left"))
            i_hi = int(np.searchsorted(v, hi32, side="left"))
            br, bc = r[i_lo:i_hi].astype(np.int64), c[i_lo:i_hi].astype(np.int64)
            hit = _canonical(geo.e32, br, bc, geo.metric) >= t if br.size else np.zeros(0, bool)
            rows = np.concatenate([r[i_hi:].astype(np.int64), br[hit]])
            cols = np.concatenate([c[i_hi:].astype(np.int64), bc[hit]])
            return rows, cols
        if self._n_imp == 0 or not np.isfinite(t) and t > 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cap = self._max_tail if max_pairs is None else int(max_pairs)
        n_fm = int(self.counts_at([t]).false_matches_total[0])
        if n_fm > cap:
            return None
        if n_fm == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        top = np.float32(np.finfo(np.float32).max)
        ((_above, _h, (_v, r, c)),) = self._window_pass([(float(lo32), float(top), 0, True)], "collecting false-match pairs")
        r, c = r.astype(np.int64), c.astype(np.int64)
        hit = _canonical(geo.e32, r, c, geo.metric) >= t if r.size else np.zeros(0, bool)
        return r[hit], c[hit]

    def people_counts(self, thresholds: Sequence[float], *, max_pairs: int | None = None):
        """Per-person counts for the people-level bootstrap (:class:`audit.metrics.people.PeopleCounts`),
        or ``None`` when some threshold has more false matches than ``max_pairs`` to list.

        Cells are the scan's group codes (two-sided: side-coded). A mated pair belongs to the cell
        of its first image in the caller's order (the probe's in a two-sided scan).

        The operating point's tail (the top of the scan's tail, rescored and ordered by canonical
        score) also lists the false matches of every threshold whose pairs it holds: a prefix of it,
        each pair once with a 0/1 column per threshold. Other thresholds are listed by
        :meth:`false_match_rows`."""
        from audit.metrics.people import PeopleCounts

        geo = self._geo
        th = np.asarray(thresholds, np.float64).reshape(-1)
        g = geo.n_groups
        n_subj = self._subject_labels.shape[0]
        has_tail = self._tail is not None and self._tail[0].size > 0
        top_floor = self._top_floor() if has_tail else None
        covered = np.array([has_tail and _raw_band(geo, float(t))[0] >= top_floor for t in th], bool)
        parts = []  # (rows or people a, b, cells a, b, counts (P, T)) to aggregate
        for k in np.flatnonzero(~covered):
            x = self.false_match_rows(float(th[k]), max_pairs=max_pairs)
            if x is None:
                return None
            onehot = np.zeros((x[0].size, th.size), np.int64)
            onehot[:, k] = 1
            parts.append((geo.subj[x[0]], geo.subj[x[1]], geo.grp[x[0]], geo.grp[x[1]], onehot))
        mg = self._mated_first_group()
        msubj = geo.subj[self._mated[0]]
        tail = {}
        if has_tail:  # the highest impostor scores, for the operating point
            tr, tc = self._top_of_tail(top_floor)
            ts = _canonical(geo.e32, tr, tc, geo.metric)
            o = _fused.order_desc(ts)  # nearly in order already: the tail is sorted by screening value
            tr, tc, ts = tr[o], tc[o], ts[o]
            tail = dict(tail_score=ts, tail_a=geo.subj[tr], tail_b=geo.subj[tc], tail_ca=geo.grp[tr], tail_cb=geo.grp[tc],
                        mated_score=np.asarray(self._mated_scores, np.float64), mated_score_person=msubj.astype(np.int64),
                        mated_score_cell=mg.astype(np.int64))
            if covered.any():  # pairs scoring >= a covered threshold: the tail's first m
                m = int(np.searchsorted(-ts, -float(th[covered].min()), side="right"))
                hit = (ts[:m, None] >= th[None, :]) & covered[None, :]
                parts.append((tail["tail_a"][:m], tail["tail_b"][:m], tail["tail_ca"][:m], tail["tail_cb"][:m], hit.astype(np.int64)))
        if len(parts) == 1:
            a, b, ca, cb, cnt = PeopleCounts.aggregate_pairs(*parts[0])
        else:
            a, b, ca, cb, cnt = PeopleCounts.aggregate_pairs(
                *(np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64) for i in range(4)),
                np.concatenate([p[4] for p in parts]) if parts else np.zeros((0, th.size), np.int64))
        images = np.bincount(geo.subj * g + geo.grp, minlength=n_subj * g).reshape(n_subj, g)
        first_cell = self._subject_first_group()
        miss = (self._mated_scores[:, None] < th[None, :]).astype(np.int64)  # (m, T)
        mp, _, mc, _, agg = PeopleCounts.aggregate_pairs(msubj, msubj, mg, mg, np.concatenate([np.ones((msubj.size, 1), np.int64), miss], axis=1))
        mode = "two_sided" if geo.base_groups else ("same_cell" if self._impostor_mode == "same_group" else "all")
        return PeopleCounts(th.copy(), first_cell.astype(np.int64), images.astype(np.int64), mode, a, b, ca, cb, cnt,
                            mp, mc, agg[:, 0].copy(), agg[:, 1:].copy(), **tail)

    def _top_floor(self) -> np.float32:
        """The floor of the top of the tail: the one its k-th largest value sets (below it the tail
        may also hold the pairs kept for a threshold given to the scan, which the operating point
        does not need); every pair with a screening value at or above it is in the tail."""
        v, _, _, floor = self._tail
        if v.size > self._tail_k > 0:
            return max(floor, _f32_down(float(v[v.size - self._tail_k]) - self._geo.margin))
        return floor

    def _top_of_tail(self, floor: np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns (int64) of the tail's pairs at or above ``floor``, highest screening value first."""
        v, r, c, _ = self._tail
        start = int(np.searchsorted(v, floor, side="left"))
        return r[start:][::-1].astype(np.int64), c[start:][::-1].astype(np.int64)

    def _tail_counts(self, t: float, lo32, hi32) -> np.ndarray:
        v, r, c, _ = self._tail
        geo = self._geo
        n, g = geo.e32.shape[0], geo.n_groups
        i_lo = int(np.searchsorted(v, lo32, side="left"))
        i_hi = int(np.searchsorted(v, hi32, side="left"))
        rows = [r[i_hi:]]
        cols = [c[i_hi:]]
        if i_hi > i_lo:
            br, bc = r[i_lo:i_hi].astype(np.int64), c[i_lo:i_hi].astype(np.int64)
            hit = _canonical(geo.e32, br, bc, geo.metric) >= t
            rows.append(br[hit])
            cols.append(bc[hit])
        rr = np.concatenate(rows).astype(np.int64)
        cc = np.concatenate(cols).astype(np.int64)
        out = np.bincount(rr * g + geo.grp[cc], minlength=n * g) + np.bincount(cc * g + geo.grp[rr], minlength=n * g)
        return out.reshape(n, g)

    def _assemble(self, th: np.ndarray, fm_row: np.ndarray, rescanned: bool) -> CellCounts:
        geo = self._geo
        g = geo.n_groups
        base = geo.base_groups or g  # group code modulo the side
        n_subj = self._subject_labels.shape[0]
        t = th.size
        fm_cells = np.stack([self._cells(fm_row[k]) for k in range(t)]) if t else np.zeros((0, g, g), np.int64)
        sub_fm = np.zeros((t, n_subj, g), dtype=np.int64)
        for k in range(t):
            np.add.at(sub_fm[k], geo.subj, fm_row[k])
        sub_imp = np.zeros((n_subj, g), dtype=np.int64)
        np.add.at(sub_imp, geo.subj, self._imp_row)
        # mated: by the group of the pair's first row (caller's order); subject of the pair
        mg = self._mated_first_group()
        msubj = geo.subj[self._mated[0]]
        miss = self._mated_scores[None, :] < th[:, None]  # (T, m)
        fnm = np.stack([np.bincount(mg[miss[k]], minlength=g) for k in range(t)]) if t else np.zeros((0, g), np.int64)
        sub_fnm = np.stack([np.bincount(msubj[miss[k]], minlength=n_subj) for k in range(t)]) if t else np.zeros((0, n_subj), np.int64)
        # subject's group: the group of its first row in the caller's order
        sub_group = self._subject_first_group()
        ma, mb = self._mated[0], self._mated[1]
        return CellCounts(
            thresholds=th.copy(),
            false_matches=fm_cells.astype(np.int64),
            impostors=self.impostors,
            false_non_matches=fnm.astype(np.int64),
            mated=np.bincount(mg, minlength=g).astype(np.int64),
            subject_labels=self._subject_labels,
            subject_group=sub_group.astype(np.int64),
            subject_false_matches=sub_fm,
            subject_impostors=sub_imp,
            subject_false_non_matches=sub_fnm.astype(np.int64),
            subject_mated=np.bincount(msubj, minlength=n_subj).astype(np.int64),
            mated_cross_group=int(np.sum(geo.grp[ma] % base != geo.grp[mb] % base)),
            rescanned=rescanned,
        )

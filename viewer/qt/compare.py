"""Compare the open study with a prior of the same patient, side by side (issue 16).

View ▸ Compare with prior (Ctrl+P) is enabled when the scan holds another study of the
open study's patient. It lays the grid out as rows of pairs — the current view on the
left, the matching prior view (same body part, view position and laterality, else the
next one) on the right — with "CURRENT date" / "PRIOR date" at the top of each view and
the study dates in the corners. Zoom and pan are linked within each pair (relative to
each image's fitted size and centre, so different matrix sizes follow); window/level
stays per view. The prior's images are decoded in the window's worker pool; the
session's active study does not change (the AI result and report stay the current
study's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtWidgets import QInputDialog

from viewer.display import view_marks
from viewer.model import ImageRef, Study
from viewer.qt.image_view import ImageView
from viewer.qt.worker import QtExecutor
from viewer.session import Token, decode_view

log = logging.getLogger(__name__)


def _date(study: Study) -> str:
    d = study.date
    return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 and d.isdigit() else (d or "no date")


def _match_score(a: ImageRef, b: ImageRef) -> int:
    return (4 * (a.view_position == b.view_position and bool(a.view_position))
            + 2 * (a.laterality == b.laterality and bool(a.laterality))
            + (a.body_part == b.body_part and bool(a.body_part)))


def pair_views(current: list[ImageRef], prior: list[ImageRef]) -> list[tuple[int, int | None]]:
    """(current index, prior index or None): each current image with the best-matching
    unused prior image (view position, then laterality, then body part; ties in order)."""
    used: set[int] = set()
    pairs = []
    for i, ref in enumerate(current):
        best, score = None, -1
        for j, other in enumerate(prior):
            if j in used:
                continue
            s = _match_score(ref, other)
            if s > score:
                best, score = j, s
        if best is not None:
            used.add(best)
        pairs.append((i, best))
    return pairs


def link_geometry(src, dst) -> None:
    """Give ``dst`` the zoom (relative to its fitted zoom) and centre (relative to its
    size) of ``src``."""
    a, b = src.state, dst.state
    if a.zoom is None:
        b.zoom, b.center = None, None
    else:
        ssize = (float(src.width()), float(src.height()))
        dsize = (float(dst.width()), float(dst.height()))
        b.zoom = a.zoom / a.fit_zoom(ssize) * b.fit_zoom(dsize)
        cx, cy = a.center if a.center is not None else a.image_center
        (sw, sh), (dw, dh) = a.image_size, b.image_size
        b.center = ((cx + 0.5) / sw * dw - 0.5, (cy + 0.5) / sh * dh - 0.5)
    b._emit("geometry")


class CompareTools:
    """The comparison mode of a main window."""

    def __init__(self, window) -> None:
        self.win = window
        self.session = window.session
        self.executor = QtExecutor(window.pool)
        self.active = False
        self.prior: Study | None = None
        self.prior_views: list[ImageView] = []
        self.pairs: list[tuple[ImageView, ImageView]] = []
        self._generation = 0
        self._token: Token | None = None
        self._syncing = False
        self._saved_layout = None
        #: ``choose(priors) -> Study | None``; a dialog when there are several.
        self.choose: Callable[[list[Study]], Study | None] = self._dialog_choose
        self.act = window._action("Compare with &prior…", self._on_toggled, "Ctrl+P",
                                  checkable=True,
                                  tip="Show the open study and a prior of the same patient "
                                      "side by side")
        self.act.setEnabled(False)
        view_menu = next((m for m in window.menuBar().findChildren(type(window.recent_menu))
                          if m.title() == "&View"), None)
        if view_menu is not None:
            view_menu.insertAction(view_menu.actions()[0] if view_menu.actions() else None,
                                   self.act)
        ev = self.session.events
        ev.study_opened.connect(self._on_study_changed)
        ev.study_closed.connect(self._on_study_changed)
        ev.scan_finished.connect(lambda _r: self._update_enabled())

    # -- what can be compared -------------------------------------------------------
    def priors(self) -> list[Study]:
        """The other studies of the open study's patient, newest first."""
        study, patient = self.session.study, self.session.patient
        if study is None or patient is None:
            return []
        others = [s for s in patient.studies if s is not study and any(
            im.ok for im in s.images)]
        return sorted(others, key=lambda s: (s.date, s.time), reverse=True)

    def _update_enabled(self) -> None:
        self.act.setEnabled(bool(self.priors()))

    def _on_study_changed(self, *_args) -> None:
        # The window has replaced (and deleted) every view of the grid.
        if self.active:
            self._drop(delete=False)
            self.win.grid.layout_choice = self._saved_layout
            self.win.grid._relayout()
        self._update_enabled()

    def _dialog_choose(self, priors: list[Study]) -> Study | None:
        if len(priors) == 1:
            return priors[0]
        labels = [f"{_date(s)} — {s.description or s.uid}" for s in priors]
        text, ok = QInputDialog.getItem(self.win, "Compare with prior", "Prior study:",
                                        labels, 0, False)
        return priors[labels.index(text)] if ok else None

    # -- entering and leaving -------------------------------------------------------
    def _on_toggled(self, on: bool) -> None:
        if on and not self.active:
            priors = self.priors()
            prior = self.choose(priors) if priors else None
            if prior is None:
                self._set_checked(False)
                if not priors:
                    self.win.statusBar().showMessage(
                        "No prior: the open folders hold no other study of this patient", 5000)
                return
            self.compare(prior)
        elif not on and self.active:
            self.exit()

    def _set_checked(self, on: bool) -> None:
        self.act.blockSignals(True)
        self.act.setChecked(on)
        self.act.blockSignals(False)

    def compare(self, prior: Study) -> None:
        """Show the open study's views paired with ``prior``'s."""
        if self.active:
            self._drop(delete=True)
        win = self.win
        current = list(win._views)
        if not current:
            return
        self._generation += 1
        generation = self._generation
        self.prior = prior
        self._token = Token("prior")
        patient = self.session.patient
        self.prior_views = [ImageView(ref, prior, patient) for ref in prior.images]
        for v in self.prior_views:
            v.set_corner_text(win.act_corner.isChecked())
            v.cursor_moved.connect(win._on_cursor_moved)
            v.activated.connect(win.grid.set_active)
            v.maximise_requested.connect(win.grid.toggle_maximise)
            v.marks.banner = f"PRIOR {_date(prior)}"
            v.marks.set_list(self.session.reading.annotations(v.ref))
            self._decode(v)
        for v in current:
            v.marks.banner = f"CURRENT {_date(self.session.study)}"
            v.update()
        order: list[ImageView] = []
        self.pairs = []
        used = set()
        for i, j in pair_views([v.ref for v in current], [v.ref for v in self.prior_views]):
            order.append(current[i])
            if j is not None:
                order.append(self.prior_views[j])
                used.add(j)
                self.pairs.append((current[i], self.prior_views[j]))
        order += [v for k, v in enumerate(self.prior_views) if k not in used]
        for a, b in self.pairs:
            a.state.subscribe(lambda what, s=a, d=b, g=generation: self._follow(what, s, d, g))
            b.state.subscribe(lambda what, s=b, d=a, g=generation: self._follow(what, s, d, g))
        grid = win.grid
        self._saved_layout = grid.layout_choice
        grid.views = order
        grid.maximised = None
        grid.active = None
        rows = max(1, -(-len(order) // 2))
        grid.layout_choice = (rows, 2)
        grid._relayout()
        grid.set_active(current[0])
        self.active = True
        self._set_checked(True)
        win.statusBar().showMessage(
            f"Comparing with the prior of {_date(prior)}: zoom and pan linked per pair, "
            "window/level per view", 8000)

    def _decode(self, view: ImageView) -> None:
        token = self._token
        ref = view.ref
        if not ref.ok:
            view.set_error(ref.error or "cannot be read")
            return

        def job(tok, _progress):
            return None if tok.cancelled else decode_view(ref)

        job.__name__ = "decode_prior"

        def done(dv) -> None:
            if dv is None or token is not self._token:
                return
            view.set_pipeline(dv.decoded.stored, dv.pipeline, dv.decoded.warnings)
            view.set_view_marks(view_marks(ref, dv.decoded))
            partner = next((a for a, b in self.pairs if b is view), None)
            if partner is not None and partner.has_image:
                link_geometry(partner, view)

        self.executor.submit(job, token, on_result=done,
                             on_error=lambda e: view.set_error(str(e)), priority=1)

    def _follow(self, what: str, src, dst, generation: int) -> None:
        if (what != "geometry" or self._syncing or generation != self._generation
                or not self.active or not (src.has_image and dst.has_image)):
            return
        self._syncing = True
        try:
            link_geometry(src, dst)
        finally:
            self._syncing = False

    def exit(self) -> None:
        """Back to the open study's views alone."""
        if not self.active:
            return
        self._drop(delete=True)
        grid = self.win.grid
        grid.views = list(self.win._views)
        grid.maximised = None
        grid.active = None
        grid.layout_choice = self._saved_layout
        grid._relayout()
        grid.set_active(grid.views[0] if grid.views else None)

    def _drop(self, delete: bool) -> None:
        self._generation += 1
        if self._token is not None:
            self._token.cancel()
            self._token = None
        for v in self.win._views:
            v.marks.banner = ""
        for v in self.prior_views:
            v.marks.detach()
            if delete:
                v.setParent(None)
                v.deleteLater()
        self.prior_views, self.pairs, self.prior = [], [], None
        self.active = False
        self._set_checked(False)

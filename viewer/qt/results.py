"""The AI results panel: study score, label, threshold, body part and its source, each
view's probability, part override, the heatmap controls, and the reviewer's impression and
agreement with the AI (for the exported report)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inference.bodyparts import MURA_PARTS
from viewer.analysis import ViewRow, result_rows, scored_text
from viewer.overlay import COLORMAPS
from viewer.report import AGREE, AGREEMENTS, DISAGREE, NOT_REVIEWED

SOURCE_TEXT = {
    "tag": "DICOM tag",
    "path": "folder name",
    "router": "router model",
    "override": "reviewer override",
}


#: The panel's preferred width in average characters (~300 px at 9 pt), whatever it shows.
PANEL_CHARS = 42


#: What the heat maps and boxes are (tooltip of the Heatmaps box and the legend line).
HEATMAP_LEGEND = ("Heat map: where the model looked (class activation map), its strength "
                  "is the view's probability; not shown below the doubt threshold. Boxes: "
                  "solid = fracture, dotted = doubt. Not a diagnosis.")
#: Colour of each study flag (inference.aggregate.FLAGS).
FLAG_COLORS = {"positive": "#ff6b5a", "doubt": "#f0c040", "negative": "#6bd66b"}


class ResultsPanel(QWidget):
    analyze_requested = Signal()
    override_changed = Signal(object)  # part name or None (automatic)
    view_selected = Signal(int)  # row = view index
    view_overlay_toggled = Signal(int, bool)
    overlay_toggled = Signal(bool)
    opacity_changed = Signal(float)
    cmap_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.bundle_label = QLabel("AI: looking for model bundles…")
        self.bundle_label.setWordWrap(True)
        lay.addWidget(self.bundle_label)

        self.score_label = QLabel("—")
        font = self.score_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        self.score_label.setFont(font)
        score_row = QHBoxLayout()
        score_row.addWidget(self.score_label)
        self.scored_label = QLabel("")  # "2 of 3 views scored"
        self.scored_label.setAlignment(Qt.AlignmentFlag.AlignRight
                                       | Qt.AlignmentFlag.AlignVCenter)
        score_row.addWidget(self.scored_label, 1)
        lay.addLayout(score_row)

        form = QFormLayout()
        self.label_value = QLabel("—")
        self.label_value.setWordWrap(True)  # "not supported by this model: …" is long
        self.threshold_value = QLabel("—")
        # The model on its own row: "FRACTURE (model fracture-hand)" wrapped in the form
        # and its second line was clipped.
        self.model_value = QLabel("—")
        self.model_value.setWordWrap(True)
        self.part_value = QLabel("—")
        self.part_value.setWordWrap(True)
        form.addRow("Result", self.label_value)
        form.addRow("Threshold", self.threshold_value)
        form.addRow("Model", self.model_value)
        form.addRow("Body part", self.part_value)
        self.override_combo = QComboBox()
        self.override_combo.addItem("Automatic (tag → folder → router)", None)
        for part in MURA_PARTS:
            self.override_combo.addItem(part.capitalize(), part)
        self.override_combo.setToolTip("Override the body part; the study is re-scored")
        self.override_combo.activated.connect(
            lambda i: self.override_changed.emit(self.override_combo.itemData(i)))
        form.addRow("Override", self.override_combo)
        lay.addLayout(form)

        self.flags_label = QLabel("")
        self.flags_label.setWordWrap(True)
        self.flags_label.setStyleSheet("color: #f0a040;")
        lay.addWidget(self.flags_label)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["View", "Probability", "Heatmap"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellClicked.connect(lambda r, _c: self.view_selected.emit(r))
        self.table.itemChanged.connect(self._on_item_changed)
        lay.addWidget(self.table, 1)

        row = QHBoxLayout()
        self.analyze_button = QPushButton("Analyze")
        self.analyze_button.clicked.connect(self.analyze_requested)
        row.addWidget(self.analyze_button)
        self.overlay_box = QCheckBox("Heatmaps")
        self.overlay_box.setChecked(True)
        self.overlay_box.toggled.connect(self.overlay_toggled)
        self.overlay_box.setToolTip(HEATMAP_LEGEND)
        row.addWidget(self.overlay_box)
        row.addStretch(1)
        lay.addLayout(row)
        # Colormap beside the opacity: on one row with Analyze and Heatmaps it did not fit
        # the panel's width and the check box's text was cut.
        orow = QHBoxLayout()
        orow.addWidget(QLabel("Opacity"))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(45)
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100))
        orow.addWidget(self.opacity_slider, 1)
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(list(COLORMAPS))
        self.cmap_combo.currentTextChanged.connect(self.cmap_changed)
        self.cmap_combo.setToolTip("Heatmap colormap")
        orow.addWidget(self.cmap_combo)
        lay.addLayout(orow)
        self.legend_label = QLabel(f"<small>{HEATMAP_LEGEND}</small>")  # what the maps are
        self.legend_label.setWordWrap(True)
        lay.addWidget(self.legend_label)

        lay.addWidget(self._build_review())

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        lay.addWidget(self.status_label)
        note = QLabel("<i>Research use only — not for diagnosis.</i>")
        note.setWordWrap(True)
        lay.addWidget(note)
        # Wrapped text must not set the panel's width: a wrapped QLabel asks for up to 80
        # characters (~560 px), which widened the dock and shrank the image. These labels
        # take the width the panel has and grow in height.
        for label in (self.bundle_label, self.label_value, self.part_value, self.model_value,
                      self.flags_label, self.status_label, note, self.legend_label):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._filling = False
        self.rows: list[ViewRow] = []

    def sizeHint(self) -> QSize:  # the width does not follow the text shown
        hint = super().sizeHint()
        return QSize(self.fontMetrics().averageCharWidth() * PANEL_CHARS, hint.height())

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self.fontMetrics().averageCharWidth() * PANEL_CHARS),
                     hint.height())

    def _build_review(self) -> QGroupBox:
        """The "Reviewer" box: impression and agreement, both go into the report."""
        box = QGroupBox("Reviewer")
        lay = QVBoxLayout(box)
        self.impression_edit = QPlainTextEdit()
        self.impression_edit.setPlaceholderText("Impression (goes into the exported report)")
        self.impression_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 5)
        lay.addWidget(self.impression_edit)
        # Two columns: the three choices on one row were cut at the panel's width.
        row = QGridLayout()
        self.agreement_group = QButtonGroup(self)
        self.agreement_buttons: dict[str, QRadioButton] = {}
        for k, (value, text) in enumerate(((AGREE, "Agree"), (DISAGREE, "Disagree"),
                                           (NOT_REVIEWED, "Not reviewed"))):
            button = QRadioButton(text)
            button.setToolTip(f"Reviewer's assessment of the AI result: {text.lower()}")
            self.agreement_group.addButton(button)
            self.agreement_buttons[value] = button
            row.addWidget(button, k // 2, k % 2)
        self.agreement_buttons[NOT_REVIEWED].setChecked(True)
        lay.addLayout(row)
        return box

    @property
    def impression(self) -> str:
        """The reviewer's impression (free text)."""
        return self.impression_edit.toPlainText()

    @impression.setter
    def impression(self, text: str) -> None:
        self.impression_edit.setPlainText(text)

    @property
    def agreement(self) -> str:
        """``"agree"``, ``"disagree"`` or ``"not reviewed"`` (:data:`viewer.report.AGREEMENTS`)."""
        return next((v for v, b in self.agreement_buttons.items() if b.isChecked()),
                    NOT_REVIEWED)

    @agreement.setter
    def agreement(self, value: str) -> None:
        if value not in AGREEMENTS:
            raise ValueError(f"agreement must be one of {', '.join(AGREEMENTS)}, got {value!r}")
        self.agreement_buttons[value].setChecked(True)

    def reset_review(self) -> None:
        """Empty impression, "not reviewed" (a new study)."""
        self.impression_edit.clear()
        self.agreement_buttons[NOT_REVIEWED].setChecked(True)

    # -- updates ------------------------------------------------------------------------
    def set_bundle_text(self, text: str, ok: bool) -> None:
        self.bundle_label.setText(text)
        self.analyze_button.setEnabled(ok)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def clear(self, view_names: list[str] | None = None) -> None:
        self.score_label.setText("—")
        self.score_label.setStyleSheet("")
        for w in (self.label_value, self.threshold_value, self.part_value, self.model_value):
            w.setText("—")
        self.flags_label.setText("")
        self.scored_label.setText("")
        self._fill_rows([ViewRow(n, "", None, "", False) for n in (view_names or [])])

    def show_result(self, result, view_names: list[str], view_keys: list[str],
                    reasons: dict[str, str] | None = None) -> None:
        """Fill the panel from an ``inference.engine.StudyResult``.

        ``view_names``/``view_keys`` list *every* view of the study in grid order (rows
        follow them; :attr:`view_selected` and :attr:`view_overlay_toggled` give indexes
        into them); ``reasons`` maps the key of a view the model did not get to why
        (its scan or decode error). See :func:`viewer.analysis.result_rows`.
        """
        reasons = reasons or {}
        views = [(n, k, reasons.get(k)) for n, k in zip(view_names, view_keys, strict=True)]
        rows = result_rows(result, views)
        self.scored_label.setText(scored_text(rows))
        part = result.body_part or "unknown"
        src = SOURCE_TEXT.get(result.body_part_source or "", result.body_part_source or "")
        text = f"{part} ({src})" if src else part
        if getattr(result, "part_uncertain", False):
            # "?" marks the guess; the flag line below says "body part uncertain" with the
            # router's top parts ("…, uncertain)" wrapped here and its second line was
            # clipped by the form).
            text = f"{part}? ({src})" if src else f"{part}?"
        router_part = getattr(result, "router_part", None)
        if router_part and router_part != result.body_part:
            conf = getattr(result, "router_confidence", None)
            text += f"; router: {router_part}" + (f" {conf:.2f}" if conf is not None else "")
        self.part_value.setText(text)
        flags = list(result.flags)
        if not result.supported:
            # The short verdict in the form; the long reason (it lists what the bundle
            # covers) in the wrapped line below, where its height is honoured.
            self.score_label.setText("—")
            self.score_label.setStyleSheet("color: #b0b0b0;")
            self.label_value.setText("<b>Not supported</b>")
            self.threshold_value.setText("—")
            self.model_value.setText("—")
            flags = [result.reason or "not supported by this model", *flags]
        else:
            self.score_label.setText(f"{result.score:.2f}")
            # The study flag (FRACTURE / DOUBT / NO FRACTURE): any view above a threshold
            # flags the study, whatever the score (inference.aggregate).
            flag = getattr(result, "flag", None) or ("positive" if (
                result.score is not None and result.threshold is not None
                and result.score >= result.threshold) else "negative")
            color = FLAG_COLORS.get(flag, "#6bd66b")
            self.score_label.setStyleSheet(f"color: {color};")
            shown = getattr(result, "flag_text", None) or result.label
            self.label_value.setText(f"<b style='color:{color}'>{shown}</b>")
            self.model_value.setText(result.model or "—")
            doubt = getattr(result, "doubt_threshold", None)
            self.threshold_value.setText(f"{result.threshold:.2f}" + (
                f" (doubt {doubt:.2f})" if doubt is not None else ""))
        self.flags_label.setText("\n".join(f"⚠ {f}" for f in flags))
        self._fill_rows(rows, result.threshold)

    def _fill_rows(self, rows: list[ViewRow], threshold: float | None = None) -> None:
        """One table row per view: name, probability or "not scored: reason", and a
        Heatmap tick box only where the result has a map."""
        self._filling = True
        self.rows = list(rows)
        try:
            self.table.setRowCount(len(rows))
            for r, row in enumerate(rows):
                self.table.setItem(r, 0, QTableWidgetItem(row.name))
                prob = row.probability
                item = QTableWidgetItem(row.note or ("—" if prob is None else f"{prob:.3f}"))
                if row.note:
                    item.setToolTip(row.note)
                if prob is not None:
                    hot = threshold is not None and prob >= threshold
                    item.setForeground(QColor(255, 140, 120) if hot else QColor(150, 220, 150))
                self.table.setItem(r, 1, item)
                check = QTableWidgetItem("")
                if row.has_map:
                    check.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                    check.setCheckState(Qt.CheckState.Checked)
                else:
                    check.setFlags(Qt.ItemFlag.ItemIsEnabled)  # no map: nothing to tick
                self.table.setItem(r, 2, check)
            self.table.resizeColumnsToContents()
        finally:
            self._filling = False

    def heatmap_states(self) -> list[bool | None]:
        """Per row: True/False for a ticked/unticked Heatmap box, None where there is no
        map (no box)."""
        out: list[bool | None] = []
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 2)
            checkable = bool(item.flags() & Qt.ItemFlag.ItemIsUserCheckable)
            out.append(item.checkState() == Qt.CheckState.Checked if checkable else None)
        return out

    def probability_texts(self) -> list[str]:
        return [self.table.item(r, 1).text() for r in range(self.table.rowCount())]

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 2:
            return
        self.view_overlay_toggled.emit(item.row(),
                                       item.checkState() == Qt.CheckState.Checked)

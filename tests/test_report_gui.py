"""The report from the GUI (pytest-qt, offscreen): the reviewer's section, File → Export
report…, and :meth:`MainWindow.export_report`."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_gui
import test_gui_ai
from PySide6.QtGui import QKeySequence
from test_gui import open_and_wait, write_gradient
from test_gui_ai import _open_and_score
from test_report import pdf_bytes_text, pdf_text

from viewer.report import AGREE, DISAGREE, NOT_REVIEWED, ReportError

# The GUI suites' fixtures: a main window, and one with a tiny bundle and a hand study.
window = test_gui.window
ai_window, bundle_dir, hand_study = test_gui_ai.ai_window, test_gui_ai.bundle_dir, (
    test_gui_ai.hand_study)


def test_export_has_the_impression_disagreement_and_ai_result(qtbot, ai_window, hand_study,
                                                              tmp_path):
    # The reviewer types an impression, disagrees, exports: all of it is in the PDF, with
    # the AI result the window shows and the view as displayed (rotated).
    result = _open_and_score(qtbot, ai_window, hand_study)
    assert result is not None and result.supported
    ai_window.results.impression_edit.setPlainText("Soft tissue swelling only.\nNo fracture.")
    ai_window.results.agreement_buttons[DISAGREE].click()
    assert ai_window.results.agreement == DISAGREE
    ai_window.grid.views[0].state.rotate(90)
    path = ai_window.export_report(tmp_path / "gui.pdf")
    assert path == tmp_path / "gui.pdf" and path.is_file()
    text = " ".join(pdf_text(path).split())
    assert "Soft tissue swelling only. No fracture." in text
    assert "Disagree with the AI result" in text and "disagree" in text.lower()
    assert f"{result.score:.3f}" in text and (result.label or "").upper() in text
    assert "TEST, GUI" in text and "GUI-1" in text  # identity (not de-identified)
    assert "rotated 90° clockwise" in text
    assert "test-bundle 0.0.1" in text
    assert "Grad-CAM heat map" in text


def test_deidentified_export_from_the_gui(qtbot, ai_window, hand_study, tmp_path):
    _open_and_score(qtbot, ai_window, hand_study)
    ai_window.results.impression = "Patient TEST GUI seen."
    path = ai_window.export_report(tmp_path / "anon.pdf", deidentify=True)
    text, raw = pdf_text(path).lower(), pdf_bytes_text(path).lower()
    for item in ("TEST^GUI", "TEST, GUI", "TEST GUI", "GUI-1", "im1.dcm", "im2.dcm"):
        assert item.lower() not in text, item
        assert item.lower() not in raw, item


def test_file_menu_has_export_report_with_its_shortcut(window):
    act = window.act_export_report
    assert act.shortcut() == QKeySequence("Ctrl+Shift+E")
    file_menu = window.menuBar().actions()[0].menu()
    assert act in file_menu.actions()
    assert ("Export report…", "Ctrl+Shift+E") in [
        (name, seq.replace("Shift+Ctrl", "Ctrl+Shift")) for name, seq in window.shortcut_rows()]


def test_export_without_a_study_says_why(window, tmp_path):
    window.act_export_report.trigger()
    assert "Open a study" in window.statusBar().currentMessage()
    with pytest.raises(ReportError, match="no study is open"):
        window.export_report(tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists()


def test_dialog_proposes_a_name_that_follows_deidentify_and_writes(qtbot, window, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    write_gradient(folder / "a.dcm", 1)
    open_and_wait(qtbot, window, [folder])
    window.settings.setValue("report/folder", str(tmp_path))
    window.act_export_report.trigger()
    dlg = window.report_dialog
    assert Path(dlg.path_edit.text()) == tmp_path / "radview_GUI-1_20240102.pdf"
    dlg.deidentify_box.setChecked(True)
    assert Path(dlg.path_edit.text()) == tmp_path / "radview_report_20240102.pdf"
    dlg.deidentify_box.setChecked(False)
    assert Path(dlg.path_edit.text()).name == "radview_GUI-1_20240102.pdf"
    dlg.deidentify_box.setChecked(True)
    dlg.export()
    written = tmp_path / "radview_report_20240102.pdf"
    assert written.is_file() and "GUI-1" not in pdf_text(written)
    assert "Report written" in window.statusBar().currentMessage()
    assert not dlg.isVisible()


def test_dialog_shows_an_unwritable_target_and_stays_open(qtbot, window, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    write_gradient(folder / "a.dcm", 1)
    open_and_wait(qtbot, window, [folder])
    window.act_export_report.trigger()
    dlg = window.report_dialog
    dlg.path_edit.setText(str(tmp_path / "no" / "such" / "folder" / "r.pdf"))
    dlg.export()
    assert "the folder does not exist" in dlg.error_label.text()
    assert "Report not written" in window.statusBar().currentMessage()
    assert dlg.isVisible()
    assert not (tmp_path / "no").exists()
    dlg.reject()


def test_reviewer_section_is_reset_for_a_new_study(qtbot, window, tmp_path):
    panel = window.results
    assert panel.agreement == NOT_REVIEWED and panel.impression == ""
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    write_gradient(first / "a.dcm", 1)
    write_gradient(second / "b.dcm", 1, study_uid="1.2.826.0.1.3680043.8.498.4242")
    open_and_wait(qtbot, window, [first])
    panel.impression = "For study one"
    panel.agreement = AGREE
    assert panel.agreement_buttons[AGREE].isChecked()
    open_and_wait(qtbot, window, [second])
    assert panel.agreement == NOT_REVIEWED and panel.impression == ""
    with pytest.raises(ValueError, match="agreement must be one of"):
        panel.agreement = "perhaps"

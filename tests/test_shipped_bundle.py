"""The default bundle in resources/models and the demo it powers (issue: out of the box).

These use the real shipped weights (trained on FracAtlas with `radview train`), so they
check what a new user sees: a loadable bundle, sensible routing of the sample studies, and
the demo scored at start.
"""

from __future__ import annotations

import json
from pathlib import Path

from viewer import cli

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "resources" / "samples"


def test_bundle_is_complete_small_and_credited(shipped_bundle):
    from inference.bundle import Bundle

    bundle = Bundle.load(shipped_bundle.path)
    m = bundle.manifest
    # A router with an OTHER class, so leg/hip/chest films come back "not supported".
    assert m.router is not None and "OTHER" in m.router.class_names
    # Every upper-limb part the router can name has a fracture model.
    assert {"HAND", "WRIST", "FOREARM", "ELBOW", "HUMERUS", "SHOULDER"} <= set(m.routing)
    size = sum(f.stat().st_size for f in bundle.path.glob("*.safetensors"))
    assert size <= 60 * 2**20, f"weights {size / 2**20:.1f} MB > 60 MB"
    card = (bundle.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in ("FracAtlas", "CC BY 4.0", "Research use only", "radview train",
                   "FINGER"):
        assert needle.lower() in card.lower(), needle


def test_predict_on_the_samples(shipped_bundle, capsys):
    # The hand study is scored; the knee film is "not supported" (no score).
    rc = cli.main(["predict", str(SAMPLES), "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    by_folder = {Path(st["images"][0]["path"]).parent.name: st for st in out["studies"]}
    hand = by_folder["upper_limb_dicom"]
    assert hand["supported"] and hand["body_part"] == "HAND"
    assert hand["body_part_source"] == "tag"
    # The demo study is a fracture (FracAtlas, two views with a fracture, see
    # resources/samples/README.md): the shipped model must say so, not just say something.
    assert 0.0 <= hand["score"] <= 1.0
    assert hand["label"] == "fracture", hand
    # ... and say where: on both views the best box is a solid "fracture" box whose centre
    # lies in FracAtlas's own fracture box (IMG0003396/7, 373 × 454 px: x 0.490–0.593,
    # y 0.317–0.368 of the film, fracture_boxes.csv).
    for im in hand["images"]:
        top = im["boxes"][0]
        cx, cy = (top["x0"] + top["x1"]) / 2 / 373, (top["y0"] + top["y1"]) / 2 / 454
        assert top["level"] == "fracture", im["boxes"]
        assert 0.490 <= cx <= 0.593 and 0.317 <= cy <= 0.368, (cx, cy)
    knee = by_folder["out_of_scope_images"]
    assert not knee["supported"] and knee["score"] is None
    assert "not supported" in knee["reason"]


def test_demo_opens_scored(qtbot, shipped_bundle, tmp_path):
    # `radview --demo` / no path: the sample study opens and the AI runs at once.
    from PySide6.QtCore import QSettings

    from viewer import paths
    from viewer.qt.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.ai_finished, timeout=120000) as sig:
        win.open_paths([str(paths.sample_study())])
    result = sig.args[0]
    assert result is not None and result.supported and result.body_part == "HAND"
    assert all(v.cam is not None for v in win.grid.views)
    # The boxes reach the views (they once stopped at the engine's result).
    assert all(v.boxes and v.boxes[0]["level"] == "fracture" for v in win.grid.views)
    win.close()

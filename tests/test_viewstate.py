"""Geometry of a view (Qt-free): fit, zoom about a point, pan, rotate, flip."""

from __future__ import annotations

import math

import pytest

from viewer.viewstate import MAX_ZOOM, ViewState, zoom_step

WIDGET = (400.0, 300.0)


def _state(w=200, h=100) -> ViewState:
    s = ViewState()
    s.image_size = (w, h)
    return s


def test_fit_uses_the_limiting_side():
    # 200×100 image in a 400×300 widget: width limits → 2 screen px per image px.
    assert _state().fit_zoom(WIDGET) == pytest.approx(2.0)


def test_fit_after_quarter_rotation_swaps_sides():
    # Rotated 90°, the image is 100 wide and 200 tall → height limits: 300/200.
    s = _state()
    s.rotate(90)
    assert s.fit_zoom(WIDGET) == pytest.approx(1.5)


def test_image_centre_maps_to_widget_centre():
    s = _state()
    assert s.to_widget(s.image_center, WIDGET) == pytest.approx((200.0, 150.0))


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("flip_h", [False, True])
def test_to_image_inverts_to_widget(rotation, flip_h):
    # Every orientation must round-trip, or cursor readouts point at the wrong pixel.
    s = _state()
    s.rotate(rotation)
    if flip_h:
        s.flip(True)
    for q in [(0.0, 0.0), (199.0, 99.0), (37.0, 80.0)]:
        assert s.to_image(s.to_widget(q, WIDGET), WIDGET) == pytest.approx(q)


def test_rotate_clockwise_moves_top_left_to_top_right():
    # On screen, 90° clockwise takes the image's top-left corner to the top-right.
    s = _state(100, 100)
    s.rotate(90)
    x, y = s.to_widget((0.0, 0.0), WIDGET)
    assert x > 200 and y < 150


def test_flip_horizontal_mirrors_left_and_right():
    s = _state()
    left_before = s.to_widget((0.0, 50.0), WIDGET)[0]
    s.flip(True)
    assert s.to_widget((0.0, 50.0), WIDGET)[0] > 200 > left_before


def test_screen_flip_after_rotation_stays_a_screen_flip():
    # After a 90° rotation "flip horizontal" must still mirror left↔right on screen.
    s = _state(100, 100)
    s.rotate(90)
    before = s.to_widget((10.0, 20.0), WIDGET)
    s.flip(True)
    after = s.to_widget((10.0, 20.0), WIDGET)
    assert after[0] == pytest.approx(400 - before[0]) and after[1] == pytest.approx(before[1])


def test_zoom_about_cursor_keeps_the_point_under_it():
    s = _state()
    anchor = (300.0, 60.0)
    q = s.to_image(anchor, WIDGET)
    s.zoom_about(2.0, anchor, WIDGET)
    assert s.effective_zoom(WIDGET) == pytest.approx(4.0)
    assert s.to_image(anchor, WIDGET) == pytest.approx(q)


def test_zoom_is_clamped():
    s = _state()
    for _ in range(50):
        s.zoom_about(2.0, (0.0, 0.0), WIDGET)
    assert s.zoom == MAX_ZOOM


def test_pan_moves_the_image_with_the_mouse():
    s = _state()
    before = s.to_widget((50.0, 50.0), WIDGET)
    s.pan(30.0, -10.0, WIDGET)
    after = s.to_widget((50.0, 50.0), WIDGET)
    assert (after[0] - before[0], after[1] - before[1]) == pytest.approx((30.0, -10.0))


def test_reset_restores_defaults_and_notifies():
    s = _state()
    seen = []
    s.subscribe(seen.append)
    s.rotate(90)
    s.flip(False)
    s.set_invert(True)
    s.zoom_about(3.0, (10.0, 10.0), WIDGET)
    s.reset()
    assert (s.rotation, s.flip_h, s.flip_v, s.invert, s.zoom, s.center) == (
        0, False, False, False, None, None)
    assert "voi" in seen and "geometry" in seen


def test_rotation_must_be_quarter_turns():
    with pytest.raises(ValueError, match="multiple of 90"):
        _state().rotate(45)


def test_one_wheel_notch_zooms_by_a_fourth_octave():
    assert zoom_step(15.0) == pytest.approx(math.pow(2, 0.25))
    assert zoom_step(-15.0) * zoom_step(15.0) == pytest.approx(1.0)

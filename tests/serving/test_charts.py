"""The page's charts: bars as long as the scores, curves inside their plot."""

from __future__ import annotations

from label_studio_yolo.serving.charts import BAR_WIDTH, CURVE_SIZE, ROW_HEIGHT, score_bars, training_curve
from label_studio_yolo.serving.page_data import LabelRow


def test_each_label_gets_a_served_and_a_new_bar_as_long_as_its_score() -> None:
    bars = score_bars([LabelRow("Person", 5, 0.9, 0.45, "dropped"), LabelRow("Cup", 3, None, 1.2, "new label")])
    person, cup = bars.rows
    assert (person.old_width, person.new_width) == (0.9 * BAR_WIDTH, 0.45 * BAR_WIDTH)
    assert cup.old_width is None, "the served model cannot predict a new label"
    assert cup.new_width == BAR_WIDTH, "clamped to the chart"
    assert (person.y, cup.y, bars.height) == (0, ROW_HEIGHT, 2 * ROW_HEIGHT)


def test_losses_are_drawn_per_epoch_inside_the_plot_and_one_epoch_draws_nothing() -> None:
    curve = training_curve({"box_loss": [2.0, 1.5, 1.0], "cls_loss": [4.0, 2.0, 1.0]})
    assert curve is not None and curve.epochs == 3
    width, height = CURVE_SIZE
    for line in curve.curves:
        points = [tuple(float(v) for v in point.split(",")) for point in line.points.split()]
        assert [x for x, _ in points] == [0.0, width / 2, width]
        assert all(0 <= y <= height for _, y in points)
        assert points[0][1] < points[-1][1], "a falling loss goes down the picture (SVG's y grows downwards)"
    assert training_curve({"box_loss": [1.0]}) is None

"""How long a job trains and what it keeps frozen, from the data's size and the model."""

from __future__ import annotations

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.recipe import MAX_EPOCHS, MIN_EPOCHS, TARGET_STEPS, recipe_for


def test_few_images_train_enough_optimizer_steps_and_many_images_at_least_a_few_epochs() -> None:
    settings = BackendSettings(train_batch=4)
    few = recipe_for(settings, train_images=15, layers_before_head_inputs=15)
    assert (few.epochs, few.batch) == (20, 4)
    assert few.train_arguments()["nbs"] == 4, "every batch is an optimizer step"
    assert few.epochs * 4 >= TARGET_STEPS
    assert recipe_for(settings, train_images=2000, layers_before_head_inputs=15).epochs == MIN_EPOCHS
    assert recipe_for(settings, train_images=1, layers_before_head_inputs=15).epochs == MAX_EPOCHS


def test_a_batch_never_exceeds_the_images_and_settings_override_the_rules() -> None:
    tiny = recipe_for(BackendSettings(train_batch=8), train_images=3, layers_before_head_inputs=16)
    assert (tiny.batch, tiny.freeze) == (3, 16)
    chosen = recipe_for(BackendSettings(train_epochs=7, train_freeze=0), train_images=15, layers_before_head_inputs=16)
    assert (chosen.epochs, chosen.freeze) == (7, 0)
    assert chosen.train_arguments()["val"] is False, "the gate scores the version; no per-epoch validation"
    assert chosen.train_arguments()["save"] is False, "and one checkpoint is written, the last epoch's"


def test_a_job_trains_at_the_size_its_starting_weights_know_unless_told() -> None:
    # A people model trained at 256 px, fine-tuned at the old default of 640, served the version at 640 and lost
    # Person (0.876 -> 0.38 held-out); at 256 it kept it (0.874).
    assert recipe_for(BackendSettings(), 15, 15, start_imgsz=256).imgsz == 256
    assert recipe_for(BackendSettings(), 15, 15, start_imgsz=None).imgsz == 640, "weights that do not say"
    assert recipe_for(BackendSettings(train_imgsz=320), 15, 15, start_imgsz=256).imgsz == 320

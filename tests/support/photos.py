"""Photographic scenes with known truth: real objects cut from photos and pasted on real backgrounds.

Coloured rectangles (:mod:`tests.support.synthetic`) prove plumbing; what a fine-tuned model learns or forgets needs
photographic content. The photos ship with installed packages (scikit-image's ``skimage/data`` and ultralytics'
``assets``): nothing is copied into the repository or downloaded. A scene pastes one cut-out :data:`PIECES` object
per requested label onto a random crop of a :data:`BACKGROUNDS` photo, at a random scale and place, so its truth is
exactly where the pieces landed.

The people model (:func:`train_people_model`) is a small base "pretrained on something else": a yolov8n trained
from scratch here on scenes of :data:`PIECES` people only. It has never seen a cup or a cat, so tests can fine-tune
it on those and measure what it learns and what it forgets. It is shipped in :data:`SHIPPED_MODELS`; regenerate it
with ``python -m tests.support.photos``.

Example:
    >>> image, truth = compose_scene(random.Random(0), SCENE_SIZE, ["person", "cup"])
    >>> sorted(box.label for box in truth)
    ['cup', 'person']
"""

from __future__ import annotations

import importlib.util
import os
import random
import resource
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from filelock import FileLock
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from label_studio_yolo.tags.base import LabelledObject
from tests.support.synthetic import SHIPPED_MODELS, GroundTruthBox

TruthBox = GroundTruthBox
"""A pasted object's label and pixel box in its scene (the same type as the synthetic images' truth)."""

ScoredBox = tuple[str, float, float, float, float, float]
"""(label, score, x0, y0, x1, y1), as ``label_studio_yolo.training.evaluate`` scores them."""

SCENE_SIZE: tuple[int, int] = (256, 192)
"""Width and height of the people model's scenes (not square on purpose: percent coordinates must use both)."""

PEOPLE_IMGSZ = 256
"""Image size the people model is trained and served at."""

FEATHER_PX = 4
"""Width in pixels of a pasted piece's soft edge, so the patch border is not a hard cue for the detector."""

MAX_IOU = 0.1
"""Pasted objects overlap each other by less than this IoU."""


@dataclass(frozen=True)
class Piece:
    """A real object in a photo of an installed package: its label and its pixel box there (x1, y1 exclusive)."""

    label: str
    package: str
    file: str
    box: tuple[int, int, int, int]

    def image(self) -> Image.Image:
        """The cut-out, in RGB."""
        return _load(self.package, self.file).crop(self.box)


# Boxes measured by eye on grid overlays of each photo; each crop holds one object and little else.
PIECES: tuple[Piece, ...] = (
    # ultralytics/assets/bus.jpg (810x1080): the two people in front of the bus. The two others are cut in half
    # by the frame's left and right edges and are left out.
    Piece("person", "ultralytics", "assets/bus.jpg", (50, 398, 245, 903)),  # fleece coat, head to shoes
    Piece("person", "ultralytics", "assets/bus.jpg", (222, 405, 345, 860)),  # black coat, sunglasses, head to shoes
    # ultralytics/assets/zidane.jpg (1280x720): two men from the waist up. Zidane's pointing arm crosses Ancelotti,
    # so his crop ends where Ancelotti begins, and Ancelotti's crop holds Zidane's hand.
    Piece("person", "ultralytics", "assets/zidane.jpg", (128, 200, 745, 720)),  # Zidane, shouting
    Piece("person", "ultralytics", "assets/zidane.jpg", (750, 42, 1135, 720)),  # Ancelotti
    # skimage/data/astronaut.png (512x512): Eileen Collins from the waist up, and part of the helmet she holds.
    Piece("person", "skimage", "data/astronaut.png", (22, 15, 368, 512)),
    # skimage/data/camera.png (512x512, grayscale): the cameraman from the knees up, with his camera.
    Piece("person", "skimage", "data/camera.png", (0, 62, 332, 512)),
    # skimage/data/coffee.png (600x400): an espresso cup on its saucer, with the spoon.
    Piece("cup", "skimage", "data/coffee.png", (74, 17, 480, 393)),
    # skimage/data/chelsea.png (451x300): Chelsea the cat's head (the frame cuts its ears and chin).
    Piece("cat", "skimage", "data/chelsea.png", (0, 0, 362, 300)),
)
"""The objects a scene can hold, with the label its truth gives them."""

DISTRACTORS: tuple[Piece, ...] = (
    Piece("motorcycle", "skimage", "data/motorcycle_left.png", (90, 95, 690, 452)),
    Piece("rocket", "skimage", "data/rocket.jpg", (283, 122, 347, 410)),  # a rocket on its launch pad
    Piece("shuttle", "skimage", "data/astronaut.png", (365, 0, 460, 270)),  # the space shuttle model behind her
    Piece("bus", "ultralytics", "assets/bus.jpg", (345, 228, 665, 690)),  # the bus's side, between the people
    Piece("horse", "skimage", "data/horse.png", (0, 0, 400, 328)),  # a black silhouette on white
)
"""Objects pasted like :data:`PIECES` but never labelled: the people model learns that a pasted patch is not
always a person. No people, cups or cats: the base model must never have seen a cup or a cat, even as background."""

BACKGROUNDS: tuple[tuple[str, str, tuple[int, int, int, int] | None], ...] = (
    ("skimage", "data/grass.png", None),  # grayscale textures: tinted at random
    ("skimage", "data/gravel.png", None),
    ("skimage", "data/brick.png", None),
    ("skimage", "data/motorcycle_left.png", None),  # a garage
    ("skimage", "data/rocket.jpg", None),  # launch towers at dusk
    ("skimage", "data/hubble_deep_field.jpg", None),  # galaxies on black
    ("ultralytics", "assets/bus.jpg", (0, 0, 810, 390)),  # the building above the people's heads
)
"""Photos (package, file, area or None for all of it) whose random crops are scene backgrounds; none holds a
person, cup or cat."""


@dataclass(frozen=True)
class Scene:
    """A composed scene on disk and its truth."""

    path: Path
    truth: list[TruthBox]

    def truth_objects(self, labels: Mapping[str, str] | None = None) -> list[LabelledObject]:
        """The truth as ``label_studio_yolo.training.evaluate`` takes it (``labels`` renames classes to labels)."""
        named = labels or {}
        return [LabelledObject(named.get(b.label, b.label), (b.x0, b.y0, b.x1, b.y1)) for b in self.truth]


def _package_file(package: str, file: str) -> Path:
    """A data file of an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {package} is not installed (scikit-image is in requirements-test.txt)")
    return Path(spec.origin).parent / file


@cache
def _load(package: str, file: str) -> Image.Image:
    """A package photo in RGB (transparent parts on white), loaded once."""
    with Image.open(_package_file(package, file)) as image:
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _jitter(image: Image.Image, rng: random.Random) -> Image.Image:
    """A random horizontal flip and brightness and contrast change."""
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))


def background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A random crop of a :data:`BACKGROUNDS` photo with the aspect of ``size``, resized to it and jittered."""
    package, file, area = rng.choice(BACKGROUNDS)
    photo = _load(package, file)
    if area is not None:
        photo = photo.crop(area)
    # The largest crop of the scene's aspect, then 35-100% of it: coarse texture sometimes, fine texture others.
    scale = rng.uniform(0.35, 1.0) * min(photo.width / size[0], photo.height / size[1])
    w, h = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    x0, y0 = rng.randint(0, photo.width - w), rng.randint(0, photo.height - h)
    image = photo.crop((x0, y0, x0 + w, y0 + h)).resize(size, Image.Resampling.BILINEAR)
    if len({band.tobytes() for band in image.split()}) == 1:  # a grayscale texture: tint it, grass is not always grey
        tint = Image.new("RGB", size, tuple(rng.randint(150, 255) for _ in range(3)))
        image = Image.blend(image, Image.composite(tint, image, image.convert("L")), 0.5)
    return _jitter(image, rng)


def _feathered_mask(size: tuple[int, int]) -> Image.Image:
    """An alpha mask of ``size``: opaque inside, fading to transparent over the outer :data:`FEATHER_PX` pixels."""
    mask = Image.new("L", size, 0)
    inset = FEATHER_PX // 2
    ImageDraw.Draw(mask).rectangle((inset, inset, size[0] - 1 - inset, size[1] - 1 - inset), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(FEATHER_PX / 2))


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two pixel boxes."""
    return TruthBox("", *a).iou(*b)


def _place(
    rng: random.Random, size: tuple[int, int], aspect: float, placed: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int]:
    """A box of width/height ``aspect`` at a random scale and place that overlaps no ``placed`` box much.

    The height is 25-70% of the scene's; after every 30 failed tries the largest height allowed shrinks by a
    tenth, so crowded scenes still fit (down to 10% of the scene's height).
    """
    width, height = size
    top = 0.7
    for attempt in range(1000):
        if attempt and attempt % 30 == 0:
            top = max(0.1, top * 0.9)
        h = round(height * rng.uniform(min(0.25, top), top))
        w = round(h * aspect)
        if w > width * 0.9:  # a wide piece: as wide as fits, keeping its aspect
            w = round(width * 0.9)
            h = round(w / aspect)
        x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
        box = (x0, y0, x0 + w, y0 + h)
        if all(_iou(box, other) < MAX_IOU for other in placed):
            return box
    raise RuntimeError(f"no room for another object in a {width}x{height} scene with {len(placed)} objects")


def _paste(scene: Image.Image, piece: Piece, box: tuple[int, int, int, int], rng: random.Random) -> None:
    """Paste ``piece``, jittered and resized to ``box``, with a feathered edge."""
    size = (box[2] - box[0], box[3] - box[1])
    cut = _jitter(piece.image(), rng).resize(size, Image.Resampling.LANCZOS)
    scene.paste(cut, box[:2], _feathered_mask(size))


def _pick(rng: random.Random, pool: Sequence[Piece], used: list[Piece]) -> Piece:
    """A random piece of ``pool``, one not ``used`` yet in the scene where there is one."""
    fresh = [piece for piece in pool if piece not in used]
    return rng.choice(fresh or list(pool))


def compose_scene(
    rng: random.Random, size: tuple[int, int], labels: Sequence[str], distractors: int = 0
) -> tuple[Image.Image, list[TruthBox]]:
    """A scene of ``size`` with one :data:`PIECES` object per label of ``labels`` (in order), and its truth.

    Each object gets a random piece of its label (a different one per repeated label while there are some), a
    height of 25-70% of the scene's (aspect kept), a random place overlapping no other object by
    :data:`MAX_IOU` or more, a random flip, brightness and contrast, and a feathered edge. ``distractors``
    unlabelled :data:`DISTRACTORS` are pasted first, the same way. Deterministic for ``rng``'s state.
    """
    known = {piece.label for piece in PIECES}
    if unknown := set(labels) - known:
        raise ValueError(f"no pieces of {sorted(unknown)}: known labels are {sorted(known)}")
    scene = background(rng, size)
    placed: list[tuple[int, int, int, int]] = []
    used: list[Piece] = []
    for _ in range(distractors):
        piece = _pick(rng, DISTRACTORS, used)
        placed.append(_place(rng, size, _aspect(piece), placed))
        used.append(piece)
        _paste(scene, piece, placed[-1], rng)
    truth = []
    for label in labels:
        piece = _pick(rng, [p for p in PIECES if p.label == label], used)
        placed.append(_place(rng, size, _aspect(piece), placed))
        used.append(piece)
        _paste(scene, piece, placed[-1], rng)
        truth.append(TruthBox(label, *placed[-1]))
    return scene, truth


def _aspect(piece: Piece) -> float:
    """Width over height of a piece's box."""
    x0, y0, x1, y1 = piece.box
    return (x1 - x0) / (y1 - y0)


def write_scenes(
    folder: Path,
    count: int,
    seed: int,
    size: tuple[int, int] = SCENE_SIZE,
    label_sets: Sequence[Sequence[str]] = (("person",),),
    distractors: int = 0,
    prefix: str = "scene",
) -> list[Scene]:
    """Write ``count`` scenes as ``<prefix><n>.png`` in ``folder`` and return them with their truth.

    Scene ``n`` holds the labels of ``label_sets[n % len(label_sets)]`` and 0 to ``distractors`` distractors.
    Deterministic for ``seed``: use seeds other than :data:`PEOPLE_SEEDS` for scenes the people model is tested on.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    scenes = []
    for index in range(count):
        image, truth = compose_scene(rng, size, label_sets[index % len(label_sets)], rng.randint(0, distractors))
        path = folder / f"{prefix}{index:04d}.png"
        image.save(path)
        scenes.append(Scene(path, truth))
    return scenes


PEOPLE_RECIPE_VERSION = 1
"""Bump when the people model's scenes or training change (and retrain: ``python -m tests.support.photos``)."""

PEOPLE_EPOCHS = 20
"""Epochs the people model trains for."""

PEOPLE_SEEDS = {"train": 0, "val": 1}
"""Scene seeds of the people model's training and validation sets; tests must compose theirs with other seeds."""

PEOPLE_SCENES = {"train": 400, "val": 40}
"""Scenes in the people model's training and validation sets."""

PEOPLE_LABEL_SETS: tuple[tuple[str, ...], ...] = (
    ("person",),
    ("person", "person"),
    ("person", "person", "person"),
    ("person",),
    ("person", "person"),
    (),
)
"""What the people model's scenes hold: 1-3 people, and none in one scene of six (besides distractors)."""

PEOPLE_MODEL = SHIPPED_MODELS / f"people-v{PEOPLE_RECIPE_VERSION}-{PEOPLE_EPOCHS}ep.pt"
"""The shipped people model, trained by :func:`train_people_model`'s recipe."""


def write_people_dataset(root: Path) -> Path:
    """Write the people model's dataset (scenes, YOLO labels, data.yaml) under ``root``; returns the yaml."""
    width, height = SCENE_SIZE
    for split, seed in PEOPLE_SEEDS.items():
        scenes = write_scenes(root / "images" / split, PEOPLE_SCENES[split], seed, SCENE_SIZE, PEOPLE_LABEL_SETS, 2)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for scene in scenes:
            lines = [
                f"0 {(b.x0 + b.x1) / 2 / width:.6f} {(b.y0 + b.y1) / 2 / height:.6f} "
                f"{(b.x1 - b.x0) / width:.6f} {(b.y1 - b.y0) / height:.6f}"
                for b in scene.truth
            ]
            (root / "labels" / split / f"{scene.path.stem}.txt").write_text("".join(line + "\n" for line in lines))
    data_yaml = root / "data.yaml"
    data_yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: person\n")
    return data_yaml


def train_people_model(cache_dir: Path, epochs: int = PEOPLE_EPOCHS) -> Path:
    """The people model's ``.pt``: :data:`PEOPLE_MODEL` when shipped, else trained into (or reused from) ``cache_dir``.

    A yolov8n trained from scratch (no pretrained weights exist here) on :data:`PEOPLE_SCENES` scenes of one to
    three people. Safe to call from several processes at once: one trains under a file lock, the others wait.
    """
    name = f"people-v{PEOPLE_RECIPE_VERSION}-{epochs}ep.pt"
    if (SHIPPED_MODELS / name).is_file():
        return SHIPPED_MODELS / name
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / name
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            with tempfile.TemporaryDirectory(dir=cache_dir) as work:
                os.replace(_train_people(Path(work).resolve(), epochs), target)
    return target


def _train_people(work: Path, epochs: int) -> Path:
    """Train in ``work`` and return the best weights' path there (ultralytics strips their optimizer)."""
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    # select_device() drops torch to cpu_count - 1 threads (1 on a 2-core CI machine): train on every core.
    torch_utils.NUM_THREADS = max(1, os.cpu_count() or 1)
    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(write_people_dataset(work / "dataset")),
        epochs=epochs,
        imgsz=PEOPLE_IMGSZ,
        batch=16,
        workers=0,
        amp=False,
        device="cpu",
        project=str(work / "runs"),
        name="train",
        exist_ok=True,
        plots=False,
        verbose=False,
        seed=0,
        deterministic=True,
        close_mosaic=5,  # whole scenes for the last epochs, as the model will be served
        val=False,  # validating every epoch costs time; the last epoch is validated and is the best
    )
    return work / "runs" / "train" / "weights" / "best.pt"


def predict(
    model: Path, scenes: Sequence[Scene], imgsz: int = PEOPLE_IMGSZ, conf: float = 0.001
) -> list[list[ScoredBox]]:
    """Every scene's boxes as ``model`` finds them, by class name, at ``conf`` and above."""
    from ultralytics import YOLO

    yolo = YOLO(str(model), task="detect")
    found = []
    for scene in scenes:
        result = yolo.predict(str(scene.path), imgsz=imgsz, conf=conf, device="cpu", verbose=False)[0]
        assert result.boxes is not None
        found.append(
            [
                (result.names[int(c)], float(s), *(float(v) for v in xyxy))
                for c, s, xyxy in zip(result.boxes.cls, result.boxes.conf, result.boxes.xyxy, strict=True)
            ]
        )
    return found


def ap50(model: Path, scenes: Sequence[Scene], label: str = "person") -> float:
    """AP at IoU 0.5 of ``model``'s ``label`` boxes on ``scenes`` (0.0 when the model has no such class)."""
    from label_studio_yolo.training.evaluate import map50_of_predictions

    return map50_of_predictions(predict(model, scenes), [scene.truth_objects() for scene in scenes], [label])


def _ship() -> None:
    """Train the people model into :data:`SHIPPED_MODELS` unless shipped, and print its measures."""
    started, cpu = time.monotonic(), _cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="people-model-") as cache:
        trained = train_people_model(Path(cache))
        if trained != PEOPLE_MODEL:
            os.replace(trained, PEOPLE_MODEL)
            print(f"trained in {time.monotonic() - started:.0f} s wall, {_cpu_seconds() - cpu:.0f} CPU-s")
    print(f"{PEOPLE_MODEL}: {PEOPLE_MODEL.stat().st_size / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory() as folder:
        people = write_scenes(Path(folder) / "people", 60, 100, label_sets=PEOPLE_LABEL_SETS[:3])
        mixed = write_scenes(Path(folder) / "mixed", 60, 101, label_sets=[("person", "cup", "cat")])
        print(f"held-out person AP50: {ap50(PEOPLE_MODEL, people):.3f}")
        print(f"person AP50 with a cup and a cat: {ap50(PEOPLE_MODEL, mixed):.3f}")
        print(f"cup AP50: {ap50(PEOPLE_MODEL, mixed, 'cup'):.3f}, cat AP50: {ap50(PEOPLE_MODEL, mixed, 'cat'):.3f}")


def _cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    _ship()

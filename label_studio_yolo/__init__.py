"""Label Studio ML backend for Ultralytics YOLO.

The top-level ``model.py`` and ``_wsgi.py`` keep the layout label-studio-ml users know; the logic lives here, one
responsibility per module:

- :mod:`label_studio_yolo.settings`: environment settings (pydantic-settings).
- :mod:`label_studio_yolo.inference.weights`: finding, loading, caching and versioning YOLO weights.
- :mod:`label_studio_yolo.label_config`: reading a labelling config into what the model must fill.
- :mod:`label_studio_yolo.media.loader`: fetching task images from Label Studio, URLs, ``data:`` URIs and local files.
- :mod:`label_studio_yolo.inference.runtimes`: PyTorch or OpenVINO (exported once beside the weights).
- :mod:`label_studio_yolo.inference.outputs`: running YOLO on one image.
- :mod:`label_studio_yolo.tags`: one class per control tag, turning detections into Label Studio regions.
- :mod:`label_studio_yolo.prediction.tasks`: predicting a batch of tasks, one failure never failing the batch.
- :mod:`label_studio_yolo.prediction.project`: a project's predictor (weights or trained version, config, media).
- :mod:`label_studio_yolo.bulk` and :mod:`label_studio_yolo.cli`: ``label-studio-yolo predict``, bulk
  pre-annotation of a whole project.
- :mod:`label_studio_yolo.serving.app`: the Flask app, project-aware on top of label-studio-ml.

Nothing here loads weights or opens a connection at import time.
"""

__version__ = "0.1.0"

"""Bulk pre-annotation: predict a whole Label Studio project outside the backend and upload the predictions.

Label Studio's "Retrieve predictions" sends every selected task to ``/predict`` in one request with a time limit;
for thousands of tasks use ``label-studio-yolo predict`` (:mod:`label_studio_yolo.cli`) instead. It predicts
with the backend's own code and settings, uploads in batches, skips annotated and already-predicted tasks, and can be
run again to continue where it stopped.

- :mod:`~label_studio_yolo.bulk.connection`: checks the URL, the API key and the project, with clear errors.
- :mod:`~label_studio_yolo.bulk.selection`: which tasks to predict.
- :mod:`~label_studio_yolo.bulk.runner`: predicting in batches while the previous batch uploads.
- :mod:`~label_studio_yolo.bulk.sinks`: uploading to Label Studio, or writing a dry run's JSON file.
- :mod:`~label_studio_yolo.bulk.progress` and :mod:`~label_studio_yolo.bulk.report`: what the user sees.
- :mod:`~label_studio_yolo.bulk.project_run`: one run, start to end.
"""

"""Learning from annotations: exporting them as an ultralytics dataset, training, evaluating, queueing jobs."""

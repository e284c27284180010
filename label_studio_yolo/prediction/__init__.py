"""Predictions for Label Studio tasks: a project's tags over its weights, tasks in batches and lanes."""

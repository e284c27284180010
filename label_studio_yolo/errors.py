"""The package's exceptions a person acts on: each message says what is wrong and how to fix it.

The app answers them as JSON errors (``serving/errors.py``); a task's media or annotation error fails that task only.
"""

from __future__ import annotations


class LabelConfigError(ValueError):
    """The labelling config cannot be used; the message shows XML that would work."""


class WeightsError(RuntimeError):
    """Weights could not be found, downloaded or loaded; the message says how to fix it."""


class MediaError(Exception):
    """A task's image could not be loaded; the message says why."""


class AnnotationError(ValueError):
    """An annotation cannot be turned into training data; the message says which region and why."""


class TrainingError(RuntimeError):
    """Training cannot run; the message says what to fix."""


class SetupRefused(Exception):
    """A ``/setup`` call cannot be taken: its hostname is not the one the project was set up from, or no URL."""


class VlmError(RuntimeError):
    """The endpoint gave no usable answer; the message says why (never with the API key)."""

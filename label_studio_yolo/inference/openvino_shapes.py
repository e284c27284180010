"""OpenVINO networks compiled for the input shapes a model meets, beside the dynamic network for the rest.

The export has dynamic input shapes, so every image keeps its aspect ratio; OpenVINO's CPU plugin runs a network
compiled for one fixed shape faster, with bit-identical outputs. A project meets few shapes (ultralytics pads the
short side to a multiple of 32), so :class:`ShapeNetworks` compiles a fixed-shape network for each shape it meets
twice, up to a limit; other shapes run on the dynamic network. Each fixed-shape network costs a compile and memory.

Example:
    >>> networks = ShapeNetworks(compile_model, core.read_model("model.xml"), limit=2)   # doctest: +SKIP
    >>> backend.ov_compiled_model = ShapeRequests(networks)                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from label_studio_yolo.settings import DEFAULT_STATIC_SHAPES

logger = logging.getLogger(__name__)

Shape = tuple[int, ...]
"""An input tensor's shape, e.g. ``(1, 3, 640, 480)``."""

SIGHTINGS_BEFORE_COMPILE = 2
"""A shape gets its own network the second time it is met: a shape met once would pay a compile and its memory for
nothing."""


class ShapeNetworks:
    """One exported network compiled for dynamic shapes, and for up to ``limit`` fixed input shapes.

    Thread-safe: the lanes of a batch share one family. A shape is compiled by the first caller that meets it for
    the second time, outside the lock (other callers meanwhile run it on the dynamic network); a shape that fails to
    compile is logged once and stays on the dynamic network.
    """

    def __init__(self, compile_model: Callable[[Any], Any], model: Any, limit: int = DEFAULT_STATIC_SHAPES) -> None:
        """``compile_model`` compiles an ``openvino.Model`` (with the family's device and config); ``model`` is the
        export as read, with dynamic shapes."""
        self._compile_model = compile_model
        self._model = model
        self.limit = limit
        self.dynamic = compile_model(model)
        self._static: dict[Shape, Any] = {}
        self._sightings: Counter[Shape] = Counter()
        self._claimed: set[Shape] = set()
        """Shapes being compiled, compiled, or that failed to compile."""
        self._lock = threading.Lock()

    @property
    def static_shapes(self) -> list[Shape]:
        """The shapes that have their own network, in the order they got it."""
        with self._lock:
            return list(self._static)

    def network_for(self, shape: Shape) -> tuple[Shape | None, Any]:
        """The network to run an input of ``shape`` on: ``(shape, its fixed-shape network)`` or ``(None, the
        dynamic network)``. May compile ``shape``'s network first (see :data:`SIGHTINGS_BEFORE_COMPILE`)."""
        with self._lock:
            network = self._static.get(shape)
            if network is not None:
                return shape, network
            self._sightings[shape] += 1
            if not self._should_compile(shape):
                return None, self.dynamic
            self._claimed.add(shape)
        network = self._compile(shape)
        if network is None:
            return None, self.dynamic
        with self._lock:
            self._static[shape] = network
        return shape, network

    def _should_compile(self, shape: Shape) -> bool:
        return (
            shape not in self._claimed
            and self._sightings[shape] >= SIGHTINGS_BEFORE_COMPILE
            and len(self._claimed) < self.limit
        )

    def _compile(self, shape: Shape) -> Any:
        started = time.perf_counter()
        try:
            model = self._model.clone()
            model.reshape(list(shape))
            network = self._compile_model(model)
        except Exception as error:  # OpenVINO raises its own RuntimeError subclasses; the dynamic network serves
            logger.warning(
                "OpenVINO could not compile the network for input shape %s (%s); it runs dynamic", shape, error
            )
            return None
        logger.info("OpenVINO network compiled for input shape %s in %.2f s", shape, time.perf_counter() - started)
        return network


class ShapeRequests:
    """Stands in for the compiled network inside one ultralytics backend: runs each input on its shape's network,
    with infer requests of this backend's own (threads must not share a request; calling a ``CompiledModel`` uses
    one request per network). Other attributes are the dynamic network's."""

    def __init__(self, networks: ShapeNetworks) -> None:
        self.networks = networks
        self._requests: dict[Shape | None, Any] = {}

    def __call__(self, inputs: Any) -> Any:
        key, network = self.networks.network_for(tuple(inputs.shape))
        request = self._requests.get(key)
        if request is None:
            request = self._requests[key] = network.create_infer_request()
        return request.infer(inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.networks.dynamic, name)

"""OpenVINO networks compiled for the input shapes a model meets, and a dynamic network for the rest, made on demand.

The export has dynamic input shapes, so every image keeps its aspect ratio; OpenVINO's CPU plugin runs a network
compiled for one fixed shape faster, with bit-identical outputs, and in less memory than the dynamic network, which
keeps buffers for the largest shape it has run. A project meets few shapes (ultralytics pads the short side to a
multiple of 32), so :class:`ShapeNetworks` compiles a fixed-shape network for each shape it meets, up to a limit, and
compiles the dynamic network only when a shape beyond the limit comes. Nothing is compiled before it is needed.

Example:
    >>> networks = ShapeNetworks(compile_model, core.read_model("model.xml"), limit=2)   # doctest: +SKIP
    >>> backend.ov_compiled_model = ShapeRequests(networks)                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from label_studio_yolo.settings import DEFAULT_STATIC_SHAPES

logger = logging.getLogger(__name__)

Shape = tuple[int, ...]
"""An input tensor's shape, e.g. ``(1, 3, 640, 480)``."""


class ShapeNetworks:
    """One exported network, compiled for up to ``limit`` fixed input shapes (the first ones met) and, once another
    shape comes, for dynamic shapes.

    Thread-safe: the predictors of a family (the lanes of batches) share it. A shape is compiled once, by the first
    caller that meets it, while callers meeting it meanwhile wait for that compile; a shape that fails to compile is
    logged once and runs on the dynamic network.
    """

    def __init__(self, compile_model: Callable[[Any], Any], model: Any, limit: int = DEFAULT_STATIC_SHAPES) -> None:
        """``compile_model`` compiles an ``openvino.Model`` (with the family's device and config); ``model`` is the
        export as read, with dynamic shapes."""
        self._compile_model = compile_model
        self.model = model
        """The export as read (its weights mapped from the file): every family of a weight file compiles from it."""
        self.limit = limit
        self._dynamic: Any = None
        self._static: dict[Shape, Any] = {}
        self._claimed: dict[Shape, threading.Event] = {}
        """Shapes being compiled, compiled, or that failed to compile; each event is set once its compile ended."""
        self._lock = threading.Lock()
        self._dynamic_lock = threading.Lock()

    @property
    def static_shapes(self) -> list[Shape]:
        """The shapes that have their own network, in the order they got it."""
        with self._lock:
            return list(self._static)

    @property
    def has_dynamic(self) -> bool:
        """Whether the dynamic network has been compiled (a shape beyond the limit came, or a compile failed)."""
        return self._dynamic is not None

    def network_for(self, shape: Shape) -> tuple[Shape | None, Any]:
        """The network to run an input of ``shape`` on: ``(shape, its fixed-shape network)`` or ``(None, the
        dynamic network)``; compiles the one it returns if it is not compiled yet."""
        with self._lock:
            compiled = self._claimed.get(shape)
            claim = compiled is None and len(self._claimed) < self.limit
            if claim:
                compiled = self._claimed[shape] = threading.Event()
        if claim:
            network = self._compile(shape)
            with self._lock:
                if network is not None:
                    self._static[shape] = network
                compiled.set()  # type: ignore[union-attr]
        elif compiled is not None:
            compiled.wait()
        network = self._static.get(shape)
        return (shape, network) if network is not None else (None, self.dynamic)

    @property
    def dynamic(self) -> Any:
        """The network compiled for dynamic shapes, compiled on first use."""
        with self._dynamic_lock:
            if self._dynamic is None:
                started = time.perf_counter()
                self._dynamic = self._compile_model(self.model)
                elapsed = time.perf_counter() - started
                logger.info("OpenVINO network compiled for dynamic input shapes in %.2f s", elapsed)
            return self._dynamic

    def any_network(self) -> Any:
        """A compiled network of the family (for its properties): a fixed-shape one if any, else the dynamic one."""
        with self._lock:
            compiled = next(iter(self._static.values()), None)
        return compiled if compiled is not None else self.dynamic

    def _compile(self, shape: Shape) -> Any:
        started = time.perf_counter()
        try:
            model = self.model.clone()
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
    one request per network). Other attributes are those of a compiled network of the family."""

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
        return getattr(self.networks.any_network(), name)

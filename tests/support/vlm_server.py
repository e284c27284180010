"""A local OpenAI-compatible chat-completions server that answers from a script: real HTTP on a free loopback port.

The real ``openai`` client talks to it as to vLLM or a hosted API. Each request becomes a :class:`Question` (the
prompt, the image decoded from its ``data:`` URL, the model and the ``Authorization`` header); the script returns
a :class:`Reply` (text, HTTP status, delay). The server records every question and how many were in flight at
once.

:func:`colour_reader` is a script that really looks at the image, as a model would: it finds the red and blue
boxes of the synthetic test images and answers with their boxes (zero-shot) or the colour of a crop (refine),
under the project's labels, in whatever form a case needs (fenced, truncated, wrong labels ...).

Example:
    >>> with serve_vlm(colour_reader({"red": "Crimson", "blue": "Navy"})) as server:  # doctest: +SKIP
    ...     settings = {"VLM_BASE_URL": server.base_url, "VLM_MODEL": "colour-reader"}
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np

from tests.support.http_serving import LoopbackHTTPServer, serving


@dataclass(frozen=True)
class Question:
    """One chat request: its text, its image (BGR pixels), the model asked for and the Authorization header."""

    prompt: str
    image: np.ndarray
    model: str
    authorization: str | None

    @property
    def is_zero_shot(self) -> bool:
        return "Find every object" in self.prompt


@dataclass(frozen=True)
class Reply:
    """What the server answers: the assistant's text, or another HTTP status, after ``delay`` seconds."""

    text: str = ""
    status: int = 200
    delay: float = 0.0


Script = Callable[[Question], Reply]


@dataclass
class VlmServer:
    """The script, the questions seen and the largest number answered at once."""

    script: Script
    url: str = ""
    questions: list[Question] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        """What ``VLM_BASE_URL`` is set to (the OpenAI client appends ``/chat/completions``)."""
        return self.url + "/v1"


@contextmanager
def serve_vlm(script: Script) -> Iterator[VlmServer]:
    """Run a :class:`VlmServer` on 127.0.0.1 for the duration of the block."""
    state = VlmServer(script)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the OpenAI client keeps connections alive
        disable_nagle_algorithm = True  # else headers and body, written apart, wait 40 ms for a delayed ACK

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            question = _question(body, self.headers.get("Authorization"))
            with state.lock:
                state.questions.append(question)
                state.in_flight += 1
                state.most_in_flight = max(state.most_in_flight, state.in_flight)
            try:
                reply = state.script(question)
                time.sleep(reply.delay)
            finally:
                with state.lock:
                    state.in_flight -= 1
            self._answer(reply, question.model)

        def _answer(self, reply: Reply, model: str) -> None:
            if reply.status == 200:
                message = {"role": "assistant", "content": reply.text}
                payload: dict[str, Any] = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            else:
                payload = {"error": {"message": reply.text or "scripted failure", "type": "server_error"}}
            data = json.dumps(payload).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(LoopbackHTTPServer(("127.0.0.1", 0), Handler)) as url:
        state.url = url
        yield state


def _question(body: dict[str, Any], authorization: str | None) -> Question:
    prompt, image = "", np.zeros((1, 1, 3), np.uint8)
    for part in body["messages"][-1]["content"]:
        if part["type"] == "text":
            prompt = part["text"]
        elif part["type"] == "image_url":
            data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return Question(prompt, image, body["model"], authorization)


def coloured_boxes(image: np.ndarray) -> list[tuple[str, float, float, float, float]]:
    """The red and blue boxes of a synthetic image as (colour, x0, y0, x1, y1) fractions of its size."""
    height, width = image.shape[:2]
    blue, red = image[:, :, 0].astype(int), image[:, :, 2].astype(int)
    found = []
    for colour, mask in (("red", (red > 150) & (blue < 100)), ("blue", (blue > 150) & (red < 100))):
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        for left, top, box_width, box_height, area in stats[1:count]:
            if area >= 30:  # JPEG noise makes specks
                found.append(
                    (colour, left / width, top / height, (left + box_width) / width, (top + box_height) / height)
                )
    return found


def crop_colour(image: np.ndarray) -> str:
    """The colour of the object in the middle of a crop: red or blue."""
    height, width = image.shape[:2]
    middle = image[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3].reshape(-1, 3).mean(axis=0)
    return "red" if middle[2] > middle[0] else "blue"


def colour_reader(labels: dict[str, str], confidence: float = 0.9) -> Script:
    """A script that answers like a good model: zero-shot, the boxes it sees; refine, the crop's colour; both under
    ``labels`` (colour -> label)."""

    def answer(question: Question) -> Reply:
        if question.is_zero_shot:
            objects = [
                {"label": labels[colour], "box": [round(v, 4) for v in box], "confidence": confidence}
                for colour, *box in coloured_boxes(question.image)
            ]
            return Reply(json.dumps({"objects": objects}))
        return Reply(json.dumps({"label": labels[crop_colour(question.image)], "confidence": confidence}))

    return answer

"""Entry point: ``gunicorn`` serves ``asgi_app`` (see ``gunicorn.conf.py``); ``python _wsgi.py`` serves ``app`` with
Flask's development server (what ``label-studio-ml start .`` runs).

Example:
    $ gunicorn                                     # in this folder: reads ./gunicorn.conf.py, listens on :9090
    $ python _wsgi.py --port 9090                  # Flask's development server, on 127.0.0.1
"""

from __future__ import annotations

import argparse
import ipaddress
import os

from label_studio_yolo.serving.app import create_app, preload_base_weights
from label_studio_yolo.serving.front import buffering_front
from model import YOLOBackend

app = create_app(YOLOBackend)
preload_base_weights()  # so the first /setup answers within Label Studio's 3 s
asgi_app = buffering_front(app)  # what gunicorn serves (gunicorn.conf.py): slow clients hold no thread

LOOPBACK = "127.0.0.1"
"""Where the development server listens unless told otherwise: only this machine can reach it."""


def main(argv: list[str] | None = None) -> None:
    """Serve with Flask's development server (as ``label-studio-ml start`` does), on loopback unless ``--host``."""
    parser = argparse.ArgumentParser(description="Label Studio ML backend for Ultralytics YOLO")
    parser.add_argument("-p", "--port", type=int, default=int(os.getenv("PORT", "9090")), help="port to listen on")
    parser.add_argument("--host", default=os.getenv("HOST", LOOPBACK), help=f"address to bind (default {LOOPBACK})")
    parser.add_argument("--debug", action="store_true", help="Flask debug mode (loopback addresses only)")
    args, _unknown = parser.parse_known_args(argv)
    if args.debug and not is_loopback(args.host):
        parser.error(
            f"--debug serves Werkzeug's debugger, which runs any Python code a visitor types: it listens on loopback "
            f"only, not on {args.host!r}"
        )
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) can be reached from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()

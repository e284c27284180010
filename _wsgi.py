"""Entry point: ``gunicorn _wsgi:app`` or ``python _wsgi.py`` (what ``label-studio-ml start .`` runs).

Example:
    $ gunicorn --bind :9090 --workers 1 --threads 16 --timeout 300 _wsgi:app
    $ python _wsgi.py --port 9090
"""

from __future__ import annotations

import argparse
import os

from label_studio_yolo.server import create_app, preload_base_weights
from model import YOLOBackend

app = create_app(YOLOBackend)
preload_base_weights()  # so the first /setup answers within Label Studio's 3 s


def main() -> None:
    """Serve with Flask's development server (as ``label-studio-ml start`` does)."""
    parser = argparse.ArgumentParser(description="Label Studio ML backend for Ultralytics YOLO")
    parser.add_argument("-p", "--port", type=int, default=int(os.getenv("PORT", "9090")), help="port to listen on")
    parser.add_argument("--host", default=os.getenv("HOST", "0.0.0.0"), help="address to bind")  # noqa: S104
    parser.add_argument("--debug", action="store_true", help="Flask debug mode")
    args, _unknown = parser.parse_known_args()
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True)


if __name__ == "__main__":
    main()

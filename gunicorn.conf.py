"""How gunicorn serves the backend, in one place: ``make run``, the image (docker run, compose, Kubernetes) and the
tests all start ``gunicorn`` in the folder of this file, and gunicorn reads ``./gunicorn.conf.py`` from there.

- gunicorn's own ``asgi`` worker: an event loop reads every connection's headers and body, so a client that sends
  slowly costs a coroutine, not a thread. It serves ``_wsgi:asgi_app`` (``label_studio_yolo/serving/front.py``), which
  checks Basic auth and the body size on the headers, buffers the body, then runs the Flask app in ``THREADS``
  threads.
- ``PORT`` (default 9090, every interface) and ``WORKERS`` processes (default 1) come from the environment;
  ``THREADS`` (default 16) and ``REQUEST_BODY_TIMEOUT`` (default 60 s) are read by the front.
- The worker is gunicorn's ``asgi`` worker with bounded connections
  (``label_studio_yolo/serving/connections.py``): ``REQUEST_HEADER_TIMEOUT``, ``MAX_HEADER_BYTES``, ``MAX_CONNECTIONS``;
  gunicorn itself takes at most 50 header fields (Label Studio sends about 10).
- A worker whose event loop stalls for 300 s is restarted; on SIGTERM, requests under way get 100 s to finish.

Command-line flags override this file, e.g. ``gunicorn --bind 127.0.0.1:9090 --workers 2``.
"""

import os

wsgi_app = "_wsgi:asgi_app"
worker_class = "label_studio_yolo.serving.connections.GuardedASGIWorker"
limit_request_fields = 50
bind = [f":{os.environ.get('PORT') or 9090}"]
workers = int(os.environ.get("WORKERS") or 1)
timeout = 300
graceful_timeout = 100
asgi_lifespan = "on"  # the front answers it: a front that cannot start stops gunicorn instead of serving errors
control_socket_disable = True  # gunicorn's runtime-control socket (gunicornc): unused, and one path per user

"""Every command the project tells people to type is run by a test exactly as written, or says here why it cannot run
on this machine. A new command in the README, docs/, the Makefile, the Dockerfile, docker-compose.yml or the
Kubernetes manifests fails :func:`test_every_documented_command_is_run_by_a_test_or_says_why_not` until it is listed.

How commands are found and run: ``tests/support/documented.py``.
"""

from __future__ import annotations

import ast

from tests.support.documented import ROOT, block_commands, documented_commands, markdown_commands, shell_block_of

USER_COMMANDS = "tests/integration/test_user_commands.py"
BULK = "tests/e2e/test_user_commands.py"
AUTH = "tests/e2e/test_label_studio_auth.py"
CLI = "tests/test_cli.py"

RUNS: dict[str, tuple[str, ...]] = {
    f"{USER_COMMANDS}::test_make_run_serves_the_backend_and_the_training_status_commands_report_its_versions": (
        "make run",
        "curl http://localhost:9090/training/status?project=7",
        ".venv/bin/python -m label_studio_yolo.training.status --project 7",
    ),
    f"{USER_COMMANDS}::test_make_dev_serves_the_backend_the_label_studio_ml_way": ("make dev",),
    "tests/integration/test_web_stack.py::test_label_studio_ml_start_serves_the_backend_on_loopback_only": (
        "label-studio-ml start .",
    ),
    f"{USER_COMMANDS}::test_the_vision_language_commands_serve_what_the_endpoint_sees": (
        "VLM_BASE_URL=http://gpu-host:8000/v1 VLM_MODEL=Qwen/Qwen2-VL-7B-Instruct make run",
        "export VLM_API_KEY=sk-...",
        "VLM_BASE_URL=https://api.openai.com/v1 VLM_MODEL=gpt-4o-mini make run",
    ),
    f"{USER_COMMANDS}::test_the_image_s_command_serves_and_its_health_checks_pass_with_compose_s_settings": (
        "gunicorn",
        "python -m label_studio_yolo.healthcheck /health",
        "python -m label_studio_yolo.healthcheck http://127.0.0.1:9090/health",
    ),
    f"{USER_COMMANDS}::test_the_deployed_worker_command_runs_the_training_jobs_the_backend_queues": (
        "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url redis://redis:6379/0 training",
        "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url '$(REDIS_URL)' training",
    ),
    "tests/e2e/test_learning_loop.py::"
    "test_start_training_learns_new_labels_keeps_the_old_one_and_serves_it_without_restart": (
        "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url $REDIS_URL training",
    ),
    f"{USER_COMMANDS}::test_pip_check_reports_only_label_studio_ml_s_stale_pins": ("pip check",),
    f"{USER_COMMANDS}::test_make_install_and_install_test_are_done_once_make_test_ran": (
        "make install",
        "make install-test",
    ),
    f"{USER_COMMANDS}::test_make_clean_removes_the_virtualenvs_and_caches_and_nothing_else": ("make clean",),
    f"{USER_COMMANDS}::test_the_tiny_models_command_ships_nothing_when_every_model_is_shipped": (
        "python -m tests.support.synthetic",
    ),
    f"{BULK}::test_the_readme_s_make_run_with_label_studio_s_url_and_key_serves_retrieve_predictions": (
        "LABEL_STUDIO_URL=http://localhost:8080 LABEL_STUDIO_API_KEY=... make run",
    ),
    f"{BULK}::test_the_readme_s_bulk_commands_predict_and_upload_every_task_as_typed": (
        "export LABEL_STUDIO_API_KEY=...",
        ".venv/bin/label-studio-yolo predict --url http://localhost:8080 --project 3 --dry-run predictions.json",
        ".venv/bin/label-studio-yolo predict --url http://localhost:8080 --project 3",
    ),
    f"{BULK}::test_the_docker_bulk_command_predicts_with_compose_s_settings": (
        "docker compose run --rm backend python -m label_studio_yolo predict --project 3",
    ),
    f"{AUTH}::test_label_studio_uses_a_backend_behind_a_password": (
        "BASIC_AUTH_USER=label-studio BASIC_AUTH_PASS='<long random password>' make run",
        "LS=http://localhost:8080 LS_TOKEN=...",
        "AUTH=\"Basic $(printf '%s' \"$BASIC_AUTH_USER:$BASIC_AUTH_PASS\" | base64 | tr -d '\\n')\"",
        'curl -s -H "Authorization: Token $LS_TOKEN" "$LS/api/webhooks/?project=3"',
        'curl -s -X PATCH -H "Authorization: Token $LS_TOKEN" -H "Content-Type: application/json" -d '
        '"{\\"headers\\": {\\"Authorization\\": \\"$AUTH\\"}}" "$LS/api/webhooks/<id>/"',
    ),
    f"{CLI}::test_the_documented_versions_commands_as_typed_in_an_activated_virtualenv": (
        "label-studio-yolo versions list --project 7",
        "label-studio-yolo versions pin --project 7 --version project7-v001-1a2b3c4d",
        "label-studio-yolo versions unpin --project 7",
        "label-studio-yolo versions pin --project 7 --version ...",
    ),
}
"""The test (``path::function``) -> the documented commands it runs. The test takes each text from ``documented()``
or ``block_containing()``, so it runs what the documents say."""

RUN_BY = {command: test for test, commands in RUNS.items() for command in commands}

NAMED_IN_PROSE: dict[str, str] = {
    "label-studio-yolo predict": ".venv/bin/label-studio-yolo predict --url http://localhost:8080 --project 3",
    "label-studio-yolo predict --dry-run": (
        ".venv/bin/label-studio-yolo predict --url http://localhost:8080 --project 3 --dry-run predictions.json"
    ),
    "python -m label_studio_yolo predict": "docker compose run --rm backend python -m label_studio_yolo predict "
    "--project 3",
    "label-studio-yolo versions pin": "label-studio-yolo versions pin --project 7 --version project7-v001-1a2b3c4d",
    "label-studio-ml start": "label-studio-ml start .",
    "rq worker": "rq worker -w label_studio_yolo.training.worker.TrainingWorker --url $REDIS_URL training",
    "docker compose": "docker compose up",
    "python -m benchmarks.bulk_predict": "python -m benchmarks.bulk_predict --tasks 100 --threads 2",
    "python -m benchmarks.memory": "python -m benchmarks.memory --repeat 5 --official DIR",
}
"""A command named in a sentence, without the arguments it needs -> the complete command it names, whose words it
shares in order."""

HOW_IT_WORKS: dict[str, tuple[str, str]] = {
    "python _wsgi.py": ("label-studio-ml start .", "what `label-studio-ml start .` runs (docs/security.md)"),
    "pip install --no-deps": ("make install", "the Makefile's install step for label-studio-ml (docs/security.md)"),
    "pip freeze --all": ("make audit", "what `make audit` audits (docs/security.md)"),
    "make lint": ("make test", "`make test` runs lint before the tests"),
    "make browser": ("make test", "`make test` installs Chromium for the page's browser tests (as root) first"),
    "docker stop": ("docker compose up", "how compose stops the backend (docs/deploy.md)"),
    "docker run --cpus=2": (
        "docker compose up",
        "an example of a CPU quota TORCH_THREADS follows (docs/performance.md)",
    ),
    "mkdir -p models && cp /path/to/your/weights.pt models/": (
        "MODEL_PATH=weights.pt LABEL_STUDIO_URL=http://host.docker.internal:8080 LABEL_STUDIO_API_KEY=... "
        "docker compose up",
        "puts the user's weights where compose mounts them",
    ),
}
"""A fragment that describes what another command does inside -> (that command, where and why it is written)."""

NO_DOCKER = (
    "needs a Docker engine, which this machine lacks; what runs in the containers is run by tests: the image's CMD and "
    "health checks and the worker command with compose's environment (tests/integration/test_user_commands.py), the "
    "bulk command with compose's environment (tests/e2e/test_user_commands.py)"
)
NO_CLUSTER = (
    "needs a Kubernetes cluster; tests/test_kubernetes.py validates the manifests, test_user_commands.py runs their "
    "container commands and probes"
)
AUDIT = (
    "needs pip-audit's vulnerability service (the network); kept out of CI on purpose, since new advisories would "
    "fail unchanged code (docs/security.md)"
)
BENCHMARK = (
    "a measurement that runs for minutes (and may start its own Label Studio, where CI runs one); "
    "test_user_commands.py::test_each_documented_benchmark_takes_its_documented_options checks its module and options"
)

CANNOT_RUN_HERE: dict[str, str] = {
    "make test": "CI itself (.ci/run): its output is this test suite",
    "bash .ci/run": "CI itself: installs from nothing and runs `make test`",
    "make audit": AUDIT,
    "make audit AUDIT_SERVICE=osv": AUDIT,
    "make audit AUDIT_ACCEPTED=": AUDIT,
    "docker compose up": NO_DOCKER,
    "MODEL_PATH=weights.pt LABEL_STUDIO_URL=http://host.docker.internal:8080 LABEL_STUDIO_API_KEY=... "
    "docker compose up": NO_DOCKER,
    "docker compose up --scale worker=3": NO_DOCKER,
    "docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .": NO_DOCKER,
    "docker build -t registry.example.com/label-studio-yolo-backend:0.1.0 . && docker push "
    "registry.example.com/label-studio-yolo-backend:0.1.0": NO_DOCKER,
    "kubectl apply -k deploy/kubernetes": NO_CLUSTER,
    "kubectl create namespace label-studio-yolo": NO_CLUSTER,
    "kubectl -n label-studio-yolo create secret generic yolo-backend-secrets "
    "--from-literal=LABEL_STUDIO_API_KEY=<token> --from-literal=BASIC_AUTH_USER=<user> "
    "--from-literal=BASIC_AUTH_PASS=<password>": NO_CLUSTER,
    "vllm serve Qwen/Qwen2-VL-7B-Instruct --port 8000 --max-model-len 8192": (
        "another project's server, for a GPU host; tests/support/vlm_server.py stands in for it"
    ),
    "python -m benchmarks.bulk_predict --tasks 100 --threads 2": BENCHMARK,
    "python -m benchmarks.predict_speed --threads 2": BENCHMARK,
    "python -m benchmarks.predict_load --clients 8 --seconds 60": BENCHMARK,
    "python -m benchmarks.slow_clients": BENCHMARK,
    "python -m benchmarks.decode_memory --side 9999 --copies 4": BENCHMARK,
    "python -m benchmarks.parked_uploads --uploads 20": BENCHMARK,
    "python -m benchmarks.header_flood": BENCHMARK,
    "python -m benchmarks.memory --repeat 5 --official DIR": BENCHMARK,
    "python -m benchmarks.memory_growth --weights yolov8s.pt": BENCHMARK,
    "python -m benchmarks.storage_predict --tasks 32 --repeat 9": BENCHMARK,
    "python -m benchmarks.storage_predict --tasks 32 --repeat 9 --apart": BENCHMARK,
}
"""Command -> why no test runs it on this machine, and what tests cover of it instead."""


def test_every_documented_command_is_run_by_a_test_or_says_why_not() -> None:
    documented = {command.text: command.where for command in documented_commands()}
    listed = [*RUN_BY, *NAMED_IN_PROSE, *HOW_IT_WORKS, *CANNOT_RUN_HERE]

    missing = {text: where for text, where in documented.items() if text not in listed}
    assert not missing, (
        f"Documented commands no test runs: {missing}. Add a test that runs each as written (tests/support/"
        f"documented.py) and list it in RUN_BY, or list it in CANNOT_RUN_HERE with the reason"
    )
    assert not set(listed) - set(documented), f"No longer documented: {sorted(set(listed) - set(documented))}"
    assert len(listed) == len(set(listed)), "a command is listed twice"


def test_each_listed_test_exists_and_takes_its_command_from_the_documents() -> None:
    for command, node in RUN_BY.items():
        path, name = node.split("::")
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"{node} does not exist"
        assert command in _documented_in(tree, path), f"{path} does not take {command!r} from the documents"


def _documented_in(tree: ast.Module, path: str) -> set[str]:
    """The commands a test module passes to ``documented()`` or ``block_containing()`` (as literals or through
    module constants and dictionaries of literals), with every command of each block it takes."""
    constants = _string_constants(tree)
    taken: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("documented", "block_containing"):
            argument = node.args[0]
            texts = [argument.value] if isinstance(argument, ast.Constant) else constants.get(_name(argument), [])
            for text in texts:
                taken.add(text)
                if node.func.id == "block_containing":  # type: ignore[attr-defined]
                    taken |= _block_of(text)
    assert taken, f"{path} takes no command from the documents"
    return taken


def _string_constants(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level names bound to a string, a list of strings, or a dict whose values hold strings."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            found[target.id] = [leaf.value for leaf in ast.walk(value) if isinstance(leaf, ast.Constant)]
            found[target.id] = [text for text in found[target.id] if isinstance(text, str)]
    return found


def _name(node: ast.expr) -> str:
    """The module constant an argument reads: ``NAME``, ``NAME[key]`` or ``NAME[key][0]``."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _block_of(text: str) -> set[str]:
    block = shell_block_of(text)
    return set(block_commands(block)) if block else set()


def test_a_command_named_in_prose_names_a_listed_command_with_the_same_words_in_order() -> None:
    for mention, command in NAMED_IN_PROSE.items():
        assert command in RUN_BY or command in CANNOT_RUN_HERE, f"{command!r} is neither run nor explained"
        words = iter(_words(command))
        assert all(word in words for word in _words(mention)), f"{mention!r} does not name {command!r}"
    for fragment, (command, _why) in HOW_IT_WORKS.items():
        assert command in RUN_BY or command in CANNOT_RUN_HERE, (
            f"{fragment!r} points at {command!r}, which is not listed"
        )


def _words(command: str) -> list[str]:
    return [word.removeprefix(".venv/bin/") for word in command.split()]


def test_commands_are_found_in_every_kind_of_document() -> None:
    """The reader finds each source's commands (a reader that found nothing would make the first test pass)."""
    places = {command.where.split(":")[0].split(" ")[0] for command in documented_commands()}
    assert {"README.md", "Makefile", "Dockerfile", "docker-compose.yml", "deploy/kubernetes/worker.yaml"} <= places
    assert {"docs/bulk.md", "docs/training.md", "docs/security.md", "docs/vlm.md", "docs/deploy.md"} <= places


def test_the_reader_finds_block_lines_and_inline_commands_but_not_names_or_other_code() -> None:
    page = (
        "Run `make run`, or `FOO=1 label-studio-yolo versions list\n--project 2` (a span over two lines).\n"
        "The `gunicorn` program, `gunicorn.conf.py` and `MODEL_PATH` are names.\n\n"
        "```bash\nexport KEY=...   # a comment\n# a comment line\ncurl -s \\\n     http://x/a\n```\n\n"
        "```python\nimport os\n```\n"
    )

    found = [command.text for command in markdown_commands(page, "page.md")]

    assert found == [
        "export KEY=...",
        "curl -s http://x/a",
        "make run",
        "FOO=1 label-studio-yolo versions list --project 2",
    ]

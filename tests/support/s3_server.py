"""An S3-compatible server on loopback for the tests: moto's, started as a process of its own (``moto_server``), with
a client to fill its buckets.

Example:
    >>> with running_s3(tmp_path) as s3:                                   # doctest: +SKIP
    ...     s3.client.put_object(Bucket="imgs", Key="photos/a.png", Body=data)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, running_server

ACCESS_KEY = "moto-access-key"
SECRET_KEY = "moto-secret-key"  # moto accepts any key; this one names itself
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """The server's URL (what Label Studio's ``s3_endpoint`` is set to) and a boto3 client of it."""

    url: str
    client: Any

    def storage_settings(self, bucket: str, prefix: str) -> dict[str, Any]:
        """What Label Studio's S3 import storage is created with to read ``bucket/prefix`` here."""
        return {
            "bucket": bucket,
            "prefix": prefix,
            "use_blob_urls": True,
            "s3endpoint": self.url,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": REGION,
        }


@contextmanager
def running_s3(log_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1 until the block ends."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with running_server(command, f"{url}/moto-api/", log_dir / "moto.log", {}, log_dir, 60.0):
        client = boto3.client(
            "s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        )
        yield S3Server(url, client)

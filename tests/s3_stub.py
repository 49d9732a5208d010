"""A real S3-compatible server on loopback (moto in server mode) for download tests.

    with S3Stub() as s3:
        s3.put_agent("amazon-ecs-agent", "/path/to/ecs-agent-v1.tar")
        env["ECS_INIT_S3_ENDPOINT"] = s3.endpoint

Objects are uploaded with boto3 through the S3 REST API and made
public-read; the code under test fetches them with anonymous GETs, path-style.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import urllib.request
from typing import Any

from ecs_init import AGENT_VERSION

AGENT_BUCKET = "amazon-ecs-agent"


def agent_key(version: str = AGENT_VERSION, machine: str | None = None) -> str:
    """The artifact key for this host, spelled out independently of the code under test."""
    m = (machine or platform.machine()).lower()
    arch = "arm64-" if m in ("aarch64", "arm64") else ""
    return f"ecs-agent-{arch}{version}.tar"


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class S3Stub:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._client: Any = None
        self.endpoint = ""

    def start(self) -> S3Stub:
        import boto3

        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> S3Stub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client(self) -> Any:
        return self._client

    def reset(self) -> None:
        """Forget every bucket and object."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def bucket(self, name: str, region: str = "us-east-1") -> None:
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._client.create_bucket(**kwargs)

    def put(self, bucket: str, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self._client.put_object(Bucket=bucket, Key=key, Body=data, ACL="public-read")

    def put_file(self, bucket: str, key: str, path: str) -> None:
        self._client.upload_file(path, bucket, key, ExtraArgs={"ACL": "public-read"})

    def put_agent(self, bucket: str, path: str, key: str | None = None, md5: str | None = None) -> str:
        """Upload ``path`` as the agent artifact and its ``.md5``; return the key."""
        key = key or agent_key()
        self.put_file(bucket, key, path)
        self.put(bucket, key + ".md5", (md5 if md5 is not None else file_md5(path)) + "\n")
        return key

    def url(self, bucket: str, key: str) -> str:
        return f"{self.endpoint}/{bucket}/{key}"

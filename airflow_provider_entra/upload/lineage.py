"""OpenLineage datasets of an upload, as plain ``(namespace, name)`` pairs: the HR input file in, the Entra
provisioning job out. The operator turns them into OpenLineage ``Dataset`` objects when the OpenLineage
provider is installed; nothing here needs it.

Names follow OpenLineage's dataset naming (https://openlineage.io/docs/spec/naming): a local file is
namespace ``file`` with its absolute path as name, an object ``<scheme>://<bucket or authority>`` with its
key. The job is namespace ``entra://<tenant id>`` (the Graph host when the tenant is unknown) with the job
id as name.

>>> file_dataset("s3://hr-exports/2026/hr.parquet")
('s3://hr-exports', '2026/hr.parquet')
>>> file_dataset("/data/run-1/delta.parquet")
('file', '/data/run-1/delta.parquet')
>>> job_dataset("API2AAD.t.j", tenant_id="t")
('entra://t', 'API2AAD.t.j')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["UploadLineage", "file_dataset", "job_dataset"]

#: Namespace scheme of an Entra provisioning job.
ENTRA_SCHEME = "entra"
_LOCAL_SCHEMES = ("", "file", "local")


def file_dataset(path: str) -> tuple[str, str]:
    """``(namespace, name)`` of a file: a local path, a ``file://`` URL or an object store URL."""
    parts = urlsplit(path)
    if parts.scheme in _LOCAL_SCHEMES:
        local = parts.path if parts.scheme else path
        return "file", os.path.abspath(os.path.expanduser(local))
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def job_dataset(job_id: str, *, tenant_id: str | None = None, host: str | None = None) -> tuple[str, str]:
    """``(namespace, name)`` of a provisioning job: ``entra://<tenant or host>``, the job id.

    :raises ValueError: with neither a tenant nor a host.
    """
    where = tenant_id or host
    if not where:
        raise ValueError("a provisioning job's dataset needs the tenant id or the Graph host")
    return f"{ENTRA_SCHEME}://{where}", job_id


@dataclass(frozen=True)
class UploadLineage:
    """What an upload read and wrote, as ``(namespace, name)`` pairs.

    :param inputs: the input file (none for payloads from XCom).
    :param outputs: the provisioning job (none when nothing was sent).
    """

    inputs: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)

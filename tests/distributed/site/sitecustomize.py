"""Imported at start-up by every Python process of the distributed test (``PYTHONPATH``): ``s3://`` is
obstore's fsspec filesystem, configured from the ``AWS_*`` environment (the local S3 server).

A deployment registers S3 through the Amazon provider (``s3://<aws_conn_id>@bucket/...``) instead; this
stands in for it where that provider's botocore cannot be installed.
"""

from obstore.fsspec import register

register("s3")

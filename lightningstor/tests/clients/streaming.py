"""One large object up in a single PUT and back in a single GET, read piece by piece, for
lightningstor/tests/streaming.rs (which watches the server's memory). Environment: S3_ENDPOINT,
S3_CA, TENANT_ID, TENANT_SECRET, FILE."""

import hashlib
import os

import boto3
from botocore.config import Config

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    aws_access_key_id=os.environ["TENANT_ID"],
    aws_secret_access_key=os.environ["TENANT_SECRET"],
    region_name="us-east-1",
    verify=os.environ["S3_CA"],
    config=Config(s3={"addressing_style": "path"}),
)
try:
    s3.create_bucket(Bucket="stream")
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass  # a second, larger object of the same test
with open(os.environ["FILE"], "rb") as f:
    s3.put_object(Bucket="stream", Key="big", Body=f)
want = hashlib.md5()
with open(os.environ["FILE"], "rb") as f:
    for piece in iter(lambda: f.read(1 << 20), b""):
        want.update(piece)
got = hashlib.md5()
body = s3.get_object(Bucket="stream", Key="big")["Body"]
for piece in iter(lambda: body.read(1 << 20), b""):
    got.update(piece)
assert got.hexdigest() == want.hexdigest(), "the object reads back byte-identical"
print("streamed")

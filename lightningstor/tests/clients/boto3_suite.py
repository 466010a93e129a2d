"""LightningStor driven by boto3, the AWS SDK for Python, unchanged.

Run by lightningstor/tests/boto3.rs against real servers. Environment: S3_ENDPOINT, S3_CA,
TENANT_ID/TENANT_SECRET (sa:acme/web/app), STRANGER_ID/STRANGER_SECRET (another project),
INTERN_ID/INTERN_SECRET (sa:acme/web/intern, a member the bucket policy denies), and
S3_PLAIN_ENDPOINT (the same server's plain-HTTP port with `s3.domain = localhost`) for
virtual-host-style addressing. Any failed check raises; the exit status says.
"""

import json
import os
import socket
import subprocess
import tempfile

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
CA = os.environ["S3_CA"]


def client(key, secret, endpoint=ENDPOINT, style="path"):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        verify=CA,
        config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1}),
    )


def error_code(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded; an error was expected")


def curl(url):
    """(status, body) of a plain GET with curl, trusting the platform CA."""
    out = subprocess.run(
        ["curl", "-sS", "--cacert", CA, "-o", "-", "-w", "\n%{http_code}", url], capture_output=True, check=True
    ).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


def data(n, seed):
    return bytes(((i * 7 + seed) % 251) ^ ((i >> 16) & 0xFF) for i in range(n))


s3 = client(os.environ["TENANT_ID"], os.environ["TENANT_SECRET"])
stranger = client(os.environ["STRANGER_ID"], os.environ["STRANGER_SECRET"])
intern = client(os.environ["INTERN_ID"], os.environ["INTERN_SECRET"])

# Buckets (a location constraint is accepted).
s3.create_bucket(Bucket="boto", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
assert error_code(s3.create_bucket, Bucket="boto") == "BucketAlreadyOwnedByYou"
assert "boto" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert s3.get_bucket_location(Bucket="boto")["LocationConstraint"] == "us-east-1"
assert error_code(s3.create_bucket, Bucket="Bad_Name") == "InvalidBucketName"

# Small and large (multipart) objects, metadata kept.
small = b"hello from boto3"
s3.put_object(Bucket="boto", Key="docs/readme.txt", Body=small, ContentType="text/plain", Metadata={"team": "blue"})
head = s3.head_object(Bucket="boto", Key="docs/readme.txt")
assert head["ContentType"] == "text/plain" and head["Metadata"] == {"team": "blue"}, head
large = data(12 << 20, 3)
with tempfile.NamedTemporaryFile() as f:
    f.write(large)
    f.flush()
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_file(f.name, "boto", "media/large.bin", Config=config)
head = s3.head_object(Bucket="boto", Key="media/large.bin")
assert head["ContentLength"] == len(large) and head["ETag"].endswith('-3"'), head
assert s3.get_object(Bucket="boto", Key="media/large.bin")["Body"].read() == large
s3.put_object(Bucket="boto", Key="top.txt", Body=b"top")

# Listing with prefix and delimiter, and paging.
listed = s3.list_objects_v2(Bucket="boto", Delimiter="/")
assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["docs/", "media/"], listed
assert [o["Key"] for o in listed["Contents"]] == ["top.txt"], listed
assert [o["Key"] for o in s3.list_objects_v2(Bucket="boto", Prefix="media/")["Contents"]] == ["media/large.bin"]
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="boto", PaginationConfig={"PageSize": 1})
assert [o["Key"] for page in pages for o in page.get("Contents", [])] == [
    "docs/readme.txt",
    "media/large.bin",
    "top.txt",
]
v1 = s3.list_objects(Bucket="boto", Prefix="docs/")
assert [o["Key"] for o in v1["Contents"]] == ["docs/readme.txt"], v1

# Ranged download across a chunk boundary.
part = s3.get_object(Bucket="boto", Key="media/large.bin", Range="bytes=65530-65545")
assert part["Body"].read() == large[65530:65546] and part["ContentRange"] == f"bytes 65530-65545/{len(large)}"
assert error_code(s3.get_object, Bucket="boto", Key="top.txt", Range="bytes=10-20") == "InvalidRange"

# Copies: same metadata, replaced metadata, a multipart copy by ranges (UploadPartCopy).
s3.copy_object(Bucket="boto", Key="docs/copy.txt", CopySource={"Bucket": "boto", "Key": "docs/readme.txt"})
copied = s3.get_object(Bucket="boto", Key="docs/copy.txt")
assert copied["Body"].read() == small and copied["Metadata"] == {"team": "blue"}
s3.copy_object(
    Bucket="boto",
    Key="docs/replaced.txt",
    CopySource="boto/docs/readme.txt",
    MetadataDirective="REPLACE",
    Metadata={"team": "red"},
    ContentType="text/markdown",
)
replaced = s3.head_object(Bucket="boto", Key="docs/replaced.txt")
assert replaced["Metadata"] == {"team": "red"} and replaced["ContentType"] == "text/markdown", replaced
assert error_code(s3.copy_object, Bucket="boto", Key="top.txt", CopySource="boto/top.txt") == "InvalidRequest"
assert error_code(s3.copy_object, Bucket="boto", Key="x", CopySource="boto/missing") == "NoSuchKey"
upload = s3.create_multipart_upload(Bucket="boto", Key="media/stitched.bin")["UploadId"]
parts = []
for n, (a, b) in enumerate([(0, (6 << 20) - 1), (6 << 20, len(large) - 1)], start=1):
    r = s3.upload_part_copy(
        Bucket="boto",
        Key="media/stitched.bin",
        UploadId=upload,
        PartNumber=n,
        CopySource={"Bucket": "boto", "Key": "media/large.bin"},
        CopySourceRange=f"bytes={a}-{b}",
    )
    parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
s3.complete_multipart_upload(
    Bucket="boto", Key="media/stitched.bin", UploadId=upload, MultipartUpload={"Parts": parts}
)
assert s3.get_object(Bucket="boto", Key="media/stitched.bin")["Body"].read() == large
# The managed copy of a large object uses UploadPartCopy by itself.
s3.copy({"Bucket": "boto", "Key": "media/large.bin"}, "boto", "media/managed.bin", Config=config)
assert s3.get_object(Bucket="boto", Key="media/managed.bin")["Body"].read() == large

# A presigned GET fetched with curl; an expired or tampered one is refused.
url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "docs/readme.txt"}, ExpiresIn=300)
assert curl(url) == (200, small), curl(url)
status, body = curl(url.replace("readme", "copy"))
assert status == 403 and b"SignatureDoesNotMatch" in body, body
expired = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "top.txt"}, ExpiresIn=1)
import time

time.sleep(2)
status, body = curl(expired)
assert status == 403 and b"expired" in body, body

# Errors for a missing key and a bad signature.
assert error_code(s3.get_object, Bucket="boto", Key="nope") == "NoSuchKey"
assert error_code(s3.head_object, Bucket="boto", Key="nope") == "404"
forged = client(os.environ["TENANT_ID"], "wrong-secret")
assert error_code(forged.list_objects_v2, Bucket="boto") == "SignatureDoesNotMatch"
assert error_code(s3.list_objects_v2, Bucket="no-such-bucket") == "NoSuchBucket"

# Tenant isolation: another project's key is refused on every operation.
for call, kwargs in [
    (stranger.list_objects_v2, {"Bucket": "boto"}),
    (stranger.get_object, {"Bucket": "boto", "Key": "top.txt"}),
    (stranger.put_object, {"Bucket": "boto", "Key": "x", "Body": b"x"}),
    (stranger.delete_object, {"Bucket": "boto", "Key": "top.txt"}),
    (stranger.copy_object, {"Bucket": "boto", "Key": "x", "CopySource": "boto/top.txt"}),
    (stranger.get_bucket_versioning, {"Bucket": "boto"}),
    (stranger.put_bucket_policy, {"Bucket": "boto", "Policy": "{}"}),
    (stranger.list_object_versions, {"Bucket": "boto"}),
    (stranger.create_multipart_upload, {"Bucket": "boto", "Key": "x"}),
    (stranger.delete_bucket, {"Bucket": "boto"}),
]:
    assert error_code(call, **kwargs) == "AccessDenied", call.__name__
# DeleteObjects answers per key, as S3 does: each one refused, nothing deleted.
refused = stranger.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "top.txt"}]})
assert [e["Code"] for e in refused["Errors"]] == ["AccessDenied"] and not refused.get("Deleted"), refused
assert s3.get_object(Bucket="boto", Key="top.txt")["Body"].read() == b"top"
s3.put_object(Bucket="boto", Key="private.txt", Body=b"mine")
stranger.create_bucket(Bucket="theirs")
assert error_code(s3.copy_object, Bucket="boto", Key="stolen", CopySource="theirs/x") in ("AccessDenied", "NoSuchKey")
assert error_code(stranger.copy_object, Bucket="theirs", Key="stolen", CopySource="boto/private.txt") == "AccessDenied"

# DeleteObjects: several keys at once, a missing one included (S3 reports it deleted).
s3.put_object(Bucket="boto", Key="batch/1", Body=b"1")
s3.put_object(Bucket="boto", Key="batch/2", Body=b"2")
result = s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "batch/1"}, {"Key": "batch/2"}, {"Key": "batch/3"}]})
assert sorted(d["Key"] for d in result["Deleted"]) == ["batch/1", "batch/2", "batch/3"], result
assert "Contents" not in s3.list_objects_v2(Bucket="boto", Prefix="batch/")

# Versioning: versions, delete markers, reading and removing versions.
assert "Status" not in s3.get_bucket_versioning(Bucket="boto")
s3.create_bucket(Bucket="history")
s3.put_object(Bucket="history", Key="doc", Body=b"before versioning")
s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
assert s3.get_bucket_versioning(Bucket="history")["Status"] == "Enabled"
v1 = s3.put_object(Bucket="history", Key="doc", Body=b"one")["VersionId"]
v2 = s3.put_object(Bucket="history", Key="doc", Body=b"two")["VersionId"]
assert v1 != v2 and "null" not in (v1, v2)
assert s3.get_object(Bucket="history", Key="doc")["Body"].read() == b"two"
assert s3.get_object(Bucket="history", Key="doc", VersionId=v1)["Body"].read() == b"one"
assert s3.get_object(Bucket="history", Key="doc", VersionId="null")["Body"].read() == b"before versioning"
marker = s3.delete_object(Bucket="history", Key="doc")
assert marker["DeleteMarker"] is True and marker["VersionId"], marker
assert error_code(s3.get_object, Bucket="history", Key="doc") == "NoSuchKey"
assert "Contents" not in s3.list_objects_v2(Bucket="history")
versions = s3.list_object_versions(Bucket="history")
assert [(v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [(v2, False), (v1, False), ("null", False)], versions
assert [(m["VersionId"], m["IsLatest"]) for m in versions["DeleteMarkers"]] == [(marker["VersionId"], True)], versions
page = s3.list_object_versions(Bucket="history", MaxKeys=2)
assert page["IsTruncated"] and page["NextKeyMarker"] == "doc", page
rest = s3.list_object_versions(
    Bucket="history", MaxKeys=10, KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"]
)
assert len(rest["Versions"]) + len(rest.get("DeleteMarkers", [])) == 2, rest
# Removing the delete marker brings the key back; removing a version for good.
s3.delete_object(Bucket="history", Key="doc", VersionId=marker["VersionId"])
assert s3.get_object(Bucket="history", Key="doc")["Body"].read() == b"two"
s3.delete_object(Bucket="history", Key="doc", VersionId=v2)
assert s3.get_object(Bucket="history", Key="doc")["Body"].read() == b"one"
assert error_code(s3.get_object, Bucket="history", Key="doc", VersionId=v2) == "NoSuchVersion"
assert error_code(s3.get_object, Bucket="history", Key="doc", VersionId="bogus") == "InvalidArgument"
# Restoring an old version by copying it onto its key.
s3.copy_object(Bucket="history", Key="doc", CopySource={"Bucket": "history", "Key": "doc", "VersionId": "null"})
assert s3.get_object(Bucket="history", Key="doc")["Body"].read() == b"before versioning"
# Suspended: new writes are the null version, replacing the old null version.
s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Suspended"})
assert s3.put_object(Bucket="history", Key="doc", Body=b"suspended").get("VersionId") == "null"
ids = [v["VersionId"] for v in s3.list_object_versions(Bucket="history")["Versions"]]
assert ids.count("null") == 1 and len(ids) == 3, ids
# A bucket holding only versions and markers is not empty.
assert error_code(s3.delete_bucket, Bucket="history") == "BucketNotEmpty"
for v in s3.list_object_versions(Bucket="history").get("Versions", []):
    s3.delete_object(Bucket="history", Key=v["Key"], VersionId=v["VersionId"])
s3.delete_bucket(Bucket="history")

# Bucket policy: public read for anonymous curl, a principal denied, nothing else opened.
public = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::boto/docs/*"},
        {
            "Effect": "Deny",
            "Principal": {"AWS": ["sa:acme/web/intern"]},
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::boto", "arn:aws:s3:::boto/*"],
        },
    ],
}
base = ENDPOINT + "/boto"
assert curl(base + "/docs/readme.txt")[0] == 403, "no policy, no anonymous read"
s3.put_bucket_policy(Bucket="boto", Policy=json.dumps(public))
assert json.loads(s3.get_bucket_policy(Bucket="boto")["Policy"]) == public
assert curl(base + "/docs/readme.txt") == (200, small)
assert curl(base + "/top.txt")[0] == 403, "outside the policy's resource"
assert curl(base + "?list-type=2")[0] == 403, "listing was not made public"
status, body = curl(base + "/docs/nope")
assert status == 404 and b"NoSuchKey" in body, body
assert stranger.get_object(Bucket="boto", Key="docs/readme.txt")["Body"].read() == small, "public means anyone"
assert error_code(intern.get_object, Bucket="boto", Key="top.txt") == "AccessDenied"
assert error_code(intern.get_object, Bucket="boto", Key="docs/readme.txt") == "AccessDenied", "deny wins"
assert error_code(intern.list_objects_v2, Bucket="boto") == "AccessDenied"
bad_policy = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::elsewhere/*"}]})
assert error_code(s3.put_bucket_policy, Bucket="boto", Policy=bad_policy) == "MalformedPolicy"
s3.delete_bucket_policy(Bucket="boto")
assert curl(base + "/docs/readme.txt")[0] == 403
assert error_code(s3.get_bucket_policy, Bucket="boto") == "NoSuchBucketPolicy"

# Virtual-host style: `<bucket>.localhost` on the plain port. The test machine has no DNS for
# it, so names under localhost resolve to loopback here; the client still addresses and signs
# by host name.
plain = os.environ["S3_PLAIN_ENDPOINT"]
resolve = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: resolve("127.0.0.1" if host.endswith(".localhost") else host, *a, **k)
vhost = client(os.environ["TENANT_ID"], os.environ["TENANT_SECRET"], endpoint=plain, style="virtual")
vhost.put_object(Bucket="boto", Key="vhost/key.txt", Body=b"virtual")
assert vhost.get_object(Bucket="boto", Key="vhost/key.txt")["Body"].read() == b"virtual"
assert [o["Key"] for o in vhost.list_objects_v2(Bucket="boto", Prefix="vhost/")["Contents"]] == ["vhost/key.txt"]
socket.getaddrinfo = resolve

# Deleting everything, then the bucket.
keys = [{"Key": o["Key"]} for o in s3.list_objects_v2(Bucket="boto")["Contents"]]
s3.delete_objects(Bucket="boto", Delete={"Objects": keys, "Quiet": True})
s3.delete_bucket(Bucket="boto")
assert error_code(s3.head_bucket, Bucket="boto") == "404"
print("boto3 suite passed")

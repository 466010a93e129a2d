"""Bad input from the network against LightningStor: every request is correctly signed (by
botocore's signer) so that what is tested is the server's handling of what follows: malformed
XML, wrong Content-MD5, oversized headers and metadata, invalid bucket names and keys, bodies over
the size limit, and uploads cut off mid-body (plain, aws-chunked, HTTP chunked). Each answers an
S3 error naming the problem, and no partial object ever becomes visible.

Run by lightningstor/tests/bad_input.rs. Environment: S3_ENDPOINT, S3_CA, TENANT_ID,
TENANT_SECRET; the server's `s3.max_object_bytes` is 1 MiB.
"""

import base64
import hashlib
import os
import socket
import ssl
import time
import urllib.parse

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
CA = os.environ["S3_CA"]
HOST, PORT = urllib.parse.urlsplit(ENDPOINT).hostname, urllib.parse.urlsplit(ENDPOINT).port
CREDENTIALS = Credentials(os.environ["TENANT_ID"], os.environ["TENANT_SECRET"])
LIMIT = 1 << 20

s3 = boto3.client(
    "s3",
    endpoint_url=ENDPOINT,
    aws_access_key_id=CREDENTIALS.access_key,
    aws_secret_access_key=CREDENTIALS.secret_key,
    region_name="us-east-1",
    verify=CA,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)


class Signer(S3SigV4Auth):
    """botocore's S3 signer with the payload hash we choose (a streaming marker, say)."""

    def __init__(self, payload):
        super().__init__(CREDENTIALS, "s3", "us-east-1")
        self.fixed = payload

    def payload(self, request):
        return self.fixed


def signed_head(method, path, headers, payload="UNSIGNED-PAYLOAD"):
    """The request line and headers of a signed request, as bytes."""
    request = AWSRequest(method=method, url=ENDPOINT + path, headers=headers)
    Signer(payload).add_auth(request)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{PORT}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect():
    context = ssl.create_default_context(cafile=CA)
    return context.wrap_socket(socket.create_connection((HOST, PORT)), server_hostname=HOST)


def read_head(sock, data=b""):
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data.partition(b"\r\n\r\n")


def exchange(head, body=b"", cut=False):
    """Sends `head` and `body`; answers (status, response text), or None when `cut` (the
    connection closes mid-body and no answer is awaited). With `Expect: 100-continue` the body
    goes only once the server asks for it, as careful clients do."""
    sock = connect()
    sock.settimeout(10)
    if b"Expect: 100-continue" in head:
        sock.sendall(head)
        head_part, _, rest = read_head(sock)
        if b" 100 " in head_part.split(b"\r\n")[0]:
            sock.sendall(body)
            head_part, _, rest = read_head(sock, rest)
    else:
        sock.sendall(head + body)
        if cut:
            time.sleep(0.2)
            sock.close()
            return None
        head_part, _, rest = read_head(sock)
    length = 0
    for line in head_part.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    sock.close()
    return int(head_part.split(b" ")[1]), rest.decode(errors="replace")


def request(method, path, body=b"", headers=None):
    headers = dict(headers or {})
    headers.setdefault("Content-Length", str(len(body)))
    return exchange(signed_head(method, path, headers), body)


def expect(answer, status, code):
    assert answer is not None and answer[0] == status and f"<Code>{code}</Code>" in answer[1], answer
    assert "<Message>" in answer[1] and "</Message>" in answer[1], answer


def absent(key):
    try:
        s3.head_object(Bucket="bad", Key=key)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "404", e.response
        return
    raise AssertionError(f"{key} became visible")


s3.create_bucket(Bucket="bad")

# Malformed XML, in every body the server parses: nothing changes.
expect(request("POST", "/bad?delete", b"<Delete><Object><Key>x</Key>"), 400, "MalformedXML")
expect(request("POST", "/bad?delete", b"<Delete></Delete>"), 400, "MalformedXML")
expect(request("POST", "/bad?delete", b"<!DOCTYPE d [<!ENTITY a 'b'>]><Delete>&a;</Delete>"), 400, "MalformedXML")
expect(request("PUT", "/bad?versioning", b"<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>"), 400, "MalformedXML")
assert "Status" not in s3.get_bucket_versioning(Bucket="bad")
expect(request("PUT", "/fresh-bucket", b"this is not xml"), 400, "MalformedXML")
try:
    s3.head_bucket(Bucket="fresh-bucket")
    raise AssertionError("a bucket was created from a malformed request")
except ClientError as e:
    assert e.response["Error"]["Code"] == "404"
upload = s3.create_multipart_upload(Bucket="bad", Key="parts")["UploadId"]
s3.upload_part(Bucket="bad", Key="parts", UploadId=upload, PartNumber=1, Body=b"part one")
expect(request("POST", f"/bad/parts?uploadId={upload}", b"<CompleteMultipartUpload><Part>"), 400, "MalformedXML")
expect(request("POST", f"/bad/parts?uploadId={upload}", b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"0\"</ETag></Part></CompleteMultipartUpload>"), 400, "InvalidPart")
absent("parts")
assert len(s3.list_parts(Bucket="bad", Key="parts", UploadId=upload)["Parts"]) == 1, "the upload is intact"
expect(request("PUT", f"/bad/parts?uploadId={upload}&partNumber=0", b"x"), 400, "InvalidArgument")
expect(request("PUT", "/bad/parts?uploadId=ffff&partNumber=1", b"x"), 404, "NoSuchUpload")
expect(request("PUT", "/bad?policy", b"{not json"), 400, "MalformedPolicy")

# Wrong Content-MD5: refused, nothing visible; a malformed one is named as such.
md5_of_other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
expect(request("PUT", "/bad/digest", b"payload", {"Content-MD5": md5_of_other}), 400, "BadDigest")
expect(request("PUT", "/bad/digest", b"payload", {"Content-MD5": "not-base64!"}), 400, "InvalidDigest")
absent("digest")
# A signed payload hash that does not match the body.
head = signed_head("PUT", "/bad/sha", {"Content-Length": "7"}, payload=hashlib.sha256(b"another").hexdigest())
expect(exchange(head, b"payload"), 400, "XAmzContentSHA256Mismatch")
absent("sha")

# Oversized headers and metadata.
expect(request("PUT", "/bad/big-headers", b"x", {"x-amz-meta-big": "a" * 9000}), 400, "RequestHeaderSectionTooLarge")
expect(request("PUT", "/bad/big-meta", b"x", {"x-amz-meta-big": "a" * 3000}), 400, "MetadataTooLarge")
absent("big-headers")
absent("big-meta")

# Invalid bucket names and keys.
for name in ["ab", "UPPER", "under_score", "-dash", "a..b", "192.168.0.1", "x" * 64]:
    expect(request("PUT", "/" + urllib.parse.quote(name)), 400, "InvalidBucketName")
expect(request("PUT", "/bad/" + "k" * 1025, b"x"), 400, "KeyTooLongError")
expect(request("PUT", "/bad/a%00b", b"x"), 400, "InvalidArgument")
expect(request("PUT", "/bad/a%zzb", b"x"), 400, "InvalidArgument")
expect(request("GET", "/bad?list-type=2&max-keys=lots"), 400, "InvalidArgument")
expect(request("GET", "/bad?list-type=2&continuation-token=zz"), 400, "InvalidArgument")
expect(request("GET", "/bad/nothing?versionId=..%2F..%2Fetc"), 400, "InvalidArgument")
expect(request("PATCH", "/bad/x"), 405, "MethodNotAllowed")
expect(request("GET", "/bad?acl"), 501, "NotImplemented")

# Bodies over the limit: by the declared length, and found only while streaming (aws-chunked
# declares its decoded length; a lie is caught as the bytes arrive).
expect(request("PUT", "/bad/huge", b"x" * (LIMIT + 1), {"Expect": "100-continue"}), 400, "EntityTooLarge")
absent("huge")


def chunked(pieces, trailer=True):
    """An aws-chunked body of unsigned chunks."""
    out = b""
    for piece in pieces:
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    if trailer:
        out += b"x-amz-checksum-crc32:AAAAAA==\r\n"
    return out + b"\r\n"


def streaming_head(key, body_len, decoded_len):
    return signed_head(
        "PUT",
        f"/bad/{key}",
        {
            "Content-Encoding": "aws-chunked",
            "Content-Length": str(body_len),
            "x-amz-decoded-content-length": str(decoded_len),
            "x-amz-trailer": "x-amz-checksum-crc32",
        },
        payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )


body = chunked([b"a" * 600_000, b"b" * 600_000])
expect(exchange(streaming_head("liar", len(body), 1000), body), 400, "EntityTooLarge")
absent("liar")
good = chunked([b"hello ", b"chunks"])
answer = exchange(streaming_head("chunked", len(good), 12), good)
assert answer[0] == 200, answer
assert s3.get_object(Bucket="bad", Key="chunked")["Body"].read() == b"hello chunks"

# Uploads cut off mid-body: plain, aws-chunked and HTTP chunked. None becomes visible.
exchange(signed_head("PUT", "/bad/cut-plain", {"Content-Length": "500000"}), b"z" * 200_000, cut=True)
full = chunked([b"c" * 300_000, b"d" * 300_000])
exchange(streaming_head("cut-aws", len(full), 600_000), full[: len(full) // 2], cut=True)
head = signed_head("PUT", "/bad/cut-http", {"Transfer-Encoding": "chunked"})
exchange(head, b"10000\r\n" + b"e" * 30_000, cut=True)
# A malformed aws-chunked body (a bad chunk size) is refused, not stored.
broken = b"zz\r\nabc\r\n0\r\n\r\n"
expect(exchange(streaming_head("broken", len(broken), 3), broken), 400, "IncompleteBody")
time.sleep(1)
for key in ["cut-plain", "cut-aws", "cut-http", "broken"]:
    absent(key)

# The server is still well: a normal round trip works.
s3.put_object(Bucket="bad", Key="after", Body=b"still fine")
assert s3.get_object(Bucket="bad", Key="after")["Body"].read() == b"still fine"

# Clean up so the test can check that no orphaned chunk stayed on disk.
s3.abort_multipart_upload(Bucket="bad", Key="parts", UploadId=upload)
for key in ["chunked", "after"]:
    s3.delete_object(Bucket="bad", Key=key)
s3.delete_bucket(Bucket="bad")
print("bad input suite passed")

"""S3 traffic for the three-node replication test (lightningstor/tests/replication.rs), one
phase per run:

  write   uploads objects concurrently through the first two endpoints, kills the node whose pid
          is KILL_PID (kill -9) a few uploads in, keeps uploading, and writes the MANIFEST of the
          uploads that were acknowledged (key -> md5, size); then reads each back through both.
  read    reads every object of the MANIFEST through the first endpoint, byte-identical.

Environment: ENDPOINTS (comma-separated), S3_CA, TENANT_ID, TENANT_SECRET, MANIFEST, KILL_PID.
"""

import concurrent.futures
import hashlib
import json
import os
import signal
import sys
import threading

import boto3
from botocore.config import Config

ENDPOINTS = os.environ["ENDPOINTS"].split(",")
MANIFEST = os.environ["MANIFEST"]


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ["TENANT_ID"],
        aws_secret_access_key=os.environ["TENANT_SECRET"],
        region_name="us-east-1",
        verify=os.environ["S3_CA"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def body(i):
    size = 50_000 + (i * 37_911) % 400_000
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def write():
    clients = [client(e) for e in ENDPOINTS[:2]]
    clients[0].create_bucket(Bucket="replicated")
    acknowledged, failed = {}, []
    lock = threading.Lock()
    done = [0]

    def upload(i):
        data = body(i)
        key = f"objects/{i:04}"
        try:
            clients[i % 2].put_object(Bucket="replicated", Key=key, Body=data)
        except Exception as e:  # an upload in flight when the node died may fail; it was not acknowledged
            with lock:
                failed.append((key, str(e)))
            return
        with lock:
            acknowledged[key] = {"md5": hashlib.md5(data).hexdigest(), "size": len(data)}
            done[0] += 1
            if done[0] == 12:
                os.kill(int(os.environ["KILL_PID"]), signal.SIGKILL)
                print("killed the third node mid-load", flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(upload, range(60)))
    with open(MANIFEST, "w") as f:
        json.dump(acknowledged, f)
    print(f"acknowledged {len(acknowledged)}, failed {len(failed)}: {failed[:3]}", flush=True)
    assert len(acknowledged) >= 50, "the cluster kept taking writes with one node down"
    for s3 in clients:
        for key, want in acknowledged.items():
            data = s3.get_object(Bucket="replicated", Key=key)["Body"].read()
            assert hashlib.md5(data).hexdigest() == want["md5"] and len(data) == want["size"], key


def read():
    s3 = client(ENDPOINTS[0])
    with open(MANIFEST) as f:
        acknowledged = json.load(f)
    for key, want in acknowledged.items():
        data = s3.get_object(Bucket="replicated", Key=key)["Body"].read()
        assert hashlib.md5(data).hexdigest() == want["md5"] and len(data) == want["size"], key
    print(f"read {len(acknowledged)} objects byte-identical through {ENDPOINTS[0]}", flush=True)


{"write": write, "read": read}[sys.argv[1]]()
print("phase passed")

#!/usr/bin/env python3
"""Regenerates the committed seed corpus under fuzz/corpus/<target>/ from the test fixtures.

Each target gets inputs in the shape its fuzz_target! reads (see the doc comment of each file in
fuzz/fuzz_targets/): the recorded SSE streams and JSON bodies of tests/fixtures, the request bodies real
clients send, Bedrock event-stream frames built from the Anthropic streams, HTTP heads, chunked bodies,
gzip-coded bodies and hostile configuration environments. Deterministic: running it twice gives the same
files, so `git status` shows whether the committed corpus is current. Run through `scripts/fuzz
--write-seeds`.
"""

import base64
import binascii
import gzip
import hashlib
import json
import pathlib
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = ROOT / "fuzz" / "corpus"
# Inputs fuzzing found that failed a target (fuzz/regressions/<target>/<what-it-is>); the crate's unit
# tests read them too.
REGRESSIONS = ROOT / "fuzz" / "regressions"
# A seed larger than this is cut: libFuzzer's default -max_len grows from the seeds, and small seeds keep
# the corpus (and every execution) cheap.
MAX_SEED = 6 * 1024


def fixture_files(kind, name):
    return sorted((FIXTURES / kind).glob(f"*/{name}"))


def streams(kind):
    return [p.read_bytes() for p in fixture_files(kind, "stream.sse")]


def bodies(kind):
    return [p.read_bytes() for p in fixture_files(kind, "body.json")]


def requests():
    return [p.read_bytes() for p in sorted((FIXTURES / "requests").glob("*.json"))]


def requests_for(api):
    """The fixture request bodies that speak `api`, plus a minimal one."""
    out = []
    for p in sorted((FIXTURES / "requests").glob("*.json")):
        body = json.loads(p.read_bytes())
        if api == "messages" and "max_tokens" in body and "messages" in body:
            out.append(p.read_bytes())
        elif api == "chat" and "messages" in body and "max_tokens" not in body:
            out.append(p.read_bytes())
        elif api == "responses" and "input" in body:
            out.append(p.read_bytes())
    minimal = {
        "messages": b'{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,'
        b'"messages":[{"role":"user","content":"hi"}]}',
        "chat": b'{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},'
        b'"messages":[{"role":"user","content":"hi"}]}',
        "responses": b'{"model":"gpt-5","input":"hi","stream":true}',
    }[api]
    return out + [minimal]


def eventstream_frame(payload, event_type=b"chunk", message_type=b"event"):
    """One AWS event-stream message: prelude (lengths + CRC), string headers, payload, message CRC."""
    headers = b""
    for name, value in ((b":event-type", event_type), (b":content-type", b"application/json"),
                        (b":message-type", message_type)):
        headers += bytes([len(name)]) + name + b"\x07" + struct.pack(">H", len(value)) + value
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def bedrock_streams():
    """The Anthropic SSE fixtures as Bedrock would send them: each `data:` event in a chunk frame."""
    out = []
    for stream in streams("messages"):
        frames = b""
        for line in stream.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip()
                payload = json.dumps({"bytes": base64.b64encode(data).decode()}).encode()
                frames += eventstream_frame(payload)
        out.append(frames)
    out.append(eventstream_frame(b'{"message":"throttled"}', b"throttlingException", b"exception"))
    return out


HEADS = [
    b"POST /api/v2/aibridge/openai/v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
    b"Authorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
    b"POST /api/v2/aibridge/anthropic/v1/messages HTTP/1.1\r\nHost: gw\r\nX-Api-Key: t\r\n"
    b"anthropic-version: 2023-06-01\r\nanthropic-beta: context-1m-2025-08-07\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    b"HEAD /api/v2/aibridge/anthropic HTTP/1.1\r\nHost: gw\r\n\r\n",
    b"POST /api/v2/aibridge/openai/v1/responses HTTP/1.0\r\nContent-Length: 0\r\nsession-id: s\r\n"
    b"thread-id: t\r\n\r\n",
]

CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\n",
]

ENVS = [
    b"0_TYPE=openai\n0_NAME=openai\n0_KEY=sk-test-0123456789\n",
    b"0_TYPE=anthropic\n0_KEYS=sk-ant-a,sk-ant-b\n1_TYPE=openai\n1_BASE_URL=http://127.0.0.1:9/v1\n",
    b"0_TYPE=bedrock\n0_BEDROCK_REGION=us-east-1\n0_BEDROCK_ACCESS_KEY=AKIAXXXXXXXX\n"
    b"0_BEDROCK_ACCESS_KEY_SECRET=secretsecretsecret\n",
    b"0_TYPE=copilot\n3_TYPE=openai\n",
    b"CODER_AIBRIDGE_SHUTDOWN_GRACE=1h30m\nCODER_AIBRIDGE_MAX_BODY_SIZE=32MiB\n"
    b"CODER_AIBRIDGE_RETENTION=720h\n0_TYPE=openai\n",
    b"CODER_AIBRIDGE_OPENAI_KEY=sk-x\nCODER_AIBRIDGE_ANTHROPIC_BASE_URL=https://api.anthropic.com/\n",
    b"CODER_AIBRIDGE_HTTP_ADDRESS=[::1]:0\nCODER_AIBRIDGE_UPSTREAM_CONNECT_TIMEOUT=-1s\n0_TYPE=openai\n",
]


def seeds():
    """Target name -> list of seed inputs."""
    sse = {kind: streams(kind) for kind in ("chat", "messages", "responses")}
    json_bodies = {kind: bodies(kind) for kind in ("chat", "messages", "responses")}
    out = {}
    # Observers: the first byte is the read size the stream is fed in.
    for target, kind in (("observer_chat", "chat"), ("observer_messages", "messages"),
                         ("observer_responses", "responses")):
        out[target] = [bytes([size]) + s for s in sse[kind] + json_bodies[kind] for size in (0, 7)]
    out["sse_scanner"] = [bytes([cut]) + s for kind in sse for s in sse[kind] for cut in (3,)]
    out["request_inspect"] = requests()
    out["include_usage_edit"] = requests_for("chat")
    out["bedrock_rewrite"] = requests_for("messages")
    out["bedrock_eventstream"] = bedrock_streams()
    out["http_request_head"] = HEADS
    out["http_chunked"] = [bytes([cut]) + c for c in CHUNKED for cut in (0, 5)]
    out["config_env"] = ENVS
    gz = [gzip.compress(s, mtime=0) for s in sse["chat"][:2] + sse["messages"][:2] + json_bodies["responses"][:2]]
    out["gzip_observer"] = [bytes([pick]) + g for g in gz for pick in (0, 3)] + [b"\x00" + gzip.compress(b"", mtime=0)]
    return out


def main():
    targets = sorted(p.stem for p in (ROOT / "fuzz" / "fuzz_targets").glob("*.rs"))
    all_seeds = seeds()
    missing = [t for t in targets if t not in all_seeds]
    if missing:
        sys.exit(f"no seeds defined for fuzz target(s): {', '.join(missing)}")
    total = 0
    for target in targets:
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for seed in all_seeds[target]:
            seed = seed[:MAX_SEED]
            name = hashlib.sha1(seed).hexdigest()
            (directory / name).write_bytes(seed)
            total += len(seed)
        # Inputs that once failed the target stay in its corpus, under their descriptive names.
        for crasher in sorted((REGRESSIONS / target).glob("*")):
            (directory / f"regression-{crasher.name}").write_bytes(crasher.read_bytes())
            total += crasher.stat().st_size
        print(f"{target}: {len(list(directory.iterdir()))} seeds")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()

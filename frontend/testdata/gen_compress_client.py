#!/usr/bin/env python3
"""Generate compress_client.json: what an IMAP client using zlib sends after
COMPRESS DEFLATE (RFC 4978), one stream per zlib flush mode, for
compress_flush_test.go (which must not need python to run).

Each stream is zlib.compressobj(6, zlib.DEFLATED, -15) output with a
flush(mode) after each command line, as mbsync (Z_PARTIAL_FLUSH) and other
clients do; "in" is the number of compressed bytes emitted once the
command has been flushed. The script checks that zlib's own inflate
decodes each whole command from those bytes: for Z_BLOCK, which may hold
back up to seven bits of the block, that holds for these commands but not
for every stream (see zinflate's tests).

Run from this directory: python3 gen_compress_client.py > compress_client.json
"""
import base64
import json
import zlib

MODES = ["Z_SYNC_FLUSH", "Z_PARTIAL_FLUSH", "Z_FULL_FLUSH", "Z_BLOCK"]
COMMANDS = [
    "z1 NOOP",
    "z2 SELECT INBOX",
    "z3 FETCH 1 (UID BODY.PEEK[])",
    "z4 NOOP",
    'z5 LIST "" "*"',
    "z6 STATUS Sent (MESSAGES)",
    "z7 NOOP",
]


def main():
    streams = []
    for mode in MODES:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        stream = b""
        plain = b""
        commands = []
        for line in COMMANDS:
            data = (line + "\r\n").encode()
            stream += c.compress(data) + c.flush(getattr(zlib, mode))
            plain += data
            got = zlib.decompressobj(-15).decompress(stream)
            if got != plain:
                raise SystemExit("%s: zlib decodes %r of %r" % (mode, got, plain))
            commands.append({"line": line, "in": len(stream)})
        streams.append({"mode": mode, "stream": base64.b64encode(stream).decode(),
                        "commands": commands})
    print(json.dumps({"zlib_version": zlib.ZLIB_RUNTIME_VERSION, "streams": streams}, indent=1))


if __name__ == "__main__":
    main()

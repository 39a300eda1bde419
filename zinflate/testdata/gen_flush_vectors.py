#!/usr/bin/env python3
"""Generate flush_vectors.json: raw DEFLATE streams written by real zlib,
flushed after each chunk with Z_SYNC_FLUSH, Z_PARTIAL_FLUSH, Z_FULL_FLUSH
or Z_BLOCK, for the zinflate tests (which must not need python to run).

Each vector records, for every flush point, how many compressed bytes the
compressor had emitted ("in"), how many plaintext bytes it had been given
("out"), and how many of those zlib's own inflate returns when given only
the first "in" bytes ("zlib_out"). For Z_SYNC_FLUSH, Z_FULL_FLUSH and
Z_PARTIAL_FLUSH that is all of them (checked below). For Z_BLOCK zlib may
hold back up to seven bits of the block, so zlib_out can be smaller: the
decoder under test must then return exactly what zlib returns.

Run from this directory: python3 gen_flush_vectors.py > flush_vectors.json
The output is deterministic for a given zlib version.
"""
import base64
import json
import random
import zlib

MODES = {
    "Z_SYNC_FLUSH": zlib.Z_SYNC_FLUSH,
    "Z_PARTIAL_FLUSH": zlib.Z_PARTIAL_FLUSH,
    "Z_FULL_FLUSH": zlib.Z_FULL_FLUSH,
    "Z_BLOCK": zlib.Z_BLOCK,
}


def imap_chunks(rng, n):
    """Command lines as an IMAP client sends them."""
    cmds = ["NOOP", "CAPABILITY", 'SELECT "INBOX"', "UID FETCH 1:* (FLAGS)",
            'LIST "" "*"', "UID STORE 3 +FLAGS (\\Seen)", "IDLE", "DONE",
            'STATUS "Sent" (MESSAGES UIDNEXT)', "EXPUNGE", "LOGOUT"]
    return [("%d %s\r\n" % (i + 3, rng.choice(cmds))).encode() for i in range(n)]


def text_chunks(rng, n, size):
    words = ["the", "message", "mailbox", "imap", "front", "end", "deflate",
             "Subject:", "From:", "alice@example.org", "\r\n", "bob", "=20"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, size))).encode()
            for _ in range(n)]


def binary_chunks(rng, n, size):
    return [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, size))) for _ in range(n)]


def runs_chunks(rng, n, size):
    return [bytes([rng.choice(b"ab\x00")]) * rng.randint(1, size) for _ in range(n)]


def deflate_all(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def inflate_prefix(stream):
    """What zlib's inflate returns given exactly this prefix."""
    d = zlib.decompressobj(-15)
    return len(d.decompress(stream))


def vector(name, chunks, level, strategy, modes, rng):
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
    stream = b""
    plain = b""
    points = []
    for chunk in chunks:
        mode = rng.choice(modes)
        stream += c.compress(chunk)
        stream += c.flush(MODES[mode])
        plain += chunk
        zout = inflate_prefix(stream)
        if mode != "Z_BLOCK" and zout != len(plain):
            raise SystemExit("%s: zlib inflate got %d of %d bytes after %s"
                             % (name, zout, len(plain), mode))
        points.append({"mode": mode, "in": len(stream), "out": len(plain), "zlib_out": zout})
    stream += c.flush(zlib.Z_FINISH)
    if zlib.decompress(stream, -15) != plain:
        raise SystemExit(name + ": round trip failed")
    return {
        "name": name,
        "level": level,
        "strategy": strategy,
        "stream": base64.b64encode(stream).decode(),
        # The plaintext, compressed in one go (decoded with compress/flate).
        "plain_deflated": base64.b64encode(deflate_all(plain)).decode(),
        "points": points,
    }


def main():
    rng = random.Random(4978)
    vectors = []
    kinds = [
        ("imap", lambda: imap_chunks(rng, 40)),
        ("text", lambda: text_chunks(rng, 10, 150)),
        ("binary", lambda: binary_chunks(rng, 4, 1200)),
        ("runs", lambda: runs_chunks(rng, 10, 800)),
    ]
    strategies = [("default", zlib.Z_DEFAULT_STRATEGY), ("fixed", zlib.Z_FIXED),
                  ("huffman", zlib.Z_HUFFMAN_ONLY), ("rle", zlib.Z_RLE)]
    for mode in MODES:
        for kind, gen in kinds:
            for level in (0, 1, 6, 9):
                vectors.append(vector("%s-%s-level%d" % (mode, kind, level),
                                      gen(), level, zlib.Z_DEFAULT_STRATEGY, [mode], rng))
        for sname, strategy in strategies[1:]:
            vectors.append(vector("%s-imap-%s" % (mode, sname), imap_chunks(rng, 20),
                                  6, strategy, [mode], rng))
    # Every mode mixed in one stream, large chunks (dynamic blocks, matches
    # that reach back across flush points).
    for kind, gen in kinds:
        vectors.append(vector("mixed-" + kind, gen() + gen(), 6, zlib.Z_DEFAULT_STRATEGY,
                              list(MODES), rng))
    print(json.dumps({"zlib_version": zlib.ZLIB_RUNTIME_VERSION, "vectors": vectors}, indent=0))


if __name__ == "__main__":
    main()

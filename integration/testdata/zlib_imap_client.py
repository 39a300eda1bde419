#!/usr/bin/env python3
"""An IMAP client that turns on COMPRESS=DEFLATE (RFC 4978) and flushes its
zlib compressor after each command with a given flush mode, as mbsync does
with Z_PARTIAL_FLUSH.

usage: zlib_imap_client.py HOST:PORT USER PASSWORD MODE

MODE is Z_SYNC_FLUSH, Z_PARTIAL_FLUSH, Z_FULL_FLUSH or Z_BLOCK. After
COMPRESS it sends NOOP, SELECT INBOX, FETCH 1 (BODY.PEEK[]) and LOGOUT,
prints what the server says (and "BODY-SHA256 <hex>" for the fetched
message), and exits 1 if a command is not answered within 10 seconds or
is not answered OK.
"""
import hashlib
import re
import socket
import sys
import zlib

TIMEOUT = 10


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.deflate = None
        self.inflate = None

    def send(self, line):
        data = line.encode() + b"\r\n"
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(self.mode)
        self.sock.sendall(data)

    def fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise SystemExit("no answer within %d seconds (have %r)" % (TIMEOUT, self.buf))
        if not chunk:
            raise SystemExit("connection closed (have %r)" % self.buf)
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def literal(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def command(self, tag, line):
        print("C:", tag, line)
        self.send(tag + " " + line)
        while True:
            resp = self.line()
            print("S:", resp)
            m = re.search(r"\{(\d+)\}$", resp)
            if m:
                body = self.literal(int(m.group(1)))
                print("BODY-SHA256", hashlib.sha256(body).hexdigest())
            if resp.startswith(tag + " "):
                if not resp.startswith(tag + " OK"):
                    raise SystemExit("%s %s: %s" % (tag, line, resp))
                return


def main():
    addr, user, password, mode = sys.argv[1:5]
    c = Conn(addr)
    print("S:", c.line())
    quote = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    c.command("1", "LOGIN %s %s" % (quote(user), quote(password)))
    c.command("2", "COMPRESS DEFLATE")
    if c.buf:
        raise SystemExit("data after the COMPRESS answer: %r" % c.buf)
    c.mode = getattr(zlib, mode)
    c.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.inflate = zlib.decompressobj(-15)
    c.command("3", "NOOP")
    c.command("4", "SELECT INBOX")
    c.command("5", "FETCH 1 (BODY.PEEK[])")
    c.command("6", "LOGOUT")


if __name__ == "__main__":
    main()

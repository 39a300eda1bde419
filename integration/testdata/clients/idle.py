"""IDLE through imapfront with Python's imaplib, as a mail notifier does it.

usage: idle.py HOST PORT CAFILE USER PASSWORD MAILBOX

Logs in over IMAPS (verifying the certificate against CAFILE only), selects
MAILBOX, sends IDLE and prints "IDLING <exists>" once the server says "+".
It then waits (at most 60 s) for an EXISTS above that count, prints
"EXISTS <n>", ends IDLE with DONE and logs out. Every server line read is
echoed with "S: ". imaplib before Python 3.14 has no idle(): the command is
written and read by hand, as such programs do.
"""
import imaplib
import re
import ssl
import sys

host, port, cafile, user, password, mailbox = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=60)
m.login(user, password)
typ, data = m.select('"%s"' % mailbox)
if typ != "OK":
    sys.exit("SELECT %s: %s %s" % (mailbox, typ, data))
exists = int(data[0])
tag = m._new_tag()
m.send(tag + b" IDLE\r\n")
line = m.readline()
print("S:", line.decode(errors="replace").rstrip(), flush=True)
if not line.startswith(b"+"):
    sys.exit("IDLE was not accepted")
print("IDLING", exists, flush=True)
while True:
    line = m.readline()  # the socket's 60 s timeout bounds the wait
    if not line:
        sys.exit("connection closed during IDLE")
    print("S:", line.decode(errors="replace").rstrip(), flush=True)
    found = re.match(rb"\* (\d+) EXISTS", line)
    if found and int(found.group(1)) > exists:
        print("EXISTS", int(found.group(1)), flush=True)
        break
m.send(b"DONE\r\n")
while True:
    line = m.readline()
    print("S:", line.decode(errors="replace").rstrip(), flush=True)
    if not line or line.startswith(tag + b" "):
        break
if not line.startswith(tag + b" OK"):
    sys.exit("IDLE did not end with OK")
m.logout()
print("DONE", flush=True)

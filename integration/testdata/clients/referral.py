"""A referral-aware client (RFC 2193) with Python's imaplib.

usage: referral.py HOST PORT CAFILE USER PASSWORD MAILBOX

Logs in over IMAPS (verifying the certificate against CAFILE only), says
it understands referrals with RLIST "" "*", then SELECTs MAILBOX. The
answer must be NO [REFERRAL imap://;AUTH=*@host:port/mailbox]; it prints
"REFERRAL <url>", follows the URL (plain IMAP to that server, the same
user and password) and prints "SELECTED <mailbox> <exists>" when the
mailbox opens there.
"""
import imaplib
import re
import sys
import ssl
import urllib.parse

host, port, cafile, user, password, mailbox = sys.argv[1:7]
imaplib.Commands.setdefault("RLIST", ("AUTH", "SELECTED"))  # not in imaplib's table
ctx = ssl.create_default_context(cafile=cafile)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=60)
m.login(user, password)
typ, data = m._simple_command("RLIST", '""', '"*"')
print("RLIST", typ, len(m.untagged_responses.get("LIST", [])), flush=True)
typ, data = m.select('"%s"' % mailbox)
text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
print("SELECT", typ, text, flush=True)
found = re.match(r"\[REFERRAL (imap://[^\]\s]+)\]", text)
if typ != "NO" or not found:
    sys.exit("no referral for %s" % mailbox)
url = found.group(1)
print("REFERRAL", url, flush=True)
m.logout()

# RFC 5092: imap://[;AUTH=*@]host[:port]/enc-mailbox
parts = urllib.parse.urlsplit(url)
netloc = parts.netloc.rpartition("@")[2]
rhost, _, rport = netloc.partition(":")
rmailbox = urllib.parse.unquote(parts.path.lstrip("/"))
r = imaplib.IMAP4(rhost, int(rport or 143), timeout=60)
r.login(user, password)
typ, data = r.select('"%s"' % rmailbox, readonly=True)
if typ != "OK":
    sys.exit("SELECT %s at %s: %s %s" % (rmailbox, netloc, typ, data))
print("SELECTED", rmailbox, int(data[0]), flush=True)
r.logout()

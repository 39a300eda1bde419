package frontend

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapfront/imapfront/zinflate"
)

// clientStreams are what zlib clients send after COMPRESS DEFLATE, one
// stream per flush mode (testdata/gen_compress_client.py).
type clientStream struct {
	Mode     string
	Stream   []byte
	Commands []struct {
		Line string
		In   int // compressed bytes sent once the command is flushed
	}
}

func loadClientStreams(t *testing.T) []clientStream {
	t.Helper()
	b, err := os.ReadFile("testdata/compress_client.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Streams []clientStream }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Streams) != 4 {
		t.Fatalf("%d streams, want one per flush mode", len(f.Streams))
	}
	return f.Streams
}

// compressed sends COMPRESS DEFLATE and returns a client for the rest of
// the session: its responses are decoded with zinflate (as zlib's inflate
// would: at once, whatever the flush), and what it sends goes through
// wrap (nil: the caller writes compressed bytes to nc itself).
func (c *client) compressed(tag string, wrap func(net.Conn) net.Conn) *client {
	c.T.Helper()
	c.OK(tag, "COMPRESS DEFLATE")
	nc := c.Conn
	if wrap != nil {
		nc = wrap(c.Conn)
	}
	return newClient(c.T, nc, bufio.NewReader(zinflate.NewReader(c.R)))
}

// flateConn compresses each Write with compress/flate and sync-flushes it.
type flateConn struct {
	net.Conn
	w *flate.Writer
}

func newFlateConn(nc net.Conn) net.Conn {
	w, _ := flate.NewWriter(nc, flate.DefaultCompression)
	return &flateConn{Conn: nc, w: w}
}

func (c *flateConn) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	return n, c.w.Flush()
}

// TestCompressClientFlushModes: after COMPRESS DEFLATE, a client whose
// zlib compressor flushes each command with Z_SYNC_FLUSH, Z_PARTIAL_FLUSH
// (mbsync), Z_FULL_FLUSH or Z_BLOCK has every command answered before it
// sends another byte, whether its bytes go out together or one per write.
func TestCompressClientFlushModes(t *testing.T) {
	for _, s := range loadClientStreams(t) {
		for _, bytewise := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bytewise=%v", s.Mode, bytewise), func(t *testing.T) {
				f := newFixture(t, nil)
				c := f.dial(t)
				c.OK("c1", "LOGIN alice alicepw")
				zc := c.compressed("c2", nil)
				sent := 0
				for _, cmd := range s.Commands {
					chunk := s.Stream[sent:cmd.In]
					sent = cmd.In
					step := len(chunk)
					if bytewise {
						step = 1
					}
					for len(chunk) > 0 {
						if _, err := c.Conn.Write(chunk[:step]); err != nil {
							t.Fatal(err)
						}
						chunk = chunk[step:]
					}
					tag, _, _ := strings.Cut(cmd.Line, " ")
					u, done := zc.Until(tag)
					if !strings.HasPrefix(done, tag+" OK") {
						t.Fatalf("%s after %s: %q (untagged %q)", cmd.Line, s.Mode, done, u)
					}
					if strings.Contains(cmd.Line, "FETCH") && !strings.Contains(strings.Join(u, "\n"), "first message") {
						t.Fatalf("FETCH after %s: %q", s.Mode, u)
					}
				}
			})
		}
	}
}

// TestCompressResponsesSyncFlushed: each response imapfront sends under
// COMPRESS ends with a sync flush (the empty stored block 00 00 ff ff),
// so that any zlib client decodes it without more input. compress/flate
// on the client side hands out bytes only at such a block, so the tagged
// line arriving through it shows the flush; the raw bytes show where.
func TestCompressResponsesSyncFlushed(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("s1", "LOGIN alice alicepw")
	c.OK("s2", "COMPRESS DEFLATE")
	var raw bytes.Buffer
	zc := newClient(t, newFlateConn(c.Conn), bufio.NewReader(flate.NewReader(io.TeeReader(c.R, &raw))))
	for i, cmd := range []string{"NOOP", "SELECT INBOX", "FETCH 1 (BODY.PEEK[])", `LIST "" "*"`, "BOGUS", "NOOP"} {
		tag := fmt.Sprintf("s%d", i+3)
		zc.Do(tag, cmd)
		if !bytes.HasSuffix(raw.Bytes(), []byte{0, 0, 0xff, 0xff}) {
			t.Fatalf("%s: the compressed response does not end with a sync flush: ...% x", cmd, raw.Bytes()[max(0, raw.Len()-8):])
		}
	}
}

// bigMessage returns a message of about n bytes of mail-like text lines.
func bigMessage(n int) []byte {
	rng := rand.New(rand.NewPCG(14, 4978))
	words := strings.Fields("imapfront murder mailbox deflate partial flush mbsync cyrus dovecot alice bob =3D quoted printable")
	var b bytes.Buffer
	b.WriteString("From: alice@example.org\r\nSubject: ten megabytes\r\n\r\n")
	line := 0
	for b.Len() < n-2 {
		w := words[rng.IntN(len(words))]
		if line+len(w) > 76 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(w)
		b.WriteByte(' ')
		line += len(w) + 1
	}
	b.Truncate(n - 2)
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestCompressAppend10MB: a 10 MB APPEND sent compressed arrives intact at
// the backend, and FETCHing it back through the compressed session gives
// the same bytes.
func TestCompressAppend10MB(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	c.OK("b1", "LOGIN alice alicepw")
	zc := c.compressed("b2", newFlateConn)
	msg := bigMessage(10 << 20)
	zc.Send(fmt.Sprintf("b3 APPEND INBOX {%d}", len(msg)))
	if l := zc.Line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	_ = zc.Conn.SetWriteDeadline(time.Now().Add(slowStep))
	for rest := msg; len(rest) > 0; {
		n := min(len(rest), 64<<10)
		if _, err := zc.Conn.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	zc.Send("")
	if done := slowTagged(t, zc, "b3"); !strings.HasPrefix(done, "b3 OK") {
		t.Fatalf("APPEND: %q", done)
	}
	want := sha256.Sum256(msg)

	direct, err := imapclient.DialInsecure(f.a.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	must(t, direct.Login("alice", "alicepw").Wait())
	if _, err := direct.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := direct.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH from the backend: %d messages, %v", len(msgs), err)
	}
	if got := msgs[0].FindBodySection(body); sha256.Sum256(got) != want {
		t.Fatalf("the backend has %d bytes, not the %d sent", len(got), len(msg))
	}

	zc.OK("b4", "SELECT INBOX")
	zc.Send("b5 FETCH 2 (BODY.PEEK[])")
	if head := zc.Line(); head != fmt.Sprintf("* 2 FETCH (BODY[] {%d}", len(msg)) && head != fmt.Sprintf("* 2 FETCH (UID 2 BODY[] {%d}", len(msg)) {
		t.Fatalf("FETCH: %q", head)
	}
	h := sha256.New()
	_ = zc.Conn.SetReadDeadline(time.Now().Add(slowStep))
	if _, err := io.CopyN(h, zc.R, int64(len(msg))); err != nil || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("the 10 MB FETCHed back through COMPRESS differ (%v)", err)
	}
	if done := slowTagged(t, zc, "b5"); !strings.HasPrefix(done, "b5 OK") {
		t.Fatalf("FETCH: %q", done)
	}
}

// slowStep bounds the steps that move 10 MB, which take longer than
// client.line's 10 seconds under the race detector.
const slowStep = 2 * time.Minute

// slowTagged is client.until with slowStep to wait: it returns the line
// tagged tag.
func slowTagged(t *testing.T, c *client, tag string) string {
	t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(slowStep))
	for {
		l, err := c.R.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %s: %v (got %q)", tag, err, l)
		}
		if l = strings.TrimSuffix(l, "\r\n"); strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
}

package frontend

import (
	"compress/flate"
	"io"
	"net"
	"strings"

	"github.com/imapfront/imapfront/zinflate"
)

// cmdCompress turns on COMPRESS=DEFLATE (RFC 4978) toward the client,
// independently of the backends: raw DEFLATE both ways, each write flushed
// so that responses are never held back.
func (sess *session) cmdCompress(cmd *command) error {
	var mech string
	if !sess.rd.ExpectSP() || !sess.rd.ExpectAtom(&mech) || !sess.rd.ExpectCRLF() {
		return sess.parseError("Usage: COMPRESS DEFLATE")
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		return bad("Unknown compression mechanism")
	}
	if sess.compressed {
		return no("COMPRESSIONACTIVE", "Compression is already active")
	}
	if sess.rd.Buffered() > 0 {
		// Data pipelined after COMPRESS was sent uncompressed: refuse.
		return bad("No pipelining after COMPRESS")
	}
	if err := sess.writeLine(cmd.tag + " OK DEFLATE active"); err != nil {
		return err
	}
	fw, err := flate.NewWriter(sess.nc, flate.DefaultCompression)
	if err != nil {
		return err
	}
	// zinflate, not flate.NewReader: clients that flush with Z_PARTIAL_FLUSH
	// (mbsync) or Z_BLOCK would wait forever for an answer (see zinflate).
	sess.setConn(&deflateConn{Conn: sess.nc, r: zinflate.NewReader(sess.nc), w: fw})
	sess.compressed = true
	return errAnswered
}

// deflateConn compresses what is written and decompresses what is read.
// Each Write ends with a sync flush (flate.Writer.Flush), so the client
// can decode each response as soon as it arrives.
type deflateConn struct {
	net.Conn
	r io.Reader
	w *flate.Writer
}

func (c *deflateConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *deflateConn) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	return n, c.w.Flush()
}

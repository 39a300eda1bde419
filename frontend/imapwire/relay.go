package imapwire

import (
	"errors"
	"io"
)

// LiteralFunc is called by Relay for each literal of a relayed command,
// after the text before the literal has been written to the destination.
// It writes the literal announcement and its CRLF to the destination in
// whatever form the destination needs (lit.Header() as the client sent it,
// or a LITERAL+ form, waiting for the destination's own "+" otherwise), and
// for a synchronising literal (lit.NonSync false) sends the client its
// continuation request. Returning an error abandons the command: Relay
// returns an *AbortedError wrapping it, after discarding a
// non-synchronising literal's data (a synchronising one is never sent).
type LiteralFunc func(lit Literal) error

// ErrNotAtStart is returned by RelayCommand once the command's first line
// has been left behind (a literal of it has been consumed).
var ErrNotAtStart = errors.New("imapwire: command no longer at its first line")

// RelayCommand copies the whole current command to w as the client sent
// it, tag and name included, as Relay does. It must be called before any
// literal of the command has been consumed. Because the tag is written by
// RelayCommand itself, a literal over Options.MaxLiteral on the first line
// is refused before anything at all reaches w.
func (r *Reader) RelayCommand(w io.Writer, onLiteral LiteralFunc) error {
	if r.err == nil && (!r.inCmd || !r.firstLine) {
		return ErrNotAtStart
	}
	r.pos = 0
	return r.Relay(w, onLiteral)
}

// Relay copies the rest of the current command, from the parse position,
// to w: line text byte for byte, each line ended with CRLF, and each
// literal's data streamed from the client (never held whole in memory).
// With onLiteral nil, a literal announcement is written as the client sent
// it and Options.OnSyncLiteral is called for a synchronising literal.
//
// A literal over Options.MaxLiteral gives a *TooBigError before anything of
// its line is written to w (text of earlier lines of the same command may
// have been written: the destination then holds a partial command; so does
// anything the caller wrote to w before calling Relay, such as the tag,
// which RelayCommand avoids). A write
// error on w gives an *AbortedError once the client's side of the command
// has been skipped. Relay does not flush w.
func (r *Reader) Relay(w io.Writer, onLiteral LiteralFunc) error {
	if !r.ready() {
		return r.err
	}
	for {
		lit, start, ok := tailLiteral(r.line, r.pos)
		if !ok {
			_, err := w.Write(r.line[r.pos:])
			if err == nil {
				_, err = io.WriteString(w, "\r\n")
			}
			r.pos = len(r.line)
			if err != nil {
				r.err = r.abort(0, false, err)
				return r.err
			}
			r.inCmd = false
			return nil
		}
		if lit.Size > r.opts.MaxLiteral {
			r.refuse(lit, r.opts.MaxLiteral, false)
			return r.err
		}
		if _, err := w.Write(r.line[r.pos:start]); err != nil {
			r.err = r.abort(literalUnread(lit), true, err)
			return r.err
		}
		r.pos = len(r.line)
		var err error
		if onLiteral != nil {
			err = onLiteral(lit)
		} else {
			_, err = io.WriteString(w, lit.Header()+"\r\n")
			if err == nil && !lit.NonSync && r.opts.OnSyncLiteral != nil {
				err = r.opts.OnSyncLiteral(lit.Size)
			}
		}
		if err != nil {
			r.err = r.abort(literalUnread(lit), true, err)
			return r.err
		}
		dst := &trackingWriter{w: w}
		if r.copyBuf == nil {
			r.copyBuf = make([]byte, 32<<10)
		}
		src := &io.LimitedReader{R: r.br, N: lit.Size}
		_, err = io.CopyBuffer(dst, src, r.copyBuf)
		if err == nil && src.N > 0 {
			err = io.EOF
		}
		if err != nil {
			if dst.err != nil {
				r.needLine = true
				r.err = r.abort(src.N, false, dst.err)
				return r.err
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = err
			return err
		}
		if err := r.readLine(); err != nil {
			if err == errOverlong {
				r.err = r.tooLong(r.tag)
			} else {
				r.err = err
			}
			return r.err
		}
	}
}

// literalUnread is how much of a literal the client sends when it is
// refused: all of a non-synchronising one, none of a synchronising one.
func literalUnread(lit Literal) int64 {
	if lit.NonSync {
		return lit.Size
	}
	return 0
}

// trackingWriter remembers a write error, to tell it from a read error in
// io.CopyN.
type trackingWriter struct {
	w   io.Writer
	err error
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
	}
	return n, err
}

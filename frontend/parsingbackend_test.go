package frontend

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imapfront/imapfront/frontend/backend"
	"github.com/imapfront/imapfront/imapwire"
)

// parsingBackend is an IMAP server for tests that parses every command it
// receives by the grammar (with imapwire, as a real server would) and
// records it: what a backend behind imapfront really got, command by
// command. It logs anyone in, answers OK, streams APPEND literals and keeps
// only messages whose command completed.
type parsingBackend struct {
	addr        string
	literalPlus bool

	mu       sync.Mutex
	commands []recorded
	messages [][]byte // bodies of completed APPENDs
	// partial holds what arrived of APPEND literals whose command never
	// completed (the connection closed mid-command): a real server stores
	// nothing then.
	partial [][]byte
	// closed is signalled each time a connection ends.
	closed chan struct{}
	// stallLiterals makes the backend never answer a synchronising
	// literal's announcement (a hung server), until the test ends.
	stallLiterals atomic.Bool
	stop          chan struct{}
}

// recorded is one command a parsingBackend received.
type recorded struct {
	tag, name string // name includes "UID " for UID commands
}

func startParsingBackend(t testing.TB, literalPlus bool) *parsingBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &parsingBackend{addr: ln.Addr().String(), literalPlus: literalPlus, closed: make(chan struct{}, 64), stop: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { close(rb.stop); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					select {
					case rb.closed <- struct{}{}:
					default:
					}
				}()
				defer nc.Close()
				rb.serve(nc)
			}()
		}
	}()
	return rb
}

func (rb *parsingBackend) caps() string {
	c := "IMAP4rev1 SASL-IR AUTH=PLAIN ID ENABLE UNSELECT MULTIAPPEND CATENATE UIDPLUS"
	if rb.literalPlus {
		c += " LITERAL+"
	}
	return c
}

func (rb *parsingBackend) record(tag, name string) {
	rb.mu.Lock()
	rb.commands = append(rb.commands, recorded{tag, name})
	rb.mu.Unlock()
}

// Commands returns what the backend received so far.
func (rb *parsingBackend) Commands() []recorded {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]recorded(nil), rb.commands...)
}

func (rb *parsingBackend) serve(nc net.Conn) {
	w := imapwire.NewWriter(nc)
	r := imapwire.NewReader(bufio.NewReader(nc), imapwire.Options{
		MaxLine: 1 << 20, MaxBufferedLiteral: 1 << 20, MaxLiteral: 64 << 20,
		OnSyncLiteral: func(int64) error {
			if rb.stallLiterals.Load() {
				<-rb.stop
				return io.ErrClosedPipe
			}
			return w.Continue("go ahead")
		},
	})
	w.Untagged("OK [CAPABILITY " + rb.caps() + "] recording backend ready")
	for {
		cmd, err := r.ReadCommand()
		if err != nil {
			if imapwire.Fatal(err) {
				return
			}
			w.StatusResponse(tagOrStar(r.Tag()), imapwire.BAD, "", "syntax")
			continue
		}
		name := cmd.Name
		if name == "UID" {
			var sub string
			if !r.ExpectSP() || !r.ExpectAtom(&sub) {
				w.StatusResponse(cmd.Tag, imapwire.BAD, "", "syntax")
				continue
			}
			name = "UID " + strings.ToUpper(sub)
		}
		switch name {
		case "APPEND":
			bodies, cut, ok := rb.readAppend(r)
			if !ok {
				if cut != nil || imapwire.Fatal(r.Err()) {
					rb.mu.Lock()
					rb.partial = append(rb.partial, cut)
					rb.mu.Unlock()
					return
				}
				w.StatusResponse(cmd.Tag, imapwire.BAD, "", "syntax")
				continue
			}
			rb.record(cmd.Tag, name)
			rb.mu.Lock()
			rb.messages = append(rb.messages, bodies...)
			rb.mu.Unlock()
			w.StatusResponse(cmd.Tag, imapwire.OK, "APPENDUID 1 1", "APPEND completed")
			continue
		case "IDLE":
			r.ExpectCRLF()
			rb.record(cmd.Tag, name)
			w.Continue("idling")
			if _, err := r.ReadLine(100); err != nil {
				return
			}
			w.StatusResponse(cmd.Tag, imapwire.OK, "", "IDLE done")
			continue
		}
		if _, err := r.Args(); err != nil {
			if imapwire.Fatal(err) {
				return
			}
			w.StatusResponse(cmd.Tag, imapwire.BAD, "", "syntax")
			continue
		}
		rb.record(cmd.Tag, name)
		switch name {
		case "AUTHENTICATE", "LOGIN":
			w.StatusResponse(cmd.Tag, imapwire.OK, "CAPABILITY "+rb.caps(), "logged in")
		case "SELECT", "EXAMINE":
			w.Untagged("1 EXISTS")
			w.StatusResponse(cmd.Tag, imapwire.OK, "READ-WRITE", "selected")
		case "LOGOUT":
			w.Untagged("BYE bye")
			w.StatusResponse(cmd.Tag, imapwire.OK, "", "")
			return
		default:
			w.StatusResponse(cmd.Tag, imapwire.OK, "", name+" done")
		}
	}
}

// readAppend parses the rest of an APPEND (MULTIAPPEND, CATENATE TEXT
// parts) and returns its message bodies, or false if the command did not
// complete, with what arrived of a literal cut short.
func (rb *parsingBackend) readAppend(r *imapwire.Reader) (bodies [][]byte, cut []byte, ok bool) {
	var mbox string
	if !r.ExpectSP() || !r.ExpectMailbox(&mbox) {
		return nil, nil, false
	}
	for n := 0; ; n++ {
		if n > 0 && r.AtEnd() {
			return bodies, nil, r.ExpectCRLF()
		}
		if !r.ExpectSP() {
			return nil, nil, false
		}
		if r.Peek() == '(' {
			if !r.ExpectList(func() error {
				var f string
				r.ExpectFlag(&f)
				return nil
			}) || !r.ExpectSP() {
				return nil, nil, false
			}
		}
		var date string
		if r.Peek() == '"' && (!r.Quoted(&date) || !r.ExpectSP()) {
			return nil, nil, false
		}
		var body []byte
		if r.IsLiteralNext() {
			_, lr, err := r.LiteralReader()
			if err != nil {
				return nil, nil, false
			}
			if body, err = io.ReadAll(lr); err != nil {
				return nil, append([]byte{}, body...), false
			}
		} else {
			var kw string
			if !r.ExpectAtom(&kw) || !r.ExpectSP() || !r.ExpectSpecial('(') {
				return nil, nil, false
			}
			for i := 0; ; i++ {
				if i > 0 {
					if r.Special(')') {
						break
					}
					if !r.ExpectSP() {
						return nil, nil, false
					}
				}
				var part string
				if !r.ExpectAtom(&part) || !r.ExpectSP() {
					return nil, nil, false
				}
				if strings.EqualFold(part, "URL") {
					var u string
					if !r.ExpectAString(&u) {
						return nil, nil, false
					}
					body = append(body, "<"+u+">"...)
					continue
				}
				_, lr, err := r.LiteralReader()
				if err != nil {
					return nil, nil, false
				}
				b, err := io.ReadAll(lr)
				if err != nil {
					return nil, append([]byte{}, b...), false
				}
				body = append(body, b...)
			}
		}
		bodies = append(bodies, body)
	}
}

// Partial returns what arrived of APPENDs cut short.
func (rb *parsingBackend) Partial() [][]byte {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([][]byte(nil), rb.partial...)
}

// Messages returns the bodies of the APPENDs that completed.
func (rb *parsingBackend) Messages() [][]byte {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([][]byte(nil), rb.messages...)
}

// recordingFixture is a front end whose mailboxes for alice are on a
// parsingBackend: "INBOX", "Rec" and "Other" on be-r, "Away" on the
// fixture's memory backend be-b.
func recordingFixture(t testing.TB, literalPlus bool, mutate func(*Options)) (*fixture, *parsingBackend, *dispatchLog) {
	t.Helper()
	rb := startParsingBackend(t, literalPlus)
	dl := &dispatchLog{}
	f := newFixture(t, func(o *Options) {
		o.Backends["be-r"] = &Backend{Server: "be-r", Dial: backend.Options{Addr: rb.addr}, ProxyUser: "proxy", ProxyPassword: "proxypw", Separator: '/'}
		o.DefaultBackend = "be-r"
		if mutate != nil {
			mutate(o)
		}
	})
	f.srv.onDispatch = dl.add
	own := "alice\tlrswipkxtean\t"
	f.replica.Put("user.alice", false, "be-r!default", own)
	f.replica.Put("user.alice.Rec", false, "be-r!default", own)
	f.replica.Put("user.alice.Other", false, "be-r!default", own)
	f.replica.Put("user.alice.Away", false, "be-b!default", own)
	return f, rb, dl
}

// dispatchLog records the commands the front end parsed and dispatched.
type dispatchLog struct {
	mu   sync.Mutex
	cmds []recorded
}

func (d *dispatchLog) add(tag, name string) {
	d.mu.Lock()
	d.cmds = append(d.cmds, recorded{tag, name})
	d.mu.Unlock()
}

// internalCommands are the commands the front end sends on its own (with
// its own X<n> tags): logging in, capabilities, ID, ENABLE, leaving a
// mailbox, subscriptions and LIST-STATUS, logging out.
var internalCommands = map[string]bool{
	"AUTHENTICATE": true, "CAPABILITY": true, "ID": true, "ENABLE": true,
	"UNSELECT": true, "LSUB": true, "STATUS": true, "LOGOUT": true,
}

// checkOnlyParsedCommands asserts the smuggling property: every command
// the backend received is either one of the front end's own (an internal
// command with an X<n> tag) or one that the front end parsed and
// dispatched, at most as many times as it was dispatched.
func checkOnlyParsedCommands(t testing.TB, input []byte, rb *parsingBackend, dl *dispatchLog) {
	t.Helper()
	dl.mu.Lock()
	budget := map[recorded]int{}
	for _, c := range dl.cmds {
		budget[c]++
	}
	dl.mu.Unlock()
	for _, c := range rb.Commands() {
		if budget[c] > 0 {
			budget[c]--
			continue
		}
		if isInternalTag(c.tag) && internalCommands[c.name] {
			continue
		}
		t.Fatalf("the backend received %q %q, which the front end never parsed as a command, from input %q", c.tag, c.name, input)
	}
}

func isInternalTag(tag string) bool {
	if len(tag) < 2 || tag[0] != 'X' {
		return false
	}
	for _, c := range tag[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

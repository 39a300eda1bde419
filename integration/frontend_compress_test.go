//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imapfront/imapfront/integration/itenv"
)

// TestFrontendCompressZlibClient (issue 14): python3's zlib, flushing
// with Z_PARTIAL_FLUSH as mbsync does (and with each other flush mode),
// turns on COMPRESS=DEFLATE through imapfront and has NOOP, SELECT and
// FETCH answered at once; the message equals a direct FETCH from be1.
// The same client run directly against Cyrus is the reference.
func TestFrontendCompressZlibClient(t *testing.T) {
	env := itenv.Load(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 (with zlib) is needed: %v", err)
	}
	f := startFront(t, env, feOptions{})
	alice := env.MustUser(t, "alice")
	direct := dialIMAP(t, env, env.CyrusBE1, plain)
	if err := direct.Login("alice", alice.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fetchBody(t, direct, "INBOX", 1))
	wantBody := "BODY-SHA256 " + hex.EncodeToString(sum[:])

	run := func(t *testing.T, addr, mode string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "python3", "testdata/zlib_imap_client.py", addr, "alice", alice.Password, mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zlib client with %s against %s: %v\n%s", mode, addr, err, out)
		}
		if !strings.Contains(string(out), wantBody) || !strings.Contains(string(out), "S: 6 OK") {
			t.Fatalf("zlib client with %s against %s: no %q or LOGOUT answer\n%s", mode, addr, wantBody, out)
		}
	}
	t.Run("cyrus-direct/Z_PARTIAL_FLUSH", func(t *testing.T) { run(t, env.CyrusBE1, "Z_PARTIAL_FLUSH") })
	for _, mode := range []string{"Z_PARTIAL_FLUSH", "Z_SYNC_FLUSH", "Z_FULL_FLUSH", "Z_BLOCK"} {
		t.Run("imapfront/"+mode, func(t *testing.T) { run(t, f.addr, mode) })
	}
}

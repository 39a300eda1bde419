package router

import (
	"errors"
	"testing"
)

// FuzzReplicaReads feeds arbitrary users, references, patterns and names
// to the read side: no panic, every listed mailbox matches the pattern and
// resolves for the user, and Resolve fails only with the documented errors.
func FuzzReplicaReads(f *testing.F) {
	f.Add("bob", "", "*", "Other Users/alice/Projects")
	f.Add("alice", "Other Users", "%", "inbox/x")
	f.Add("alice", "", "%/%a*", "Entw&APw-rfe")
	f.Add("cyrus", "Shared Folders/", "*", "Shared Folders/user")
	r := transcriptReplica(f)
	ns := r.Namespace()
	f.Fuzz(func(t *testing.T, user, ref, pattern, name string) {
		if len(pattern) > 200 || len(ref) > 200 {
			return
		}
		for _, it := range r.List(user, ref, pattern, ListOptions{}) {
			if pattern == "" {
				continue
			}
			if !ns.match(it.Name, ns.canonicalPattern(ref, pattern)) {
				t.Fatalf("LIST %q %q returned %q", ref, pattern, it.Name)
			}
			if it.Internal != "" {
				if _, err := r.Resolve(user, it.Name); err != nil {
					t.Fatalf("listed %q does not resolve: %v", it.Name, err)
				}
			}
		}
		_, err := r.Resolve(user, name)
		if err != nil && !errors.Is(err, ErrNoSuchMailbox) && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("Resolve(%q, %q): unexpected %v", user, name, err)
		}
		if in, err := FromPersonalName(user, name, '.'); err == nil {
			if back, err := PersonalName(user, in, '.'); err == nil && !IsInbox(name) && back != name {
				t.Fatalf("personal round trip %q -> %q -> %q", name, in, back)
			}
		}
	})
}

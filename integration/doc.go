// Package integration holds imapfront's end-to-end tests against real
// servers: a Cyrus IMAP Murder (MUPDATE master, two backends, Cyrus's own
// front end), Dovecot with a master user, and an MIT Kerberos KDC.
//
// The tests carry the build tag "integration", so go test ./... runs none of
// them. integration/run.sh installs and starts the servers on 127.0.0.1,
// seeds users, mailboxes and messages, exports their addresses in
// IMAPFRONT_IT_ variables (read with package itenv) and runs
//
//	go test -tags integration ./integration/...
//
// A test whose server is missing fails, naming the missing variable; it never
// skips. See integration/README.md.
package integration

// Package lmtp is imapfront's LMTP proxy (RFC 2033): an MTA delivers to
// imapfront, which resolves each recipient's mailbox through the replica
// of the MUPDATE database and relays the message to the backends that
// hold the mailboxes, one LMTP transaction per backend, returning each
// recipient's own reply in RCPT order.
//
// The parts:
//   - addr.go: the recipient address parser (user, user+folder, domain);
//   - directory.go: the Directory interface (mailbox → backend) and its
//     replica adapter, which never bounces while the replica is not current;
//   - backend.go: the connection to one backend's LMTP service;
//   - server.go: the listener and the sessions;
//   - spool.go: the message held for fan-out (memory, then a temporary file).
package lmtp

// Package router is imapfront's view of the Cyrus Murder mailbox database.
//
// It has these parts:
//
//   - Namespace translates between the names a client sees (Cyrus
//     "altnamespace" with "unixhierarchysep": INBOX, "Projects/Murder",
//     "Other Users/bob/x", "Shared Folders/shared/x") and Cyrus internal
//     names ("user.alice", "user.alice.Projects.Murder", "shared.x").
//   - The modified UTF-7 codec (RFC 3501 section 5.1.3) that validates names.
//   - ACL and Rights: Cyrus ACL strings and RFC 4314 rights.
//   - Replica: an in-memory copy of the MUPDATE database fed by an UPDATE
//     stream (its methods match mupdatec.Sink), answering Resolve, Rights
//     and LIST/LSUB without ever making a reader wait for the writer.
//   - Finder: the same read interface backed by on-demand MUPDATE FIND
//     lookups through an expirable LRU, for sites without an UPDATE stream.
//
// The package imports nothing else from imapfront.
package router

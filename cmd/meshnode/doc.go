// Command meshnode runs and controls a meshnode node.
//
//	meshnode init   --home DIR [--role member|host|bot] [--nick NICK] [--listen MULTIADDR ...] [--unencrypted] [--classic]
//	meshnode run    --home DIR [--listen ...] [--api ADDR] [--host-policy own|allowlist|open] [--allow ID ...]
//	                [--bootstrap MULTIADDR ...] [--metrics ADDR] [--log-level LEVEL] [--log-format text|json] [--role ROLE]
//	meshnode id     --home DIR [--json]
//	meshnode status --home DIR [--json]
//
//	meshnode group create NAME [--host MULTIADDR ...]   (prints the invite as its last line)
//	meshnode group join INVITE [--nick NICK]
//	meshnode group list [--json]
//	meshnode group invite GROUP
//	meshnode group members GROUP [--json]
//	meshnode send [--to FINGERPRINT|NICK | --reply-to ID] GROUP TEXT...|-  [--json]
//	meshnode send --file PATH GROUP [--json]
//	meshnode messages GROUP [--json] [--follow] [--limit N] [--unread]
//	meshnode react ID EMOJI [--add|--remove] [--json]
//	meshnode edit ID TEXT...|- [--json]
//	meshnode delete ID [--json]
//	meshnode download MSG_ID [--out PATH] [--force]
//	meshnode read GROUP [--json]
//	meshnode search QUERY... [--group GROUP] [--json] [--limit N]
//	meshnode fetch GROUP [--json]
//
// messages, group list and search read the home's member database
// directly when no daemon runs (docs/messages.md).
//
// GROUP is a group ID or a unique group name. The JSON output of these
// commands (field names of package api's GroupInfo, MemberInfo, Message,
// SendResult and CatchUpResult) is a contract for scripts; messages --json
// prints one object per line.
//
// --home defaults to $MESHNODE_HOME, else ~/.meshnode. The keystore
// passphrase comes from $MESHNODE_PASSPHRASE, else an interactive prompt.
// Every command but init and run talks to the running daemon through its
// control API (package api), found through the home's api.addr and
// api.token.
//
// This package only parses flags and prints; the work is done by packages
// daemon and api.
//
// # Flags for tests only
//
// init has hidden flags --kdf-time, --kdf-memory-kib and --kdf-threads that
// set the keystore's Argon2id cost. They exist so tests can create
// keystores quickly; lowering them weakens the passphrase protection, so do
// not use them for real keystores.
package main

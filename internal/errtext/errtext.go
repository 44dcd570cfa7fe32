// Package errtext turns error texts into what a user reads. Every package
// starts its error texts with its own name ("node: unknown group"), which
// helps in logs and is noise to a user, so a wrapped error reads
// "daemon: node: store: ...". The control API's messages and the CLI's
// output drop those names; the error codes, not the texts, are what
// scripts match on.
package errtext

import "regexp"

// packages are the names the project's error texts start with.
var prefix = regexp.MustCompile(`(^|: |\()(?:admission|api|contacts|daemon|node|store|relay|fetch|groupstate|keymgmt|directory|hostsync|reconcile|envelope|wire|testnet|bench): `)

// Strip removes the package names from an error text.
func Strip(msg string) string {
	for {
		out := prefix.ReplaceAllString(msg, "$1")
		if out == msg {
			return out
		}
		msg = out
	}
}

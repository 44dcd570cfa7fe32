// Package layering holds the one test that checks the layering of the
// whole tree (ARCHITECTURE §2): which of the project's packages each
// package may import, which may do I/O or reach the network, and that
// only the packages that assemble a node import the go-libp2p root
// package. It has no code of its own; see layering_test.go.
package layering

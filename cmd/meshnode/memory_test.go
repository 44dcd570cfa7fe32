package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"testing"
)

// A daemon runs with its role's soft memory limit (memory_limit_mib),
// which Go reports in the metrics: 128 MiB for a member.
func TestRunMemoryLimit(t *testing.T) {
	home, _ := initHome(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := startRun(t, home, "--metrics", addr)
	defer p.stop(t)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^go_gc_gomemlimit_bytes (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no go_gc_gomemlimit_bytes in the metrics:\n%.2000s", b)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || v != 128<<20 {
		t.Fatalf("go_gc_gomemlimit_bytes %s, want %d", m[1], 128<<20)
	}
}

package daemon

import (
	"context"
	"testing"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// BenchmarkStatus measures one authenticated GET /v1/status round trip
// over loopback TCP and over a Unix socket.
func BenchmarkStatus(b *testing.B) {
	for _, tc := range []struct {
		name string
		addr func(testing.TB) string
	}{
		{"tcp", func(testing.TB) string { return DefaultAPIAddr }},
		{"unix", func(tb testing.TB) string { return api.UnixPrefix + shortSocket(tb) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			res := initHome(b, node.RoleMember)
			startDaemon(b, res.Home, func(c *Config) { c.APIAddr = tc.addr(b) })
			c := client(b, res.Home)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Status(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

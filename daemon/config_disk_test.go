package daemon

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

func TestConfigDiskKeys(t *testing.T) {
	// Defaults: written by init, applied to the store.
	c, err := ParseConfig([]byte(`{"version":1,"role":"host"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Marshal()
	for _, k := range []string{`"disk_min_free_mib": 256`, `"disk_min_free_percent": 5`, `"disk_ballast_mib": 64`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("config.json lacks %s:\n%s", k, b)
		}
	}
	p := node.DefaultParams(node.RoleHost)
	c.applyTo(&p)
	if p.Store.Disk.MinFreeBytes != store.DefaultDiskParams().MinFreeBytes || p.Store.Disk.BallastBytes != 64<<20 {
		t.Errorf("default disk params %+v", p.Store.Disk)
	}

	c, err = ParseConfig([]byte(`{"version":1,"role":"host","disk_min_free_mib":2048,"disk_min_free_percent":1.5,"disk_ballast_mib":-1}`))
	if err != nil {
		t.Fatal(err)
	}
	c.applyTo(&p)
	if want := (store.DiskParams{MinFreeBytes: 2 << 30, MinFreePercent: 1.5, BallastBytes: 0, CheckInterval: p.Store.Disk.CheckInterval}); p.Store.Disk != want {
		t.Errorf("disk params %+v, want %+v", p.Store.Disk, want)
	}
	for _, bad := range []string{`"disk_min_free_mib":-5`, `"disk_min_free_percent":100`, `"disk_ballast_mib":-2`} {
		if _, err := ParseConfig([]byte(`{"version":1,"role":"host",` + bad + `}`)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestConfigDirectoryHosts(t *testing.T) {
	host := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWKbqHMYhePDr82RqQiJbeRWpu5CKm6z1LTA3h9D2jQwHS"
	c, err := ParseConfig([]byte(`{"version":1,"role":"member","directory_hosts":["` + host + `"]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := node.DefaultParams(node.RoleMember)
	c.applyTo(&p)
	if len(p.Contacts.DirectoryHosts) != 1 || p.Contacts.DirectoryHosts[0] != host {
		t.Errorf("directory hosts %v", p.Contacts.DirectoryHosts)
	}
	if _, err := ParseConfig([]byte(`{"version":1,"role":"member","directory_hosts":["/ip4/127.0.0.1/tcp/4001"]}`)); err == nil || !strings.Contains(err.Error(), "/p2p/") {
		t.Errorf("a directory host without /p2p/: %v", err)
	}
}

// memory_limit_mib: the role's default is written by init, -1 turns it
// off, and what is too small to run a node is refused.
func TestConfigMemoryLimit(t *testing.T) {
	for role, want := range map[string]int64{"host": 1024, "bot": 1024, "member": 128} {
		c, err := ParseConfig([]byte(`{"version":1,"role":"` + role + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if c.MemoryLimitMiB != want {
			t.Errorf("%s: memory_limit_mib %d, want %d", role, c.MemoryLimitMiB, want)
		}
		b, _ := c.Marshal()
		if !strings.Contains(string(b), fmt.Sprintf(`"memory_limit_mib": %d`, want)) {
			t.Errorf("%s: config.json lacks memory_limit_mib:\n%s", role, b)
		}
	}
	for v, ok := range map[string]bool{"-1": true, "64": true, "4096": true, "-2": false, "16": false} {
		_, err := ParseConfig([]byte(`{"version":1,"role":"member","memory_limit_mib":` + v + `}`))
		if (err == nil) != ok {
			t.Errorf("memory_limit_mib %s: %v", v, err)
		}
	}
	// A member's store is sized for a member (memberStoreParams), and the
	// ballast follows.
	c, _ := ParseConfig([]byte(`{"version":1,"role":"member"}`))
	p := node.DefaultParams(node.RoleMember)
	c.applyTo(&p)
	if c.DiskBallastMiB != 16 || p.Store.Disk.BallastBytes != 16<<20 || p.Store.Badger.MemTableSize > 4<<20 {
		t.Errorf("member: disk_ballast_mib %d, store %+v", c.DiskBallastMiB, p.Store.Badger)
	}
}

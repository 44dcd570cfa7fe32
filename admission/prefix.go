package admission

import (
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Key is what admission counts a remote by: the network prefix of its
// address (IPv4PrefixBits or IPv6PrefixBits long). The zero Key stands
// for a remote that is exempt from per-network limits (loopback when
// ExemptLoopback, or an address that is not IP); per-peer and total
// limits still apply to it.
type Key = netip.Prefix

// KeyOf returns the admission key of a remote address.
func (p Params) KeyOf(addr ma.Multiaddr) Key {
	if addr == nil {
		return Key{}
	}
	ip, err := manet.ToIP(addr)
	if err != nil {
		return Key{}
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return Key{}
	}
	return p.keyOfAddr(a)
}

// keyOfAddr is KeyOf for a parsed address.
func (p Params) keyOfAddr(a netip.Addr) Key {
	a = a.Unmap()
	if p.ExemptLoopback && a.IsLoopback() {
		return Key{}
	}
	bits := p.IPv4PrefixBits
	if a.Is6() {
		bits = p.IPv6PrefixBits
	}
	k, err := a.Prefix(bits)
	if err != nil {
		return Key{}
	}
	return k
}

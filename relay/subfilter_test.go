package relay

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

func TestParseTopic(t *testing.T) {
	m := envelope.MailboxID{7}
	h := TopicHash(m)
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{TopicName(m), true},
		{"", false},
		{TopicPrefix, false},
		{TopicPrefix + "zz", false},
		{TopicPrefix + strings.ToUpper(hex.EncodeToString(h[:])), false}, // one name per mailbox
		{TopicName(m) + "00", false},
		{"/meshnode/mbx/2/" + hex.EncodeToString(h[:]), false},
	} {
		got, ok := ParseTopic(tc.topic)
		if ok != tc.ok || (ok && got != h) {
			t.Errorf("ParseTopic(%.40q) = %x, %v; want ok %v", tc.topic, got, ok, tc.ok)
		}
	}
}

func TestSubscriptionParams(t *testing.T) {
	for name, tweak := range map[string]func(*Params){
		"per peer":       func(p *Params) { p.SubscriptionsPerPeer = 0 },
		"per prefix":     func(p *Params) { p.SubscriptionsPerPrefix = 0 },
		"max below peer": func(p *Params) { p.MaxSubscriptions = p.SubscriptionsPerPeer - 1 },
		"reserve all":    func(p *Params) { p.ReservedSubscriptions = p.MaxSubscriptions },
		"reserve < 0":    func(p *Params) { p.ReservedSubscriptions = -1 },
	} {
		p := DefaultParams()
		tweak(&p)
		if err := p.validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, p)
		}
	}
}

// A topic name is parsed only in its one canonical form.
func FuzzParseTopic(f *testing.F) {
	f.Add(TopicName(envelope.MailboxID{1}))
	f.Add(TopicPrefix + "zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := ParseTopic(s)
		if ok && TopicPrefix+hex.EncodeToString(h[:]) != s {
			t.Fatalf("%q parsed to %x", s, h)
		}
	})
}

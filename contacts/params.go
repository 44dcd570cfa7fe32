package contacts

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/keymgmt"
)

// Params tune a member's names and connection requests.
type Params struct {
	// DirectoryHosts are the multiaddrs (with /p2p/ID) of the directory
	// hosts to publish names on and look names up at; empty means the
	// node's Bootstrap peers.
	DirectoryHosts []string
	// PublishUserID publishes the member's user ID (its fingerprint) on
	// the directory hosts, so people who know it can ask to connect.
	PublishUserID bool
	// PackagesPerName is how many packages each host gets per name;
	// LowWater is the count at which the node tops them up.
	PackagesPerName int
	LowWater        int
	// PackageTTL is how long a published package is valid. Packages are
	// replaced (with a fresh request mailbox) after half of it.
	PackageTTL time.Duration
	// RefreshInterval is how often names are checked and topped up;
	// PollInterval how often request mailboxes are fetched.
	RefreshInterval time.Duration
	PollInterval    time.Duration
	// MaxRequestAge is how old a request may be when it is read, and how
	// long package secrets are kept after the packages expire.
	MaxRequestAge time.Duration
	// MaxPending bounds the requests held in quarantine.
	MaxPending int
	// AliasProofBits is the proof of work (leading zero bits, 0 for none,
	// at most keymgmt.MaxProofBits) that requests through an alias must
	// carry unless AddAlias is told otherwise; UserIDProofBits is the
	// same for the user ID. Each bit doubles the sender's work: 16 bits
	// is about 22 ms of one core (see keymgmt.DefaultAliasProofBits).
	AliasProofBits  uint8
	UserIDProofBits uint8
	// OfferKeyPackages keeps one fresh key package offered to every
	// connected contact over the connection group, so that a contact who
	// manages a group can add this member with AddContactToGroup
	// (frames.go).
	OfferKeyPackages bool
}

// DefaultParams returns sensible defaults.
func DefaultParams() Params {
	return Params{
		PublishUserID:   true,
		PackagesPerName: 8,
		LowWater:        2,
		PackageTTL:      7 * 24 * time.Hour,
		RefreshInterval: 10 * time.Minute,
		PollInterval:    time.Minute,
		MaxRequestAge:   14 * 24 * time.Hour,
		MaxPending:      256,
		AliasProofBits:  keymgmt.DefaultAliasProofBits,
		// People who know the user ID got it from the user; it is not
		// guessable, so spam through it is less likely than through an
		// alias.
		UserIDProofBits:  0,
		OfferKeyPackages: true,
	}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case p.PackagesPerName < 1 || p.PackagesPerName > directory.AbsMaxBlobs:
		return fmt.Errorf("Contacts.PackagesPerName %d outside [1, %d]", p.PackagesPerName, directory.AbsMaxBlobs)
	case p.LowWater < 0 || p.LowWater >= p.PackagesPerName:
		return fmt.Errorf("Contacts.LowWater %d outside [0, PackagesPerName)", p.LowWater)
	case p.PackageTTL < time.Minute:
		return errors.New("Contacts.PackageTTL below a minute")
	case p.RefreshInterval <= 0 || p.PollInterval <= 0 || p.MaxRequestAge <= 0 || p.MaxPending <= 0:
		return errors.New("Contacts intervals, MaxRequestAge and MaxPending must be positive")
	case p.AliasProofBits > keymgmt.MaxProofBits || p.UserIDProofBits > keymgmt.MaxProofBits:
		return fmt.Errorf("Contacts.AliasProofBits and UserIDProofBits must be at most %d", keymgmt.MaxProofBits)
	}
	for _, h := range p.DirectoryHosts {
		if _, err := peer.AddrInfoFromString(h); err != nil {
			return fmt.Errorf("Contacts.DirectoryHosts: host %q is not a multiaddr ending in /p2p/PEERID: %v", h, err)
		}
	}
	return nil
}

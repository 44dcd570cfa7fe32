package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
)

// ProtocolID is the direct relay protocol: one request per stream.
const ProtocolID = "/meshnode/relay/1.0.0"

// SessionProtocolID is the direct relay protocol with any number of
// requests per stream, pipelined and answered by request ID as each is
// done (Session); a refusal does not end the session. 1.1.0, which took
// one request at a time and ended the session after a refusal, is not
// served.
const SessionProtocolID = "/meshnode/relay/1.2.0"

// ServiceName is the resource-manager service of the direct protocol.
const ServiceName = "meshnode.relay"

// topicLabel prefixes the mailbox tag when hashing it into a topic name.
// Hashing (instead of using the tag itself) keeps the tag out of the
// subscription announcements that every connected peer receives.
const topicLabel = "meshnode/v1/topic"

// TopicPrefix starts every mailbox topic name; the hex of TopicHash
// follows.
const TopicPrefix = "/meshnode/mbx/1/"

// TopicName returns the gossipsub topic of mailbox m. It depends on the
// mailbox tag only.
func TopicName(m envelope.MailboxID) string {
	h := TopicHash(m)
	return TopicPrefix + hex.EncodeToString(h[:])
}

// TopicHash is the hash in m's topic name: SHA-256(topicLabel ‖ tag).
func TopicHash(m envelope.MailboxID) [32]byte {
	h := sha256.New()
	h.Write([]byte(topicLabel))
	h.Write(m[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Handler receives every valid envelope, from gossip and from direct
// relays. Deliver returns only after the envelope is durably stored (or
// with the reason it was not); duplicate reports an envelope already held.
type Handler interface {
	Deliver(ctx context.Context, env *envelope.Envelope, from peer.ID) (duplicate bool, err error)
}

// OriginHandler is a Handler that is also told where each envelope came
// from (the remote's admission key, the proof of work of a direct
// request), for admission decisions: the relay calls DeliverFrom instead
// of Deliver when its Handler has it.
type OriginHandler interface {
	Handler
	DeliverFrom(ctx context.Context, env *envelope.Envelope, o admission.Origin) (duplicate bool, err error)
}

// Policy decides whether this node serves a mailbox for a remote peer.
type Policy interface {
	Serves(m envelope.MailboxID, from peer.ID) bool
}

// PubSubOptions are the gossipsub options every meshnode node must use:
// no message signing (no transport identity inside messages),
// content-addressed message IDs, the envelope size limit, and a
// time-bounded blacklist the relay uses to punish peers that send forgeries.
func PubSubOptions(p Params) ([]pubsub.Option, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	bl := newExpiringBlacklist(p.BlacklistFor, p.MaxTrackedPeers)
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(MessageID),
		// Our own envelopes go to every topic peer, not only the mesh: a
		// message published before the first heartbeat has built the mesh
		// would otherwise reach nobody (pubsub v0.17 defaults this off).
		pubsub.WithFloodPublish(true),
		// Pubsub's limit covers the whole RPC, which wraps our frame.
		pubsub.WithMaxMessageSize(p.MaxEnvelopeSize + 4<<10),
		pubsub.WithBlacklist(bl),
	}, nil
}

// MessageID is the pubsub message ID: the envelope ID (SHA-256 of the data).
func MessageID(m *pb.Message) string {
	sum := sha256.Sum256(m.Data)
	return string(sum[:])
}

// Relay joins mailbox topics, validates and delivers what arrives, and
// serves the direct relay protocol.
type Relay struct {
	h       host.Host
	ps      *pubsub.PubSub
	handler Handler
	params  Params
	policy  Policy
	log     *slog.Logger
	limiter *ratelimit.Limiter[peer.ID]
	rejects *ratelimit.Limiter[peer.ID]
	adm     *admission.Controller // nil: per-peer limits only

	// verifying holds a token per signature check of a direct relay in
	// progress, at most one per core. Requests beyond that wait parked
	// instead of filling the scheduler's run queues: the store's commit
	// goroutines, which every answer waits for, would queue behind them
	// (a host handling a hundred requests at once made each commit wait
	// milliseconds for a core), and nothing is verified any sooner.
	verifying chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards topics and closed
	topics map[envelope.MailboxID]*joined
	closed bool
}

type joined struct {
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
}

// New starts a relay on h and ps (ps must be built with PubSubOptions) and
// registers the direct protocol handler.
func New(h host.Host, ps *pubsub.PubSub, handler Handler, opts ...Option) (*Relay, error) {
	cfg := config{params: DefaultParams()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.Default().With("component", "relay")
	}
	p := cfg.params
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		h: h, ps: ps, handler: handler, params: p, policy: cfg.policy, log: cfg.log, adm: cfg.adm,
		limiter: ratelimit.New[peer.ID](p.PeerRate, p.PeerBurst, p.MaxTrackedPeers),
		rejects: ratelimit.New[peer.ID](float64(p.RejectsBeforeBlacklist)/max(p.BlacklistWindow.Seconds(), 1), p.RejectsBeforeBlacklist, p.MaxTrackedPeers),
		ctx:     ctx, cancel: cancel,
		topics:    make(map[envelope.MailboxID]*joined),
		verifying: make(chan struct{}, runtime.GOMAXPROCS(0)),
	}
	h.SetStreamHandler(ProtocolID, r.handleStream)
	h.SetStreamHandler(SessionProtocolID, r.handleStream)
	return r, nil
}

// Close leaves every topic and stops serving the direct protocol.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	topics := r.topics
	r.topics = nil
	r.mu.Unlock()

	r.h.RemoveStreamHandler(ProtocolID)
	r.h.RemoveStreamHandler(SessionProtocolID)
	r.cancel()
	var errs []error
	for m, j := range topics {
		errs = append(errs, r.leave(m, j))
	}
	r.wg.Wait()
	return errors.Join(errs...)
}

// Join subscribes to m's topic, registers its validator and starts
// delivering what arrives. Joining twice is a no-op.
func (r *Relay) Join(m envelope.MailboxID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if _, ok := r.topics[m]; ok {
		return nil
	}
	name := TopicName(m)
	if err := r.ps.RegisterTopicValidator(name, r.validator(m)); err != nil {
		return fmt.Errorf("relay: register validator: %w", err)
	}
	t, err := r.ps.Join(name)
	if err != nil {
		_ = r.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("relay: join topic: %w", err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		_ = t.Close()
		_ = r.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("relay: subscribe: %w", err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	r.topics[m] = &joined{topic: t, sub: sub, cancel: cancel}
	r.wg.Add(1)
	go r.readLoop(ctx, m, sub)
	r.log.Debug("joined mailbox", "mailbox", m.Short())
	return nil
}

// Leave unsubscribes from m's topic.
func (r *Relay) Leave(m envelope.MailboxID) error {
	r.mu.Lock()
	j, ok := r.topics[m]
	delete(r.topics, m)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return r.leave(m, j)
}

func (r *Relay) leave(m envelope.MailboxID, j *joined) error {
	j.cancel()
	j.sub.Cancel()
	err := j.topic.Close()
	if uerr := r.ps.UnregisterTopicValidator(TopicName(m)); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// Joined reports whether m's topic is joined.
func (r *Relay) Joined(m envelope.MailboxID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.topics[m]
	return ok
}

// JoinedCount is the number of topics joined now.
func (r *Relay) JoinedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.topics)
}

// TopicPeers lists the peers this node knows on m's topic.
func (r *Relay) TopicPeers(m envelope.MailboxID) []peer.ID {
	r.mu.Lock()
	j, ok := r.topics[m]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return j.topic.ListPeers()
}

// Publish gossips env on its mailbox's topic. The local validator checks it
// like any other message, and the local Handler receives it too.
func (r *Relay) Publish(ctx context.Context, env *envelope.Envelope) error {
	return r.publish(ctx, env, false)
}

// verifiedData marks an envelope the relay itself has just opened
// (decoded and signature-checked) when it publishes it, so the local
// validator need not check the signature a second time. The validator
// leaves it on the accepted message, so the local subscription can tell
// that the relay path which published it has already delivered it to the
// Handler, and skips it. Only the relay's own code can attach it: the
// topics are private to the Relay, and pubsub passes it to the validator
// of local publications only.
type verifiedData struct{ env *envelope.Envelope }

// publish gossips env; verified says the caller opened env itself (see
// verifiedData).
func (r *Relay) publish(ctx context.Context, env *envelope.Envelope, verified bool) error {
	r.mu.Lock()
	j, ok := r.topics[env.Mailbox()]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotJoined, env.Mailbox().Short())
	}
	var opts []pubsub.PubOpt
	if verified {
		opts = append(opts, pubsub.WithValidatorData(verifiedData{env}))
	}
	err := j.topic.Publish(ctx, env.Bytes(), opts...)
	if errors.Is(err, pubsub.ErrTopicClosed) {
		return ErrClosed
	}
	// Publishing a duplicate returns nil: pubsub's seen-cache drops it.
	return err
}

// validator checks an envelope before pubsub forwards it anywhere.
func (r *Relay) validator(m envelope.MailboxID) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		local := from == r.h.ID()
		if v, ok := msg.ValidatorData.(verifiedData); ok && local {
			// Published by serve right after envelope.Open of these very
			// bytes for this mailbox: checking the signature again would
			// only double the host's verification cost per envelope.
			if bytes.Equal(v.env.Bytes(), msg.Data) && v.env.Mailbox() == m {
				msg.ValidatorData = v
				return pubsub.ValidationAccept
			}
		}
		if !local && !r.allow(from, r.adm.KeyOfPeer(from)) {
			return pubsub.ValidationIgnore
		}
		env, err := envelope.Open(msg.Data, r.params.MaxEnvelopeSize, &m)
		if err != nil {
			if !local {
				r.penalise(from, err)
			}
			return pubsub.ValidationReject
		}
		msg.ValidatorData = env
		return pubsub.ValidationAccept
	}
}

// allow takes one envelope from the rates of its sender and the sender's
// network prefix, and counts a refusal.
func (r *Relay) allow(from peer.ID, key admission.Key) bool {
	if !r.limiter.Allow(from, 1) {
		r.adm.Refuse(admission.ReasonRatePeer)
		return false
	}
	return r.adm.AllowEnvelope(key)
}

// handOver gives a verified envelope to the Handler, with its origin if
// the Handler wants it.
func (r *Relay) handOver(ctx context.Context, env *envelope.Envelope, o admission.Origin) (bool, error) {
	if oh, ok := r.handler.(OriginHandler); ok {
		return oh.DeliverFrom(ctx, env, o)
	}
	return r.handler.Deliver(ctx, env, o.Peer)
}

// penalise counts an invalid envelope from a peer and blacklists peers that
// keep sending them.
func (r *Relay) penalise(from peer.ID, reason error) {
	r.log.Debug("rejected envelope", "peer", from, "err", reason)
	if r.params.RejectsBeforeBlacklist > 0 && !r.rejects.Allow(from, 1) {
		r.log.Warn("blacklisting peer for invalid envelopes", "peer", from, "for", r.params.BlacklistFor)
		r.ps.BlacklistPeer(from)
	}
}

func (r *Relay) readLoop(ctx context.Context, m envelope.MailboxID, sub *pubsub.Subscription) {
	defer r.wg.Done()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return // cancelled or subscription closed
		}
		if _, ok := msg.ValidatorData.(verifiedData); ok {
			// Our own forward of an envelope the relay has just stored:
			// pubsub hands local publications to local subscribers too,
			// and delivering it again would only make the store find a
			// duplicate (a second store operation per relayed envelope).
			continue
		}
		env, ok := msg.ValidatorData.(*envelope.Envelope)
		if !ok {
			continue // cannot happen: the validator sets it for every accepted message
		}
		dctx, cancel := context.WithTimeout(ctx, r.params.StreamTimeout)
		from := msg.ReceivedFrom
		_, err = r.handOver(dctx, env, admission.Origin{Peer: from, Key: r.adm.KeyOfPeer(from), Local: from == r.h.ID()})
		cancel()
		if err != nil && ctx.Err() == nil {
			// Dropped here: gossip has no one to answer. The envelope can
			// still reach this node through fetch or sync.
			r.log.Warn("could not store gossiped envelope", "mailbox", m.Short(), "envelope", env.ID().Short(), "err", err)
		}
	}
}

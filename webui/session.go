package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// Session limits. Sessions live in the daemon's memory only: a restart
// logs every browser out (nothing about them is written to disk).
const (
	// LoginTTL is how long a login URL can be used (once).
	LoginTTL = 5 * time.Minute
	// MaxLogins bounds the login URLs waiting to be used; making one more
	// drops the oldest.
	MaxLogins = 16
	// SessionTTL is a session's absolute lifetime.
	SessionTTL = 30 * 24 * time.Hour
	// SessionIdle ends a session unused for that long.
	SessionIdle = 7 * 24 * time.Hour
	// MaxSessions bounds the sessions; a new one ends the least recently
	// used.
	MaxSessions = 32
	// secretSize is the number of random bytes of a login secret, a
	// session ID and a CSRF token.
	secretSize = 32
)

// session is one logged-in browser.
type session struct {
	csrf     string
	created  time.Time
	lastUsed time.Time
}

func (s *session) expires() time.Time {
	return earliest(s.created.Add(SessionTTL), s.lastUsed.Add(SessionIdle))
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sessions holds login secrets and sessions, by the SHA-256 of their
// secret: a lookup compares digests, so its timing says nothing about the
// secret, and a memory dump holds no usable secret.
type sessions struct {
	now func() time.Time

	mu     sync.Mutex
	logins map[[32]byte]time.Time // expiry
	by     map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, logins: map[[32]byte]time.Time{}, by: map[[32]byte]*session{}}
}

// randomToken is secretSize random bytes, base64url without padding.
func randomToken() string {
	b := make([]byte, secretSize)
	// crypto/rand.Read never fails (it panics if the system's source does).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// newLogin makes a one-time login secret.
func (ss *sessions) newLogin() (string, time.Time) {
	secret := randomToken()
	now := ss.now()
	exp := now.Add(LoginTTL)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expireLocked(now)
	for len(ss.logins) >= MaxLogins {
		var oldest [32]byte
		var first time.Time
		for k, e := range ss.logins {
			if first.IsZero() || e.Before(first) {
				oldest, first = k, e
			}
		}
		delete(ss.logins, oldest)
	}
	ss.logins[digest(secret)] = exp
	return secret, exp
}

// exchange spends a login secret for a new session; it returns the
// session ID ("" if the secret is unknown, used or expired).
func (ss *sessions) exchange(secret string) (string, *session) {
	if len(secret) != base64.RawURLEncoding.EncodedLen(secretSize) {
		return "", nil
	}
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expireLocked(now)
	d := digest(secret)
	if _, ok := ss.logins[d]; !ok {
		return "", nil
	}
	delete(ss.logins, d)
	for len(ss.by) >= MaxSessions {
		var lru [32]byte
		var first time.Time
		for k, s := range ss.by {
			if first.IsZero() || s.lastUsed.Before(first) {
				lru, first = k, s.lastUsed
			}
		}
		delete(ss.by, lru)
	}
	id := randomToken()
	s := &session{csrf: randomToken(), created: now, lastUsed: now}
	ss.by[digest(id)] = s
	return id, s
}

// lookup finds a live session and marks it used.
func (ss *sessions) lookup(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.by[digest(id)]
	if !ok {
		return nil, false
	}
	if !now.Before(s.expires()) {
		delete(ss.by, digest(id))
		return nil, false
	}
	s.lastUsed = now
	cp := *s
	return &cp, true
}

// end logs a session out.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.by, digest(id))
}

// count is the number of live sessions.
func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expireLocked(ss.now())
	return len(ss.by)
}

func (ss *sessions) expireLocked(now time.Time) {
	for k, e := range ss.logins {
		if !now.Before(e) {
			delete(ss.logins, k)
		}
	}
	for k, s := range ss.by {
		if !now.Before(s.expires()) {
			delete(ss.by, k)
		}
	}
}

// sameToken compares two tokens in constant time.
func sameToken(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	timeNow = func() time.Time { return now }
	t.Cleanup(func() { timeNow = time.Now })

	l := New[string](1, 3, 2)
	for i := 0; i < 3; i++ {
		if !l.Allow("a", 1) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if l.Allow("a", 1) {
		t.Fatal("fourth event within the same instant allowed")
	}
	if !l.Allow("b", 1) {
		t.Fatal("another key shares a's bucket")
	}
	now = now.Add(time.Second)
	if !l.Allow("a", 1) {
		t.Fatal("bucket did not refill")
	}
	if !New[string](0, 0, 0).Allow("x", 1000) {
		t.Fatal("disabled limiter refused")
	}
}

func TestTakeAndGiveBack(t *testing.T) {
	l := New[string](0.001, 2, 8)
	ok, undo := l.Take("a", 1)
	if !ok {
		t.Fatal("first token refused")
	}
	undo()
	for i := range 2 {
		if ok, _ := l.Take("a", 1); !ok {
			t.Fatalf("token %d refused after one was given back", i)
		}
	}
	if ok, undo := l.Take("a", 1); ok || undo != nil {
		t.Fatal("empty bucket gave a token")
	}
	if ok, undo := New[string](0, 0, 1).Take("x", 5); !ok || undo == nil {
		t.Fatal("unlimited limiter refused")
	}
}

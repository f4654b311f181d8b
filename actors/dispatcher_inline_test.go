package actors

import (
	"context"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// stallingStore holds every sign-in read of the username "slow" until release is closed.
type stallingStore struct {
	Store
	reading chan struct{} // closed when the slow read has started
	release chan struct{}
}

func (s stallingStore) SignInSubject(ctx context.Context, communityID, username string) (persistence.SignInSubject, error) {
	if username == "slow" {
		close(s.reading)
		<-s.release
	}
	return s.Store.SignInSubject(ctx, communityID, username)
}

// TestSlowCeremonyHoldsNoOtherCeremony: the community's supervisor runs in whichever goroutine
// sends to it (dispatcher.go). A ceremony whose store read stalls must still hold nothing but
// its own caller: were it to run inside the supervisor's run (a ceremony run inline, say), every
// other begin and result of the community would wait behind it. Shown to fail with ceremonies
// on the inline dispatcher (their begin then runs inside the supervisor's forward).
func TestSlowCeremonyHoldsNoOtherCeremony(t *testing.T) {
	stall := stallingStore{reading: make(chan struct{}), release: make(chan struct{})}
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, func(s Store) Store { stall.Store = s; return stall })
	slow := make(chan error, 1)
	go func() {
		_, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: "slow"})
		slow <- err
	}()
	<-stall.reading

	others := make(chan error, 1)
	go func() {
		for range 20 {
			if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: "alice"}); err != nil {
				others <- err
				return
			}
			if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
				others <- err
				return
			}
		}
		others <- nil
	}()
	select {
	case err := <-others:
		if err != nil {
			t.Fatalf("a sign-in beside the stalled one: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sign-ins of the community waited for a stalled ceremony of another user")
	}
	if n, err := e.Live(ctx, "c1"); err != nil || n != 41 {
		t.Errorf("live ceremonies while one stalls: %d, %v; want 41", n, err)
	}
	close(stall.release)
	if err := <-slow; err != nil {
		t.Errorf("the stalled sign-in, once released: %v", err)
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// ceremony is a ceremony that expires in an hour. Its expiry is whole milliseconds: the
// contract does not say how finely a backend keeps it.
func ceremony(id string) persistence.Ceremony {
	return persistence.Ceremony{ID: id, CommunityID: "shop", State: []byte("state of " + id + "\x00\xff"),
		Expires: time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)}
}

// wantExists fails the test unless CeremonyExists(id) is want.
func wantExists(t *testing.T, c persistence.Ceremonies, id string, want bool) {
	t.Helper()
	ok, err := c.CeremonyExists(t.Context(), id)
	if err != nil || ok != want {
		t.Fatalf("CeremonyExists(%s) = %v, %s; want %v", id, ok, describe(err), want)
	}
}

// wantTaken fails the test unless TakeCeremony(want.ID) returns want.
func wantTaken(t *testing.T, c persistence.Ceremonies, want persistence.Ceremony) {
	t.Helper()
	got, err := c.TakeCeremony(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("TakeCeremony(%s): %s", want.ID, describe(err))
	}
	wantSame(t, "TakeCeremony("+want.ID+")", got, want)
}

// wantNotTaken fails the test unless TakeCeremony(id) is ErrNotFound.
func wantNotTaken(t *testing.T, c persistence.Ceremonies, id string) {
	t.Helper()
	got, err := c.TakeCeremony(t.Context(), id)
	wantNotFound(t, "TakeCeremony("+id+")", err)
	if got.ID != "" || got.State != nil {
		t.Fatalf("TakeCeremony(%s) returned %+v with ErrNotFound, want the zero Ceremony", id, got)
	}
}

// mustPut stores c and fails the test when it cannot.
func mustPut(t *testing.T, cs persistence.Ceremonies, c persistence.Ceremony) {
	t.Helper()
	if err := cs.PutCeremony(t.Context(), c); err != nil {
		t.Fatalf("PutCeremony(%s): %s", c.ID, describe(err))
	}
}

// RunCeremonies runs the contract suite of persistence.Ceremonies against the backend that
// open opens: a new, empty one for each test, closed by what open registers with t.Cleanup.
func RunCeremonies(t *testing.T, open func(t *testing.T) persistence.Ceremonies) {
	t.Run("a ceremony put is there until it is taken, once", func(t *testing.T) {
		cs := open(t)
		c := ceremony("c1")
		mustPut(t, cs, c)
		wantExists(t, cs, "c1", true)
		wantTaken(t, cs, c)
		wantExists(t, cs, "c1", false)
		wantNotTaken(t, cs, "c1")
	})
	t.Run("an unknown ceremony is not there and cannot be taken", func(t *testing.T) {
		cs := open(t)
		mustPut(t, cs, ceremony("c1"))
		wantExists(t, cs, "c2", false)
		wantNotTaken(t, cs, "c2")
		wantExists(t, cs, "c1", true)
	})
	t.Run("ceremonies are independent: taking one leaves the others", func(t *testing.T) {
		cs := open(t)
		a, b := ceremony("a"), ceremony("b")
		b.CommunityID, b.State = "blog", nil
		mustPut(t, cs, a)
		mustPut(t, cs, b)
		wantTaken(t, cs, b)
		wantExists(t, cs, "a", true)
		wantTaken(t, cs, a)
	})
	t.Run("a ceremony whose expiry has passed cannot be taken", func(t *testing.T) {
		cs := open(t)
		c := ceremony("old")
		c.Expires = time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
		// Storing it may be refused or not; either way it is never taken.
		_ = cs.PutCeremony(t.Context(), c)
		wantExists(t, cs, "old", false)
		wantNotTaken(t, cs, "old")
	})
	t.Run("a ceremony expires while it is stored", func(t *testing.T) {
		cs := open(t)
		c := ceremony("soon")
		c.Expires = time.Now().Add(500 * time.Millisecond).UTC().Truncate(time.Millisecond)
		mustPut(t, cs, c)
		eventually(t, 5*time.Second, "the ceremony expires", func() (bool, string) {
			ok, err := cs.CeremonyExists(t.Context(), "soon")
			return err == nil && !ok, fmt.Sprintf("exists %v, %s", ok, describe(err))
		})
		if time.Now().Before(c.Expires) {
			t.Fatalf("the ceremony was gone before its expiry %v", c.Expires)
		}
		wantNotTaken(t, cs, "soon")
	})
	t.Run("concurrent takes of one ceremony: exactly one gets it", func(t *testing.T) {
		cs := open(t)
		c := ceremony("c1")
		mustPut(t, cs, c)
		takeRace(t, c, cs, cs)
	})
	t.Run("a context that ended reaches the store", func(t *testing.T) {
		cs := open(t)
		c1 := ceremony("c1")
		mustPut(t, cs, c1)
		ctx := ended(t, context.Canceled)
		if err := cs.PutCeremony(ctx, ceremony("c2")); !errors.Is(err, context.Canceled) {
			t.Fatalf("PutCeremony: %s, want an error that wraps context.Canceled", describe(err))
		}
		if _, err := cs.TakeCeremony(ctx, "c1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("TakeCeremony: %s, want an error that wraps context.Canceled", describe(err))
		}
		if _, err := cs.CeremonyExists(ctx, "c1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("CeremonyExists: %s, want an error that wraps context.Canceled", describe(err))
		}
		wantExists(t, cs, "c2", false)
		wantTaken(t, cs, c1)
	})
}

// takeRace takes c from 20 goroutines at once, alternately through a and b: exactly one gets
// it, the others ErrNotFound, and it is gone from both.
func takeRace(t *testing.T, c persistence.Ceremony, a, b persistence.Ceremonies) {
	t.Helper()
	const n = 20
	got := make([]persistence.Ceremony, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			cs := a
			if i%2 == 1 {
				cs = b
			}
			got[i], errs[i] = cs.TakeCeremony(t.Context(), c.ID)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			wantSame(t, fmt.Sprintf("take %d", i), got[i], c)
		case !errors.Is(err, persistence.ErrNotFound):
			t.Fatalf("take %d: %s, want the ceremony or ErrNotFound", i, describe(err))
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d takes got the ceremony, want exactly 1", won, n)
	}
	wantExists(t, a, c.ID, false)
	wantExists(t, b, c.ID, false)
}

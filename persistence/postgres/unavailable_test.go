package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// TestUnreachableDatabaseIsUnavailable: while the database refuses connections (a failover, a
// restart), reads and writes fail with 503 unavailable and a Retry-After, not 500 internal
// error, and the error carries no URL; once it takes connections again, the same calls succeed
// on the same store.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	s := mustOpen(t, dbURL)
	seedCommunity(t, s, "c1")
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	pgtest.Exec(t, pgtest.AdminURL(), "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS false")
	pgtest.Exec(t, pgtest.AdminURL(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)

	ctx := context.Background()
	write := persistence.PutSecretIfAbsent{Name: "n", Value: []byte("v")}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"a read", func() error { _, err := s.User(ctx, "c1", "alice"); return err }},
		{"a write", func() error { return s.Apply(ctx, []persistence.Op{write})[0].Err }},
		{"a ceremony's take", func() error { _, err := s.TakeCeremony(ctx, "x"); return err }},
	} {
		err := c.call()
		var me *messages.Error
		if !errors.As(err, &me) || me.Code != messages.CodeUnavailable || me.RetryAfter <= 0 {
			t.Errorf("%s while the database refuses connections: %v, want unavailable with a Retry-After", c.name, err)
		} else if strings.Contains(me.Message, "postgres") || strings.Contains(me.Message, name) {
			t.Errorf("%s: the client's message names the database: %q", c.name, me.Message)
		}
	}

	pgtest.Exec(t, pgtest.AdminURL(), "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS true")
	if _, err := persistence.ApplyOne(ctx, s, write); err != nil {
		t.Fatalf("a write once the database takes connections again: %v", err)
	}
}

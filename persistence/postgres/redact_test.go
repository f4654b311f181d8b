package postgres_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// password has characters that a URL escapes, so that each of its forms is looked for.
const password = "s3cret Pa55/w@rd:ü"

// wantNoPassword fails the test when text carries the password in any form.
func wantNoPassword(t *testing.T, what, text string) {
	t.Helper()
	for _, form := range []string{password, url.QueryEscape(password), url.PathEscape(password), "s3cret", "Pa55"} {
		if strings.Contains(text, form) {
			t.Fatalf("%s carries the password (%q): %s", what, form, text)
		}
	}
}

// errorText is err's text and that of every error it wraps.
func errorText(err error) string {
	var b strings.Builder
	for e := err; e != nil; e = errors.Unwrap(e) {
		b.WriteString(e.Error())
		b.WriteString("\n")
	}
	return b.String()
}

// No error of Open carries the password of its connection string, whatever went wrong.
func TestOpenErrorsCarryNoPassword(t *testing.T) {
	escaped := url.UserPassword("webauthnd", password).String()
	tests := []struct {
		name, conn string
	}{
		{"URL, nothing listens", "postgres://" + escaped + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"},
		{"URL with a bad port", "postgres://" + escaped + "@127.0.0.1:port/db"},
		{"URL with the password unescaped", "postgres://webauthnd:" + password + "@127.0.0.1:1/db"},
		{"keyword/value, nothing listens", "host=127.0.0.1 port=1 user=webauthnd password='" + password + "' connect_timeout=2 sslmode=disable"},
		{"keyword/value, malformed", "host=127.0.0.1 password='" + password},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(bg(), tc.conn)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			wantNoPassword(t, "the error", errorText(err))
			t.Logf("%v", err)
		})
	}
}

// With a password in its URL (the test server trusts every connection, so any password does),
// neither the store's log lines nor its errors carry it: not when its listener loses its
// connection, not when a statement fails with a message that quotes it.
func TestLogsAndErrorsCarryNoPassword(t *testing.T) {
	requirePostgres(t)
	dbURL := newDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	core, logs := observer.New(zap.DebugLevel)
	s := mustOpen(t, u.String(), postgres.WithLogger(zap.New(core)), postgres.WithRefreshEvery(time.Hour))
	seedCommunity(t, s, "shop")
	c := credential("c1", user("shop", "alice", "ha"))
	mustApply(t, s, persistence.AddCredential{Credential: c})

	conn := rawConn(t, dbURL)
	if _, err := conn.Exec(bg(), `CREATE FUNCTION test_quote() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused with password %', current_setting('test.password'); END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(bg(), `CREATE TRIGGER test_quote BEFORE UPDATE ON credentials FOR EACH ROW EXECUTE FUNCTION test_quote()`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(bg(), `ALTER DATABASE `+strings.TrimPrefix(u.Path, "/")+` SET test.password = '`+strings.ReplaceAll(password, "'", "''")+`'`); err != nil {
		t.Fatal(err)
	}
	// New connections take the setting: make the pool open one by killing its own.
	if _, err := conn.Exec(bg(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	var opErr error
	eventually(t, 10*time.Second, "a refused sign-in quoting the password", func() bool {
		opErr = applyErr(t, s, persistence.RecordSignIn{ID: c.ID, Counter: 1, At: t1})
		return opErr != nil && strings.Contains(errorText(opErr), "refused with password")
	})
	wantNoPassword(t, "the op's error", errorText(opErr))
	eventually(t, 10*time.Second, "the listener's reconnection", func() bool {
		return len(logs.FilterMessageSnippet("lost the connection").All()) > 0
	})
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " "))
		}
		wantNoPassword(t, "a log line", line)
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return ""
}

package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestStoreURL(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      string
		inArgs   bool
		postgres bool
		redacted string // when it parses
		refused  string // part of the error, when it does not
	}{
		{name: "no URL is Badger", raw: ""},
		{name: "postgres", raw: "postgres://webauthnd@db:5432/wad?sslmode=verify-full", inArgs: true, postgres: true,
			redacted: "postgres://webauthnd@db:5432/wad?sslmode=verify-full"},
		{name: "postgresql, any case", raw: "PostgreSQL://db/wad", inArgs: true, postgres: true, redacted: "postgresql://db/wad"},
		{name: "a password from the environment is taken, and redacted", raw: "postgres://u:s3cret@db/wad", postgres: true,
			redacted: "postgres://u:xxxxx@db/wad"},
		{name: "a password in the query from the environment is redacted", raw: "postgres://u@db/wad?password=s3cret&sslmode=require", postgres: true,
			redacted: "postgres://u@db/wad?password=xxxxx&sslmode=require"},
		{name: "a password in argv is refused", raw: "postgres://u:s3cret@db/wad", inArgs: true,
			refused: "give the password in PGPASSWORD or a PGPASSFILE (~/.pgpass), or the whole URL in WEBAUTHND_STORE"},
		{name: "a password in argv's query is refused", raw: "postgres://u@db/wad?PassWord=s3cret", inArgs: true, refused: "PGPASSWORD"},
		{name: "an sslpassword in argv is refused", raw: "postgres://u@db/wad?sslpassword=s3cret", inArgs: true, refused: "PGPASSWORD"},
		{name: "an empty password is no secret", raw: "postgres://u:@db/wad", inArgs: true, postgres: true, redacted: "postgres://u:xxxxx@db/wad"},
		{name: "another scheme", raw: "mysql://u:s3cret@db/wad", refused: "the store is a postgres:// or postgresql:// URL"},
		{name: "a path is no URL", raw: "/var/lib/webauthnd", refused: "does not parse as a URL"},
		{name: "a key=value string is no URL", raw: "host=db password=s3cret", refused: "does not parse as a URL"},
		{name: "a URL that does not parse", raw: "postgres://u:s3%zzret@db/wad", refused: "does not parse as a URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStoreURL(tc.raw, "--store", tc.inArgs)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("error %v, want one saying %q", err, tc.refused)
				}
				if strings.Contains(err.Error(), "s3") {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.postgres != tc.postgres || got.redacted != tc.redacted || got.url != tc.raw {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestStoreURLFromFlagOrEnvironment(t *testing.T) {
	const withPassword = "postgres://u:s3cret@db/wad"
	parse := func(args []string, env map[string]string) (storeTarget, error) {
		var sf storeFlags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		sf.register(fs, true)
		if err := parseFlags(fs, args, func(k string) string { return env[k] }, io.Discard); err != nil {
			return storeTarget{}, err
		}
		return sf.parsed(fs)
	}
	if _, err := parse([]string{"--store", withPassword}, nil); err == nil {
		t.Fatal("a password on the command line was taken")
	}
	got, err := parse(nil, map[string]string{"WEBAUTHND_STORE": withPassword})
	if err != nil || !got.postgres || got.url != withPassword {
		t.Fatalf("WEBAUTHND_STORE: %+v, %v", got, err)
	}
	// The flag wins over the environment, and is held to the argv rule.
	if _, err := parse([]string{"--store", withPassword}, map[string]string{"WEBAUTHND_STORE": "postgres://u@db/other"}); err == nil {
		t.Fatal("a password on the command line was taken when the environment named a store too")
	}
	if _, err := parse([]string{"--store-max-conns", "0"}, nil); err == nil {
		t.Fatal("--store-max-conns 0 was taken")
	}
}

func TestScrubRemovesPasswords(t *testing.T) {
	tgt, err := parseStoreURL("postgres://u:p%40ss@db/wad?sslpassword=k%2Fey", "WEBAUTHND_STORE", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{
		`connect to postgres://u:p%40ss@db/wad?sslpassword=k%2Fey: refused`,
		`password "p@ss" rejected`,
		`sslpassword k/ey does not open the key`,
	} {
		got := tgt.scrub(errors.New(msg)).Error()
		for _, secret := range []string{"p@ss", "p%40ss", "k/ey", "k%2Fey"} {
			if strings.Contains(got, secret) {
				t.Errorf("scrub(%q) = %q still holds %q", msg, got, secret)
			}
		}
	}
	plain := errors.New("connection refused")
	if tgt.scrub(plain) != plain {
		t.Error("an error without a secret was rebuilt")
	}
}

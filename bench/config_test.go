package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfigRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a remote host", []string{"--url", "http://example.com:8080"}, "not loopback"},
		{"a remote address", []string{"--url", "http://10.0.0.1:8080"}, "not loopback"},
		{"a URL without a host", []string{"--url", "127.0.0.1:8080"}, "give http(s)://host:port"},
		{"an unknown route family", []string{"--routes", "v2"}, "use u1 or encrypted"},
		{"fewer admin sockets than nodes", []string{"--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--admin-socket", "/tmp/x.sock", "--license", "k"},
			"one per --url"},
		{"a node that is not loopback", []string{"--url", "http://127.0.0.1:1", "--url", "http://192.0.2.1:2", "--license", "k"}, "not loopback"},
		{"an empty node", []string{"--url", "http://127.0.0.1:1,,http://127.0.0.1:2", "--license", "k"}, "an empty item"},
		{"a pid that is no number", []string{"--pid", "12,x", "--license", "k"}, "give process ids"},
		{"a negative postmaster pid", []string{"--pg-pid", "-1", "--license", "k"}, "cannot be negative"},
		{"a database without the postmaster", []string{"--pg-db", "wad", "--license", "k"}, "give --pg-pid too"},
		{"a settle longer than the run", []string{"--admin-socket", "/tmp/x.sock", "--burst", "10", "--settle", "20m", "--license", "k"}, "less than --timeout"},
		{"seeded users registering", []string{"--seeded", "100", "--seed", "s", "--scenario", "register", "--license", "k"}, "use --scenario signin or discoverable"},
		{"seeded users without a seed", []string{"--seeded", "100", "--license", "k"}, "give the --seed"},
		{"fewer seeded users than virtual ones", []string{"--seeded", "4", "--seed", "s", "--users", "8", "--license", "k"}, "at least as many seeded users"},
		{"a seed without seeded users", []string{"--seed", "s", "--license", "k"}, "give --seeded N too"},
		{"an unknown scenario", []string{"--scenario", "login"}, "use register, signin or discoverable"},
		{"no users", []string{"--users", "0"}, "at least 1"},
		{"a negative burst", []string{"--burst", "-1"}, "cannot be negative"},
		{"a negative rate", []string{"--rate", "-5"}, "cannot be negative"},
		{"no license", []string{"--license-file", "/nonexistent/key"}, "no --license"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseConfigAccepts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(config) bool
	}{
		{"the encrypted routes", []string{"--routes", "encrypted"}, func(c config) bool { return c.routes == routesEncrypted }},
		{"one server by default", nil, func(c config) bool { return slices.Equal(c.urls, []string{"http://127.0.0.1:8080"}) }},
		{"nodes comma-separated and repeated, in order",
			[]string{"--url", "http://127.0.0.1:1/,http://localhost:2", "--url", "http://127.0.0.1:3", "--pid", "10,11", "--pid", "12",
				"--admin-socket", "a.sock,b.sock,c.sock"},
			func(c config) bool {
				return slices.Equal(c.urls, []string{"http://127.0.0.1:1", "http://localhost:2", "http://127.0.0.1:3"}) &&
					slices.Equal(c.pids, []int{10, 11, 12}) && slices.Equal(c.adminSockets, []string{"a.sock", "b.sock", "c.sock"})
			}},
		{"admin sockets for the round trips of steady load", []string{"--admin-socket", "/tmp/x.sock", "--pg-pid", "7"},
			func(c config) bool { return len(c.adminSockets) == 1 && c.burst == 0 && c.pgPID == 7 }},
		{"a burst's aftermath, settling by default past the server's ceremony timeout",
			[]string{"--burst", "10", "--admin-socket", "/tmp/x.sock"}, func(c config) bool { return c.settle == 302*time.Second }},
		{"seeded sign-ins", []string{"--seeded", "1000000", "--seed", "s", "--scenario", "discoverable"},
			func(c config) bool { return c.seeded == 1000000 && c.seed == "s" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(append([]string{"--license", "k"}, tc.args...), io.Discard)
			if err != nil || !tc.check(c) {
				t.Errorf("parseConfig(%q) = %+v, %v", tc.args, c, err)
			}
		})
	}
}

func TestParseSeedConfigRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no data directory", []string{"--users", "10", "--seed", "s"}, "give --data-dir"},
		{"no users", []string{"--data-dir", "d", "--seed", "s"}, "--users: give at least 1"},
		{"no seed", []string{"--data-dir", "d", "--users", "10"}, "give --seed"},
		{"an empty batch", []string{"--data-dir", "d", "--users", "10", "--seed", "s", "--batch", "0"}, "--batch"},
		{"a stray argument", []string{"--data-dir", "d", "--users", "10", "--seed", "s", "now"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSeedConfig(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseSeedConfig(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestSeedRefusesAStoreWithoutTheCommunity(t *testing.T) {
	err := run(context.Background(), []string{"seed", "--data-dir", t.TempDir(), "--users", "1", "--seed", "s"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "start webauthnd once on it") {
		t.Errorf("seeding an empty data directory: %v, want a refusal that says to start the server first", err)
	}
}

func TestParseConfigAcceptsLoopback(t *testing.T) {
	for _, url := range []string{"http://127.0.0.1:8080", "http://localhost:8080/", "https://[::1]:8443", "http://127.0.0.2"} {
		if _, err := parseConfig([]string{"--url", url, "--license", "k"}, io.Discard); err != nil {
			t.Errorf("--url %s: %v", url, err)
		}
	}
}

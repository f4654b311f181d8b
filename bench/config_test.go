package main

import (
	"io"
	"strings"
	"testing"
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
		{"the encrypted routes, for now", []string{"--routes", "encrypted"}, "not yet available"},
		{"an unknown route family", []string{"--routes", "v2"}, "use u1"},
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

func TestParseConfigAcceptsLoopback(t *testing.T) {
	for _, url := range []string{"http://127.0.0.1:8080", "http://localhost:8080/", "https://[::1]:8443", "http://127.0.0.2"} {
		if _, err := parseConfig([]string{"--url", url, "--license", "k"}, io.Discard); err != nil {
			t.Errorf("--url %s: %v", url, err)
		}
	}
}

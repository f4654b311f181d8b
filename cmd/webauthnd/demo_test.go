package main

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// TestDemoOnlyWhereAsked checks when serve offers the demo: by default only for a localhost
// public URL, --demo anywhere, --demo=false nowhere.
func TestDemoOnlyWhereAsked(t *testing.T) {
	cases := []struct {
		name string
		args []string
		on   bool
	}{
		{"a localhost public URL (make run)", nil, true},
		{"localhost, --demo=false", []string{"--demo=false"}, false},
		{"another host", []string{"--public-url", "https://login.example.com"}, false},
		{"another host, --demo", []string{"--public-url", "https://login.example.com", "--demo"}, true},
		{"another host, --demo=true", []string{"--public-url", "https://login.example.com", "--demo=true"}, true},
		{"a host that only starts with localhost", []string{"--public-url", "https://localhost.example.com"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, "", tc.args...)
			_, known := demoKeys.Load(s.DataDir)
			for _, path := range []string{"/", "/demo/api/session"} {
				status, _, _ := s.callRaw(t, http.MethodGet, path, nil, nil)
				if (status == http.StatusOK) != tc.on || known != tc.on {
					t.Errorf("GET %s answered %d (demo license made: %v); want the demo on: %v", path, status, known, tc.on)
				}
			}
		})
	}
	if err := run(t.Context(), []string{"serve", "--demo=maybe"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Errorf("serve --demo=maybe started")
	}
}

// TestDemoLicenseIsRekeyedAtEveryStart checks the demo's license: one, with the id demo, a new
// key at every start (the previous one refused), the key nowhere in the data directory.
func TestDemoLicenseIsRekeyedAtEveryStart(t *testing.T) {
	dir := t.TempDir()
	opts := map[string]any{"dns": "localhost", "communityId": "default"}
	var keys []string
	for range 2 {
		s := startServer(t, dir)
		k, _ := demoKeys.Load(dir)
		key, _ := k.(string)
		if key == "" {
			t.Fatal("no demo license key")
		}
		keys = append(keys, key)
		if st, body, _ := s.call(t, http.MethodPost, "/webauthn/u1/assertion/options", lic(key), opts); st != http.StatusOK {
			t.Fatalf("the demo's key: %d %v", st, body)
		}
		list := s.admin(t, "license", "list")
		if strings.Count(list, "\ndemo ") != 1 || strings.Contains(list, key) {
			t.Errorf("license list:\n%s", list)
		}
		s.stop(t)
	}
	if keys[0] == keys[1] {
		t.Fatal("the demo's key did not change at the restart")
	}
	s := startServer(t, dir, "--demo=false")
	for i, key := range keys {
		if st, body, _ := s.call(t, http.MethodPost, "/webauthn/u1/assertion/options", lic(key), opts); st != http.StatusUnauthorized {
			t.Errorf("the demo key of start %d, after a start without the demo: %d %v, want 401", i+1, st, body)
		}
	}
	if list := s.admin(t, "license", "list"); !strings.Contains(list, "revoked") {
		t.Errorf("with the demo off, its license is still active:\n%s", list)
	}
	s.stop(t)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		raw, err := os.ReadFile(path)
		for _, key := range keys {
			if strings.Contains(string(raw), key) {
				t.Errorf("%s holds a demo license key", path)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDemoOverHTTPS checks that the demo's backend reaches the API in-process under TLS, on
// whatever address the server listens, and that its cookie is Secure there.
func TestDemoOverHTTPS(t *testing.T) {
	s, port, _ := startHTTPS(t)
	origin := "https://localhost:" + strconv.Itoa(port)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Transport: s.client.Transport, Jar: jar}
	res, err := client.Get(origin + "/demo/api/session")
	if err != nil {
		t.Fatal(err)
	}
	var ses map[string]any
	_ = json.NewDecoder(res.Body).Decode(&ses)
	res.Body.Close()
	if cookie := res.Header.Get("Set-Cookie"); res.StatusCode != 200 || !strings.Contains(cookie, "; Secure") || !strings.Contains(cookie, "HttpOnly") {
		t.Fatalf("session over HTTPS: %d %v, cookie %q", res.StatusCode, ses, cookie)
	}
	req, _ := http.NewRequest(http.MethodPost, origin+"/demo/api/signin/options", strings.NewReader(`{}`))
	req.Header.Set("X-CSRF-Token", ses["csrf"].(string))
	req.Header.Set("Origin", origin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		PublicKey map[string]any `json:"publicKey"`
	}
	_ = json.NewDecoder(res.Body).Decode(&opts)
	res.Body.Close()
	if res.StatusCode != 200 || opts.PublicKey["rpId"] != "localhost" || opts.PublicKey["challenge"] == nil {
		t.Fatalf("sign-in options over HTTPS: %d %v", res.StatusCode, opts)
	}
}

// TestDemoOffStartsWhenItsLicenseCannotBeRevoked checks that a start with the demo off comes
// up, with a warning, when the store refuses to revoke the license an earlier start left
// active (a full disk), as a start with the demo on does when it cannot re-key it: that key
// was in the memory of a process gone, and the next start revokes it.
func TestDemoOffStartsWhenItsLicenseCannotBeRevoked(t *testing.T) {
	store, err := badger.Open(filepath.Join(t.TempDir(), "badger"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	community, err := defaultCommunityFor("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	if err := bootstrap(t.Context(), store, community, dataDir, io.Discard, "http://localhost:8080", nil, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if cfg, err := demoLicense(t.Context(), store, applyOne(store), dataDir, community, true, false, nil, zap.NewNop()); err != nil || cfg == nil {
		t.Fatalf("demo on: %v, %v", cfg, err)
	}
	full := func(context.Context, persistence.Op) (any, error) {
		return nil, messages.Errorf(messages.CodeStorageFull, "the data directory's filesystem is full")
	}
	core, logs := observer.New(zap.WarnLevel)
	if cfg, err := demoLicense(t.Context(), store, full, dataDir, community, false, false, nil, zap.New(core)); err != nil || cfg != nil {
		t.Errorf("demo off, its license not revocable: %v, %v; want the service up without the demo", cfg, err)
	}
	if logs.Len() != 1 {
		t.Errorf("want one warning, got %v", logs.All())
	}
}

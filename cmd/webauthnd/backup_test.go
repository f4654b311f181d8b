package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// runCommand runs a webauthnd command and returns its stdout, its stderr and its error.
func runCommand(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestBackupWhileServingRestoresEveryPasskey is guarantee 8: passkeys of two communities are
// registered, a backup is taken through the running server's admin socket while registrations
// go on, restored into a new data dir, and a server started there signs every one of them in,
// with the same token and envelope keys. A restore into a non-empty dir, and of a file cut
// short, is refused and leaves nothing behind.
func TestBackupWhileServingRestoresEveryPasskey(t *testing.T) {
	s := startServer(t, "")
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--name", "Shop",
		"--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
	shopKey := s.admin(t, "license", "create", "--level", "community", "--community", "shop")
	shopRP := virtualwebauthn.RelyingParty{ID: "shop.localhost", Name: "Shop", Origin: "https://shop.localhost"}

	type account struct {
		p              *passkey
		key, community string
	}
	var accounts []account
	for i := range 10 {
		p := newPasskey(localRP, fmt.Sprintf("user%d", i))
		s.register(t, s.License, "default", p)
		accounts = append(accounts, account{p, "", "default"})
	}
	sam := newPasskey(shopRP, "sam")
	s.register(t, shopKey, "shop", sam)
	accounts = append(accounts, account{sam, shopKey, "shop"})
	s.signIn(t, s.License, "default", accounts[0].p, true)

	// Registrations go on while the backup runs: it is an online backup.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := tryRegister(http.DefaultClient, s.URL, s.License, "default", newPasskey(localRP, fmt.Sprintf("during-%d-%d", w, i))); err != nil {
					t.Errorf("a registration during the backup: %v", err)
					return
				}
			}
		}()
	}
	file := filepath.Join(t.TempDir(), "webauthnd.backup")
	_, stderr, err := runCommand("backup", "--out", file, "--data-dir", s.DataDir)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "through the running server") || !strings.Contains(s.stderr.String(), `"path":"/admin/backup"`) {
		t.Fatalf("the backup did not go through the server's admin socket: %s", stderr)
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode %v, want 0600 (it holds the private keys)", st.Mode().Perm())
	}
	t.Logf("backup of %d passkeys while serving: %d bytes (%s)", len(accounts), st.Size(), strings.TrimSpace(stderr))

	t.Run("refused into a non-empty dir", func(t *testing.T) {
		_, _, err := runCommand("restore", "--in", file, "--data-dir", s.DataDir)
		if err == nil || !strings.Contains(err.Error(), "is not empty") {
			t.Fatalf("restore into the live data dir: %v", err)
		}
	})
	t.Run("a file cut short is refused and leaves nothing", func(t *testing.T) {
		raw, _ := os.ReadFile(file)
		for _, cut := range []int{len(raw) - 1, len(raw) - 40, len(raw) / 2} {
			short := filepath.Join(t.TempDir(), "short.backup")
			if err := os.WriteFile(short, raw[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "data")
			_, _, err := runCommand("restore", "--in", short, "--data-dir", dir)
			if err == nil || !strings.Contains(err.Error(), "not a complete webauthnd backup") {
				t.Fatalf("restore of %d of %d bytes: %v", cut, len(raw), err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a failed restore left %v", entries)
			}
		}
	})

	dir := filepath.Join(t.TempDir(), "restored")
	if out, stderr, err := runCommand("restore", "--in", file, "--data-dir", dir); err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	} else {
		t.Log(strings.TrimSpace(out))
	}
	// The license key file is the operator's, not the store's: the test harness reads it.
	key, _ := os.ReadFile(filepath.Join(s.DataDir, "default-license.key"))
	if err := os.WriteFile(filepath.Join(dir, "default-license.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServer(t, dir)
	for _, a := range accounts {
		key := a.key
		if key == "" {
			key = r.License
		}
		for _, byUsername := range []bool{true, false} {
			res := r.signIn(t, key, a.community, a.p, byUsername)
			if res["data"].(map[string]any)["sub"] != a.p.username {
				t.Fatalf("after restore, %s signed in as %v", a.p.username, res["data"])
			}
		}
	}
	_, before, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	_, after, _ := r.call(t, "GET", "/webauthn/publickeys", nil, nil)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the restored server publishes other keys:\n%v\n%v", before, after)
	}

	t.Run("without a running server, from the store", func(t *testing.T) {
		r.stop(t)
		again := filepath.Join(t.TempDir(), "again.backup")
		_, stderr, err := runCommand("backup", "--out", again, "--data-dir", dir)
		if err != nil || !strings.Contains(stderr, "from the store") {
			t.Fatalf("backup of a stopped server's data dir: %v %s", err, stderr)
		}
	})
}

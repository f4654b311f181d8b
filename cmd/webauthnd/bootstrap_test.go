package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// TestBootstrapSettlesAPendingKey is the crash between the bootstrap's commit and the rename of
// its key file: the next start finds the pending file and puts it in place when the store holds
// its key as the default license, and removes it otherwise.
func TestBootstrapSettlesAPendingKey(t *testing.T) {
	community, err := defaultCommunityFor("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stored bool // the pending key's license was committed
		placed bool
	}{
		{"committed before the crash", true, true},
		{"never committed", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			store, err := badger.Open(filepath.Join(dataDir, "badger"), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			// A first start made the default; a start that crashed left a pending key.
			if err := bootstrap(t.Context(), store, community, dataDir, io.Discard, "http://localhost:8080", nil, zap.NewNop()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dataDir, defaultKeyFile)
			pending := path + ".pending"
			lic, key, _ := persistence.NewLicense(persistence.LevelCommunity, community.ID, "", 0)
			if tc.stored {
				lic.ID = defaultLicenseID
				if _, err := persistence.ApplyOne(t.Context(), store, persistence.PutLicense{License: lic, Rekey: true}); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(pending, []byte(key+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)

			if err := bootstrap(t.Context(), store, community, dataDir, io.Discard, "http://localhost:8080", nil, zap.NewNop()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(pending); !os.IsNotExist(err) {
				t.Errorf("the pending key file is still there: %v", err)
			}
			after, _ := os.ReadFile(path)
			switch got := strings.TrimSpace(string(after)); {
			case tc.placed && got != key:
				t.Errorf("the key file holds %q, want the pending key", got)
			case !tc.placed && string(after) != string(before):
				t.Errorf("the key file changed to a key the store does not hold")
			}
		})
	}
}

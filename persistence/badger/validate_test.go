package badger_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// TestLicenseKeyIsNeverStored: a license is stored by the hash of its key; no file of the
// store holds the key.
func TestLicenseKeyIsNeverStored(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	l, key, err := persistence.NewLicense(persistence.LevelSystem, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, persistence.PutLicense{License: l})
	closeStore()
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("%s contains the license key", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLicenseByKey(t *testing.T) {
	s := mustOpen(t)
	seedCommunity(t, s, "shop")
	a, keyA, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, keyB, err := persistence.NewLicense(persistence.LevelService, "", "acme", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, persistence.PutLicense{License: a})
	mustApply(t, s, persistence.PutLicense{License: b})
	tests := []struct {
		name   string
		key    string
		wantID string // "" for ErrNotFound
	}{
		{"first key", keyA, a.ID},
		{"second key", keyB, b.ID},
		{"wrong key", "not-a-key", ""},
		{"empty key", "", ""},
		{"key with one character more", keyA + "A", ""},
		{"key with one character less", keyA[:len(keyA)-1], ""},
		{"license id instead of the key", a.ID, ""},
		{"the key's hash instead of the key", base64.RawURLEncoding.EncodeToString(a.KeyHash), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LicenseByKey(ctx, tc.key)
			if tc.wantID == "" {
				if !errors.Is(err, persistence.ErrNotFound) || got.ID != "" {
					t.Fatalf("LicenseByKey = %+v, %v; want zero, ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got.ID != tc.wantID {
				t.Fatalf("LicenseByKey = %+v, %v; want license %s", got, err, tc.wantID)
			}
		})
	}
}

package badger_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

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

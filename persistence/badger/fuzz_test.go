package badger_test

import (
	"bytes"
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// FuzzBackupFile feeds untrusted files to the backup reader that restore runs before Badger
// loads anything. It must never panic, and refuse all but a complete, intact backup with
// ErrBadBackup.
func FuzzBackupFile(f *testing.F) {
	s, err := badger.Open(f.TempDir(), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := persistence.ApplyOne(ctx, s, persistence.PutCommunity{Create: true, Community: persistence.Community{ID: "default", TenantID: "default",
		Name: "default", RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"}, UserVerification: persistence.VerificationPreferred}}); err != nil {
		f.Fatal(err)
	}
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		f.Fatal(err)
	}
	s.Close()
	if err := badger.CheckBackup(bytes.NewReader(backup.Bytes())); err != nil {
		f.Fatalf("a real backup fails its check: %v", err)
	}
	full := backup.Bytes()
	for _, seed := range [][]byte{full, full[:len(full)-1], full[:len(full)/2], append(append([]byte{}, full...), 0), []byte("webauthnd-backup 1\n"), nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		err := badger.CheckBackup(bytes.NewReader(file))
		if err != nil && !errors.Is(err, badger.ErrBadBackup) {
			t.Fatalf("refused with %v, want ErrBadBackup", err)
		}
		if err == nil && len(file) < len("webauthnd-backup 1\n")+8+32 {
			t.Fatalf("accepted %d bytes as a backup", len(file))
		}
	})
}

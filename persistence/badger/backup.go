package badger

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"go.uber.org/zap"
)

// A backup is Badger's own backup stream between a header and an end marker:
//
//	"webauthnd-backup 1\n"
//	frames: a uint64 length (little endian), then a Badger KVList (protobuf) of that length
//	end:    the uint64 0xffffffffffffffff, then the SHA-256 of everything before it
//
// The end marker is what makes a file that was cut short (a full disk, a server that stopped
// mid-stream, a partial copy) fail to restore, instead of restoring part of the store: Badger's
// stream alone ends at any frame boundary without complaint.
const backupHeader = "webauthnd-backup 1\n"

const (
	backupEnd = ^uint64(0)
	// maxBackupFrame bounds a frame's length before Badger allocates it; Badger's stream
	// batches are about 16 MiB.
	maxBackupFrame = 256 << 20
)

// ErrBadBackup is returned for a file that is not a complete webauthnd backup.
var ErrBadBackup = errors.New("not a complete webauthnd backup")

// Backup writes a consistent snapshot of the whole store to w (Badger's online backup: it reads
// at one timestamp while writes go on). The snapshot holds the service's private keys (token
// signing and envelope keys): whoever has it can sign tokens as this service.
func (s *Store) Backup(w io.Writer) error {
	sum := sha256.New()
	body := io.MultiWriter(w, sum)
	if _, err := io.WriteString(body, backupHeader); err != nil {
		return err
	}
	if _, err := s.db.Backup(body, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	end := binary.LittleEndian.AppendUint64(nil, backupEnd)
	_, err := w.Write(sum.Sum(end))
	return err
}

// CheckBackup reads a backup to its end and reports whether it is complete and intact, without
// loading it.
func CheckBackup(r io.Reader) error {
	br, err := newBackupReader(r)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, br)
	return err
}

// Restore loads a backup made by [Store.Backup] into dir, which must not exist yet. It loads
// into a temporary sibling directory and renames it to dir only when the whole backup loaded
// and its checksum matched, so a failed restore leaves nothing behind.
func Restore(dir string, r io.Reader, log *zap.Logger) (err error) {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("restore: %s exists; restore only into a new location", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	br, err := newBackupReader(r)
	if err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".restore-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	s, err := open(tmp, log, openOptions{})
	if err != nil {
		return err
	}
	if err := s.db.Load(br, 256); err != nil {
		_ = s.Close()
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("restore: close: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// backupReader yields a backup's Badger stream (for [badger.DB.Load]) after checking its
// header; it checks each frame's length, and answers io.EOF only at an end marker whose
// checksum matches and after which nothing follows.
type backupReader struct {
	r    *bufio.Reader
	sum  hash.Hash
	out  []byte // the current frame's length prefix, still to hand out
	left uint64 // bytes of the current frame's body still to hand out
	done bool
}

func newBackupReader(r io.Reader) (*backupReader, error) {
	br := &backupReader{r: bufio.NewReaderSize(r, 64<<10), sum: sha256.New()}
	head := make([]byte, len(backupHeader))
	if _, err := io.ReadFull(br.r, head); err != nil || string(head) != backupHeader {
		return nil, fmt.Errorf("%w: the file does not start with a webauthnd backup header", ErrBadBackup)
	}
	br.sum.Write(head)
	return br, nil
}

func (b *backupReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if len(b.out) == 0 && b.left == 0 {
		if err := b.nextFrame(); err != nil {
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if len(b.out) > 0 {
		n := copy(p, b.out)
		b.out = b.out[n:]
		return n, nil
	}
	if uint64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.sum.Write(p[:n])
	b.left -= uint64(n)
	if errors.Is(err, io.EOF) {
		if b.left > 0 {
			return n, fmt.Errorf("%w: it ends inside a frame (cut short)", ErrBadBackup)
		}
		err = nil
	}
	return n, err
}

// nextFrame reads a length prefix: a frame's, or the end marker (then checks the checksum).
func (b *backupReader) nextFrame() error {
	var prefix [8]byte
	if _, err := io.ReadFull(b.r, prefix[:]); err != nil {
		return fmt.Errorf("%w: it has no end marker (cut short)", ErrBadBackup)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n == backupEnd {
		want := b.sum.Sum(nil)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(b.r, got); err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			return fmt.Errorf("%w: its checksum does not match (damaged)", ErrBadBackup)
		}
		if _, err := b.r.ReadByte(); !errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: data follows its end marker", ErrBadBackup)
		}
		b.done = true
		return nil
	}
	if n > maxBackupFrame {
		return fmt.Errorf("%w: a frame of %d bytes (damaged)", ErrBadBackup, n)
	}
	b.sum.Write(prefix[:])
	b.out, b.left = prefix[:], n
	return nil
}

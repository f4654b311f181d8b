package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The data directory holds the store, which holds the service's private keys (envelope and
// token signing), and the default license key. Nothing webauthnd writes is for another user.

// privateUmask makes every file and directory the process creates private to its user, whatever
// mode the creating call asks for: Badger creates its files 0666 and leaves the rest to the
// umask, which is 022 on most systems (files 0644, readable by every local user).
const privateUmask = 0o077

// setPrivateUmask is the first thing run does: every command may write a secret.
func setPrivateUmask() { syscall.Umask(privateUmask) }

// secureDataDir readies the data directory before anything opens it. It creates it (0700) when
// absent; it refuses one that belongs to another user, who could read and replace what is in it
// whatever its modes (root too: a root process must not take its keys from a directory another
// user controls); and it removes group and world access from the directory and from everything
// in it, logging each change. It fixes rather than refuses because loose modes come from
// harmless causes (a `cp -r` or a tar under umask 022, a volume mount that sets group
// ownership), and a refusal would stop those upgrades at the door.
func secureDataDir(dir string, log *zap.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	// A data dir that is a symlink (to a volume, say) is the directory it points at.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data dir %s is not a directory (mode %s)", dir, st.Mode())
	}
	if owner := fileOwner(st); owner != os.Geteuid() {
		return fmt.Errorf("data dir %s belongs to uid %d (mode %#o), not to uid %d that runs webauthnd: its owner could read "+
			"and replace the service's keys; chown -R %d %s, run webauthnd as uid %d, or give --data-dir a new "+
			"subdirectory (webauthnd creates it, 0700)",
			dir, owner, st.Mode().Perm(), os.Geteuid(), os.Geteuid(), dir, owner)
	}
	// WalkDir visits a directory before what is in it, so the data dir is 0700 before anything
	// below it is looked at: from then on no other user can reach an entry, let alone swap one
	// for a symlink between the look and the chmod. Symlinks are neither followed nor changed
	// (a chmod would change their target).
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since it was listed (Badger compacts while a CLI reads)
		}
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		old := info.Mode().Perm()
		if old&0o077 == 0 {
			return nil
		}
		mode := old &^ 0o077
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("data dir: %s is open to other users (mode %#o, owner uid %d) and could not be closed: %w",
				path, old, fileOwner(info), err)
		}
		log.Warn("data dir: removed group and world access",
			zap.String("path", path), zap.String("oldMode", fmt.Sprintf("%#o", old)), zap.String("newMode", fmt.Sprintf("%#o", mode)))
		return nil
	})
}

// fileOwner is the uid that owns a file.
func fileOwner(info fs.FileInfo) int {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// createExclusive creates path for reading and writing, mode 0600. O_EXCL|O_NOFOLLOW: it never
// opens what exists at path, neither a file nor a symlink (dangling or not), so a name planted
// in a shared directory cannot redirect the write.
func createExclusive(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
}

// createTemp creates a new file in dir (see createExclusive) named by pattern, whose "*" becomes
// random characters: a name nobody can plant in advance.
func createTemp(dir, pattern string) (*os.File, error) {
	for range 100 {
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		f, err := createExclusive(filepath.Join(dir, strings.Replace(pattern, "*", hex.EncodeToString(rnd[:]), 1)))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create a temporary file in %s: every name tried exists", dir)
}

// writeFileSynced replaces path with data, mode 0600: written and synced under a temporary
// name in the same directory (createTemp), then renamed over path, so that a reader sees the
// old content or the new, and a crash leaves at most a stray temporary file.
func writeFileSynced(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := createTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// A rename replaces a symlink at path; it does not write through it.
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return nil
}

// trustedAdminUID reports whether a management command may talk to an admin socket, or to the
// process behind it, owned by uid: its own user's, or root's (who can read the store anyway).
func trustedAdminUID(uid int) bool { return uid == os.Geteuid() || uid == 0 }

// probeAdmin reports whether a server answers on the admin socket sock. It answers false, and
// no error, when nothing is there or nothing listens (the command then opens the store
// itself); it answers an error, and the command must stop, when what is there is not a socket
// of this user or root: a command sends a server license requests and reads back backups, with
// the service's private keys in them, and must not send them to another user's process.
func probeAdmin(ctx context.Context, sock string) (bool, error) {
	st, err := os.Lstat(sock)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("admin socket: %w", err)
	}
	conn, err := dialAdmin(ctx, sock, st)
	if errors.Is(err, errAdminRefused) {
		return false, err
	}
	if err != nil {
		return false, nil // a socket left by a server that died; the store's lock says the rest
	}
	conn.Close()
	return true, nil
}

// errAdminRefused marks an admin socket that a command must not talk to.
var errAdminRefused = errors.New("refusing to talk to it")

// dialAdmin connects to the admin socket sock after checking that it is a socket of this user
// or root (st is its Lstat when the caller has it), and checks the connected process's user too
// (SO_PEERCRED), which no swap of the file between the check and the connect can fool.
func dialAdmin(ctx context.Context, sock string, st fs.FileInfo) (net.Conn, error) {
	if st == nil {
		var err error
		if st, err = os.Lstat(sock); err != nil {
			return nil, fmt.Errorf("admin socket: %w", err)
		}
	}
	if st.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("admin socket %s is not a socket (%s): %w; remove it if no server runs", sock, st.Mode(), errAdminRefused)
	}
	if uid := fileOwner(st); !trustedAdminUID(uid) {
		return nil, fmt.Errorf("admin socket %s belongs to uid %d, not to you (uid %d) or root: %w", sock, uid, os.Geteuid(), errAdminRefused)
	}
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	if uid, err := peerUID(conn); err != nil || !trustedAdminUID(uid) {
		conn.Close()
		if err != nil {
			return nil, fmt.Errorf("admin socket %s: the server's user is unknown (%v): %w", sock, err, errAdminRefused)
		}
		return nil, fmt.Errorf("admin socket %s is served by uid %d, not by you (uid %d) or root: %w", sock, uid, os.Geteuid(), errAdminRefused)
	}
	return conn, nil
}

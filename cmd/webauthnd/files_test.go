package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// anotherUID is the user the ownership tests give files to.
const anotherUID = 65534 // nobody

// chownOrSkip gives path to anotherUID, or skips the test where this process may not.
func chownOrSkip(t *testing.T, path string) {
	t.Helper()
	if err := os.Lchown(path, anotherUID, anotherUID); err != nil {
		t.Skipf("giving %s to uid %d needs root (or CAP_CHOWN): %v", path, anotherUID, err)
	}
}

// openToOthers walks dir and reports every entry that some other user may access.
func openToOthers(t *testing.T, dir string) []string {
	t.Helper()
	var open []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			open = append(open, fmt.Sprintf("%s %#o", path, info.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return open
}

// loosen opens a data dir to every local user as a `cp -r` or a tar under umask 022 would:
// directories 0755, files 0644. It returns the mode it gave each path.
func loosen(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	given := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&(fs.ModeSymlink|fs.ModeSocket) != 0 {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		given[path] = mode
		return os.Chmod(path, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	return given
}

// modeChanges reads the "removed group and world access" lines of a JSON log: path → old and
// new mode.
func modeChanges(t *testing.T, log string) map[string][2]string {
	t.Helper()
	changes := map[string][2]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct{ Msg, Path, OldMode, NewMode string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "data dir: removed group and world access" {
			changes[line.Path] = [2]string{line.OldMode, line.NewMode}
		}
	}
	return changes
}

// TestDataDirOpenToOthersIsClosed: a data dir whose directories are 0755 and files 0644 (the
// store, the default license key) is closed at start, by the server and by a management
// command that opens the store itself: directories 0700, files 0600, each change logged with
// its path and both modes.
func TestDataDirOpenToOthersIsClosed(t *testing.T) {
	cases := []struct {
		name string
		open func(t *testing.T, dir string) (log string)
	}{
		{"serve", func(t *testing.T, dir string) string {
			s := startServer(t, dir)
			s.stop(t)
			return s.stderr.String()
		}},
		{"license list, no server running", func(t *testing.T, dir string) string {
			_, stderr, err := runCommand("license", "list", "--data-dir", dir)
			if err != nil {
				t.Fatalf("license list: %v\n%s", err, stderr)
			}
			return stderr
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			startServer(t, dir).stop(t)
			given := loosen(t, dir)
			if len(given) < 5 || given[filepath.Join(dir, "default-license.key")] != 0o644 {
				t.Fatalf("loosened only %v", given)
			}
			log := tc.open(t, dir)
			if open := openToOthers(t, dir); len(open) > 0 {
				t.Errorf("still open to other users: %v", open)
			}
			changes := modeChanges(t, log)
			for path, mode := range given {
				want := [2]string{"0644", "0600"}
				if mode == 0o755 {
					want = [2]string{"0755", "0700"}
				}
				if changes[path] != want {
					t.Errorf("%s: logged %v, want old and new modes %v", path, changes[path], want)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", log)
			}
		})
	}
}

// TestFilesCreatedWhileServingArePrivate: under a umask of 022, as most shells set it, the files
// the store creates (Badger asks for 0666) are still for this user alone.
func TestFilesCreatedWhileServingArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	s := startServer(t, "")
	s.register(t, s.License, "default", newPasskey(localRP, "ada"))
	s.admin(t, "license", "create", "--level", "system")
	s.stop(t)
	if open := openToOthers(t, s.DataDir); len(open) > 0 {
		t.Fatalf("open to other users: %v", open)
	}
}

// TestDataDirOfAnotherUserIsRefused: a data dir that belongs to another user is refused, by
// the server and by every command that would open it, with an error naming the directory, its
// owner and its mode; nothing in it changes. The tests run as root, so this is also the
// decision that root gets no exception.
func TestDataDirOfAnotherUserIsRefused(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir).stop(t)
	made := filepath.Join(t.TempDir(), "made-before")
	if _, stderr, err := runCommand("backup", "--out", made, "--data-dir", dir); err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	chownOrSkip(t, dir)
	empty := t.TempDir()
	if err := os.Chmod(empty, 0o700); err != nil { // t.TempDir follows the umask
		t.Fatal(err)
	}
	chownOrSkip(t, empty)
	backup := filepath.Join(t.TempDir(), "backup")
	cases := []struct {
		name string
		dir  string
		args []string
	}{
		{"serve", dir, []string{"serve", "--addr", "127.0.0.1:0"}},
		{"license list", dir, []string{"license", "list"}},
		{"license create", dir, []string{"license", "create", "--level", "system"}},
		{"keys rotate", dir, []string{"keys", "rotate", "--signing"}},
		{"backup", dir, []string{"backup", "--out", backup}},
		{"restore into an empty dir of another user", empty, []string{"restore", "--in", made}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			err := run(ctx, append(tc.args, "--data-dir", tc.dir), func(string) string { return "" }, &out, &errOut)
			want := fmt.Sprintf("data dir %s belongs to uid %d (mode 0700)", tc.dir, anotherUID)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%v: got %v, want an error saying %q\nstdout: %s", tc.args, err, want, out.String())
			}
		})
	}
	if _, err := os.Stat(backup); err == nil {
		t.Errorf("a backup was written from a data dir of another user")
	}
}

// TestTempFilesDoNotFollowSymlinks: a symlink planted where a file is written under a
// temporary name (`<name>.tmp`, as webauthnd used to) does not redirect the write: its target
// keeps its content, and the file is written, mode 0600, in its place.
func TestTempFilesDoNotFollowSymlinks(t *testing.T) {
	cases := []struct {
		name  string
		files []string // written by write into dir
		write func(t *testing.T, dir string)
	}{
		{"cert self-signed", []string{"cert.pem", "key.pem"}, func(t *testing.T, dir string) { selfSigned(t, dir) }},
		{"the default license key", []string{"default-license.key"}, func(t *testing.T, dir string) { startServer(t, dir) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("victim\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.files {
				if err := os.Symlink(victim, filepath.Join(dir, f+".tmp")); err != nil {
					t.Fatal(err)
				}
			}
			tc.write(t, dir)
			if raw, err := os.ReadFile(victim); err != nil || string(raw) != "victim\n" {
				t.Fatalf("the symlink's target was written: %q %v", raw, err)
			}
			for _, f := range tc.files {
				st, err := os.Lstat(filepath.Join(dir, f))
				if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v; want a regular file, mode 0600", f, err, st.Mode())
				}
			}
		})
	}
}

// TestCreateExclusiveRefusesWhatExists: the one way webauthnd creates a file to write opens
// nothing that is already there: not a file, not a symlink to one, not a dangling symlink
// (which would create its target).
func TestCreateExclusiveRefusesWhatExists(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("victim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "not-yet")
	cases := []struct {
		name  string
		plant func(path string) error
	}{
		{"a file", func(path string) error { return os.WriteFile(path, nil, 0o600) }},
		{"a symlink to a file", func(path string) error { return os.Symlink(victim, path) }},
		{"a dangling symlink", func(path string) error { return os.Symlink(dangling, path) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := tc.plant(path); err != nil {
				t.Fatal(err)
			}
			if f, err := createExclusive(path); err == nil {
				f.Close()
				t.Fatalf("createExclusive opened %s", tc.name)
			}
		})
	}
	if raw, _ := os.ReadFile(victim); string(raw) != "victim\n" {
		t.Errorf("the symlink's target changed: %q", raw)
	}
	if _, err := os.Lstat(dangling); err == nil {
		t.Errorf("the dangling symlink's target was created")
	}
	f, err := createExclusive(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatalf("a new name: %v", err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("a new file has mode %#o, want 0600", st.Mode().Perm())
	}
}

// fakeAdmin listens on dir's admin socket as a server would, answers every request with an
// empty license list, and counts them.
func fakeAdmin(t *testing.T, sock string) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write([]byte(`{"licenses":[]}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &requests
}

// TestAdminSocketOfAnotherUserIsRefused: a management command talks to the admin socket only
// when it is a socket of its own user or root. Another user's socket (a server of theirs, or
// one planted by whoever could write the data dir) gets no request: not the license
// operations, not a backup (which streams back the private keys).
func TestAdminSocketOfAnotherUserIsRefused(t *testing.T) {
	cases := []struct {
		name    string
		plant   func(t *testing.T, sock string) *atomic.Int64
		refusal string // in the error; empty: the command talks to the socket
	}{
		{"a socket of this user is used", fakeAdmin, ""},
		{"a socket of another user", func(t *testing.T, sock string) *atomic.Int64 {
			requests := fakeAdmin(t, sock)
			chownOrSkip(t, sock)
			return requests
		}, fmt.Sprintf("belongs to uid %d, not to you", anotherUID)},
		{"a symlink to a socket", func(t *testing.T, sock string) *atomic.Int64 {
			elsewhere := filepath.Join(t.TempDir(), "admin.sock")
			requests := fakeAdmin(t, elsewhere)
			if err := os.Symlink(elsewhere, sock); err != nil {
				t.Fatal(err)
			}
			return requests
		}, "is not a socket"},
	}
	for _, tc := range cases {
		commands := [][]string{{"license", "list"}, {"license", "revoke", "--id", "x"}}
		if tc.refusal != "" {
			commands = append(commands, []string{"backup", "--out", filepath.Join(t.TempDir(), "backup")})
		}
		for _, args := range commands {
			t.Run(tc.name+"/"+strings.Join(args[:2], " "), func(t *testing.T) {
				dir := t.TempDir()
				sock := socketPath(dir)
				requests := tc.plant(t, sock)
				_, stderr, err := runCommand(append(args, "--data-dir", dir)...)
				if tc.refusal == "" {
					if err != nil || requests.Load() == 0 {
						t.Fatalf("%v through the socket: %v (%d requests)\n%s", args, err, requests.Load(), stderr)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), tc.refusal) {
					t.Errorf("%v: got %v, want an error naming %s and saying %q", args, err, sock, tc.refusal)
				}
				if n := requests.Load(); n > 0 {
					t.Errorf("%v sent %d requests to the socket", args, n)
				}
			})
		}
	}
}

// TestAdminSocketServedByAnotherUser: a socket file that passes the owner check (root's) but
// is served by a process of another user gets no request either: the command checks the
// process at the other end of the connection (SO_PEERCRED), which a swap of the file between
// the check and the connect cannot fool.
func TestAdminSocketServedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a process as another user needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A directory the other user can reach, holding a copy of this test binary and a data dir
	// of theirs.
	shared, err := os.MkdirTemp("", "webauthnd-foreign-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(shared) })
	helper, dir := filepath.Join(shared, "helper"), filepath.Join(shared, "data")
	raw, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(helper, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]fs.FileMode{shared: 0o755, helper: 0o755, dir: 0o700} {
		if err := os.Chmod(path, mode); err != nil { // the umask is 077
			t.Fatal(err)
		}
	}
	chownOrSkip(t, dir)

	sock := socketPath(dir)
	out := newLineBuffer()
	cmd := exec.Command(helper, "-test.run=^TestHelperForeignAdmin$")
	cmd.Env = append(os.Environ(), "WEBAUTHND_FOREIGN_SOCK="+sock)
	cmd.Dir, cmd.Stdout, cmd.Stderr = shared, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: anotherUID, Gid: anotherUID}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	if _, err := out.waitFor("ready", 20*time.Second, done); err != nil {
		t.Fatalf("the helper of uid %d did not listen: %v\n%s", anotherUID, err, out.String())
	}
	if err := os.Lchown(sock, 0, 0); err != nil {
		t.Fatal(err)
	}

	_, stderr, err := runCommand("license", "list", "--data-dir", dir)
	want := fmt.Sprintf("admin socket %s is served by uid %d, not by you", sock, anotherUID)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("license list: got %v, want an error saying %q\n%s", err, want, stderr)
	}
	if strings.Contains(out.String(), "request") {
		t.Errorf("the process of another user got a request:\n%s", out.String())
	}
}

// TestHelperForeignAdmin is not a test of its own: TestAdminSocketServedByAnotherUser runs
// this test binary as another user, and this function then serves the admin socket named by
// WEBAUTHND_FOREIGN_SOCK as any process of that user could, answering every request.
func TestHelperForeignAdmin(t *testing.T) {
	sock := os.Getenv("WEBAUTHND_FOREIGN_SOCK")
	if sock == "" {
		t.Skip("the helper process of TestAdminSocketServedByAnotherUser")
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("request", r.Method, r.URL.Path)
		_, _ = w.Write([]byte(`{"licenses":[]}`))
	}))
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size (e.g. "48m") on a new directory and unmounts it when the
// test ends (after the servers started later have stopped). It skips the test where mounting
// is not allowed (not root, no CAP_SYS_ADMIN, not Linux).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (this test needs root, or CAP_SYS_ADMIN, to run `mount -t tmpfs`): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// resizeTmpfs changes the size of the tmpfs mounted on dir.
func resizeTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s with size %s: %v: %s", dir, size, err, out)
	}
}

// freeBytes is the space available on dir's filesystem.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// leaveFree grows (never shrinks) the file filler until about free bytes are left on its
// filesystem: the space the test wants the server to see, whatever Badger's files take.
func leaveFree(t *testing.T, filler string, free int64) {
	t.Helper()
	extra := freeBytes(t, filepath.Dir(filler)) - free
	if extra <= 0 {
		return
	}
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for extra > 0 {
		n := min(extra, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			t.Fatalf("fill %s: %v", filler, err)
		}
		extra -= n
	}
}

// getJSON sends a GET (checked against the OpenAPI document) and returns status and body.
func (s *testServer) getJSON(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	status, body, _ := s.call(t, "GET", path, nil, nil)
	return status, body
}

// TestDiskFullRefusesWritesThenResumes is the disk-full guarantee, on a small tmpfs holding the
// data directory (a 4 MiB reserve, so the test is quick): registrations fill the space above
// the reserve; every answer is 200 or 507 storage_full and the server never dies. Below the
// reserve /healthz answers 503 storage_full, reads and sign-ins go on, admin writes are
// refused, and a restart comes up (it writes nothing). Below a quarter of the reserve a
// sign-in's write is refused too. When the filesystem grows, service resumes by itself and
// every acknowledged registration signs in.
func TestDiskFullRefusesWritesThenResumes(t *testing.T) {
	const (
		reserve = 4 << 20
		room    = 1 << 20 // what the registrations fill above the reserve
	)
	root := mountTmpfs(t, "48m")
	dataDir, filler := filepath.Join(root, "data"), filepath.Join(root, "filler")
	args := []string{"--min-free-disk", "4MiB"}
	s := startServer(t, dataDir, args...)
	leaveFree(t, filler, reserve+room)

	// Registrations at concurrency 8 until each worker is refused.
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		acked   []*passkey
		refused = map[string]int{} // refusals by step
	)
	client := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < 2*time.Minute; i++ {
				pk := newPasskey(localRP, fmt.Sprintf("fill-%d-%d", w, i))
				step, status, body, err := registerSteps(client, s.URL, s.License, "default", pk)
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("%s: %v (did the server die?)", step, err)
				case status == http.StatusOK:
					acked = append(acked, pk)
				case status == http.StatusInsufficientStorage && body["code"] == "storage_full" &&
					strings.Contains(fmt.Sprint(body["message"]), "free space on the data directory's filesystem"):
					refused[step]++
				default:
					t.Errorf("%s answered %d %v; want 200, or 507 storage_full saying what to do", step, status, body)
				}
				mu.Unlock()
				if err != nil || status != http.StatusOK {
					return
				}
			}
			t.Errorf("worker %d was never refused", w)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	filled := time.Since(start)
	if len(acked) < 100 {
		t.Fatalf("only %d registrations were acknowledged before the reserve: the test filled too little to prove anything", len(acked))
	}

	// Below the reserve: healthz says why, reads and sign-ins go on, admin writes are refused.
	wantHealth := func(s *testServer, status int, reason string) {
		t.Helper()
		got, body := s.getJSON(t, "/webauthn/healthz")
		if got != status || body["reason"] != reason && !(reason == "" && body["reason"] == nil) {
			t.Fatalf("/healthz answered %d %v, want %d with reason %q", got, body, status, reason)
		}
	}
	wantHealth(s, 503, "storage_full")
	if _, body := s.getJSON(t, "/webauthn/healthz"); fmt.Sprint(body["failed"]) != "[storage]" {
		t.Errorf("/healthz below the reserve says %v failed, want [storage]", body["failed"])
	}
	if status, _ := s.getJSON(t, "/webauthn/publickeys"); status != 200 {
		t.Errorf("/publickeys below the reserve: %d", status)
	}
	s.signIn(t, s.License, "default", acked[0], true)
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"license", "create", "--level", "community", "--community", "default", "--data-dir", dataDir},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "free space on the data directory's filesystem") {
		t.Errorf("license create below the reserve: %v, want the storage_full message", err)
	}

	// A restart below the reserve comes up, unhealthy, and signs users in. (Closing flushed
	// Badger's log into a smaller table: the filler takes the space that freed.)
	s.stop(t)
	leaveFree(t, filler, reserve/2)
	s = launchServer(t, dataDir, args...)
	wantHealth(s, 503, "storage_full")
	s.signIn(t, s.License, "default", acked[1], true)

	// Below a quarter of the reserve: every write is refused, a sign-in's too.
	leaveFree(t, filler, reserve/8)
	body, err := trySignIn(client, s.URL, s.License, "default", acked[2], nil)
	if err == nil || body["code"] != "storage_full" || !strings.Contains(err.Error(), "assertion/result: 507") {
		t.Fatalf("a sign-in below a quarter of the reserve: %v, want 507 storage_full from assertion/result", err)
	}
	wantHealth(s, 503, "storage_full")

	// Space returns: service resumes by itself, and every acknowledged registration signs in.
	resizeTmpfs(t, root, "96m")
	wantHealth(s, 200, "")
	work := make(chan *passkey)
	var failed []string
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pk := range work {
				if _, err := trySignIn(client, s.URL, s.License, "default", pk, nil); err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s: %v", pk.username, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, pk := range acked {
		work <- pk
	}
	close(work)
	wg.Wait()
	for _, f := range failed {
		t.Errorf("acknowledged before the disk filled, cannot sign in after it grew: %s", f)
	}
	s.register(t, s.License, "default", newPasskey(localRP, "after-the-disk-grew"))
	t.Logf("%d registrations acknowledged in %s until the reserve was reached (refusals: %v); all signed in after the filesystem grew",
		len(acked), filled.Round(time.Millisecond), refused)
}

// TestShutdownEndsWhenTheStoreCannotWrite: a SIGTERM while the store cannot write (here its
// directory is removed, as when a disk is lost) ends within --drain-timeout and a few seconds
// with an error, instead of waiting forever for Badger to flush its memtable.
func TestShutdownEndsWhenTheStoreCannotWrite(t *testing.T) {
	const drain = time.Second
	s := startServer(t, "", "--drain-timeout", drain.String())
	s.register(t, s.License, "default", newPasskey(localRP, "alice")) // something to flush
	if err := os.RemoveAll(filepath.Join(s.DataDir, "badger")); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	s.once.Do(s.cancel) // the cleanup's stop would want a clean exit
	select {
	case err := <-s.done:
		took := time.Since(stopped)
		if err == nil || !strings.Contains(err.Error(), "did not close") {
			t.Errorf("run returned %v, want an error saying the store did not close", err)
		}
		t.Logf("shutdown ended after %s with: %v", took.Round(time.Millisecond), err)
	case <-time.After(drain + drainGrace + closeTimeout + time.Second):
		t.Fatalf("shutdown still runs %s after the signal (--drain-timeout %s)", drain+drainGrace+closeTimeout+time.Second, drain)
	}
}

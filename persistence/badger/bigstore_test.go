package badger_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// TestBigStore measures a store of N users with one passkey each under sign-in load: it imports
// them, then serves in a fresh process (so that the import's memory is not counted) random
// sign-ins from 8 goroutines: User and CredentialsOf, then RecordSignIn through one group-commit
// writer, as the server's writer actor does. It reports reads and sign-ins per second, the
// process's resident set and the Go heap. It runs only when asked, not in CI:
//
//	WEBAUTHND_BIG_STORE=1000000 go test -run '^TestBigStore$' -v -timeout 30m ./persistence/
//
// WEBAUTHND_BIG_STORE_SECONDS sets the load's length (default 20); WEBAUTHND_BIG_STORE_DIR keeps
// the store in that directory (or serves it again when it exists); WEBAUTHND_BIG_STORE_HEAP
// writes a heap profile of the serving process to that file.
func TestBigStore(t *testing.T) {
	if dir := os.Getenv("WEBAUTHND_BIG_STORE_SERVE"); dir != "" {
		serveBigStore(t, dir)
		return
	}
	n, err := strconv.Atoi(os.Getenv("WEBAUTHND_BIG_STORE"))
	if err != nil || n < 1 {
		t.Skip("set WEBAUTHND_BIG_STORE=N to measure a store of N users")
	}
	dir := os.Getenv("WEBAUTHND_BIG_STORE_DIR") // to keep the store (and to serve it again)
	if dir == "" {
		dir = t.TempDir()
	} else if _, err := os.Stat(dir); err == nil {
		serveBigStoreIn(t, dir)
		return
	}
	s, err := badger.Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	benchApply(t, s, []persistence.Op{persistence.PutCommunity{Community: community("shop"), Create: true}})
	start := time.Now()
	const batch = 10000
	for first := 0; first < n; first += batch {
		users := make([]persistence.User, min(batch, n-first))
		creds := make([]persistence.Credential, len(users))
		for k := range users {
			users[k] = benchUser(first + k)
			creds[k] = benchCredential(first+k, 0, users[k])
		}
		if err := s.Import(ctx, users, creds); err != nil {
			t.Fatalf("Import after %d users: %s", first, describe(err))
		}
	}
	imported := time.Since(start)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %d users in %s (%.0f users/s); store %s", n, imported.Round(time.Millisecond),
		float64(n)/imported.Seconds(), dirSize(t, dir))
	serveBigStoreIn(t, dir)
}

// serveBigStoreIn runs serveBigStore in a new process.
func serveBigStoreIn(t *testing.T, dir string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBigStore$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "WEBAUTHND_BIG_STORE_SERVE="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("serving process:\n%s", out)
	if err != nil {
		t.Fatalf("serving process: %v", err)
	}
}

// serveBigStore is the serving process of TestBigStore.
func serveBigStore(t *testing.T, dir string) {
	n, _ := strconv.Atoi(os.Getenv("WEBAUTHND_BIG_STORE"))
	seconds, err := strconv.Atoi(os.Getenv("WEBAUTHND_BIG_STORE_SECONDS"))
	if err != nil || seconds < 1 {
		seconds = 20
	}
	opened := time.Now()
	s, err := badger.Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("opened in %s; %s", time.Since(opened).Round(time.Millisecond), memory())

	// The writer commits what the readers queued, up to 256 sign-ins a batch.
	writes := make(chan persistence.Op, 1024)
	var committed, refused atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		ops := make([]persistence.Op, 0, 256)
		for op := range writes {
			ops = append(ops[:0], op)
		drain:
			for len(ops) < cap(ops) {
				select {
				case op, ok := <-writes:
					if !ok {
						break drain
					}
					ops = append(ops, op)
				default:
					break drain
				}
			}
			for _, r := range s.Apply(ctx, ops) {
				if r.Err != nil {
					refused.Add(1)
				} else {
					committed.Add(1)
				}
			}
		}
	}()

	var reads atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Duration(seconds) * time.Second)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				u := benchUser(rand.IntN(n))
				if _, err := s.User(ctx, u.CommunityID, u.Username); err != nil {
					t.Error(err)
					return
				}
				list, err := s.CredentialsOf(ctx, u.CommunityID, u.Username)
				if err != nil || len(list) != 1 {
					t.Errorf("CredentialsOf = %d, %v", len(list), err)
					return
				}
				reads.Add(1)
				// Counter 0, as synced passkeys send: always accepted.
				writes <- persistence.RecordSignIn{ID: list[0].ID, UserVerified: true, BackupState: true, At: time.Now().UTC()}
			}
		})
	}
	wg.Wait()
	close(writes)
	<-writerDone
	elapsed := time.Duration(seconds) * time.Second
	if path := os.Getenv("WEBAUTHND_BIG_STORE_HEAP"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	t.Logf("N=%d: %.0f reads/s (User+CredentialsOf), %.0f sign-ins/s committed, %d refused; %s",
		n, float64(reads.Load())/elapsed.Seconds(), float64(committed.Load())/elapsed.Seconds(), refused.Load(), memory())
}

// memory describes the process's resident set (from /proc/self/status) and Go heap.
func memory() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status := map[string]string{}
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
				status[k] = strings.TrimSpace(v)
			}
		}
	}
	return fmt.Sprintf("VmRSS %s (anon %s, file %s), VmHWM %s; Go heap in use %d MiB, Go sys %d MiB",
		status["VmRSS"], status["RssAnon"], status["RssFile"], status["VmHWM"], ms.HeapInuse>>20, ms.Sys>>20)
}

// dirSize describes the size of the files in dir.
func dirSize(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var sst, vlog, other int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(e.Name(), ".sst"):
			sst += info.Size()
		case strings.HasSuffix(e.Name(), ".vlog"):
			vlog += info.Size()
		default:
			other += info.Size()
		}
	}
	return fmt.Sprintf("SST %d MiB, value log %d MiB, other %d MiB", sst>>20, vlog>>20, other>>20)
}

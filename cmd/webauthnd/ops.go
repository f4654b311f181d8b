package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/webauthnd/webauthnd/httpapi"
)

// runningServer returns the admin socket of the server that runs on dataDir, or an error that
// says none does: stats and profile read a live process, there is no store to fall back on.
func runningServer(ctx context.Context, dataDir, command string) (string, error) {
	sock := socketPath(dataDir)
	up, err := probeAdmin(ctx, sock)
	if err != nil {
		return "", fmt.Errorf("%s: %w", command, err)
	}
	if !up {
		return "", fmt.Errorf("%s: no server answers on %s: start one on --data-dir %s (over PostgreSQL too, each node has its socket in its own --data-dir)",
			command, sock, dataDir)
	}
	return sock, nil
}

// statsCommand implements `webauthnd stats`: the running server's /admin/stats, for people or,
// with --json, as the server answered it.
func statsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		dataDir string
		asJSON  bool
	)
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.StringVar(&dataDir, "data-dir", "./data", "the running server's data directory (its admin socket)")
	fs.BoolVar(&asJSON, "json", false, "print the server's JSON as it is, for scripts")
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	sock, err := runningServer(ctx, dataDir, "stats")
	if err != nil {
		return err
	}
	res, err := adminGet(ctx, sock, "/admin/stats", 30*time.Second)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("stats: the server answered %d: %s", res.StatusCode, adminMessage(raw))
	}
	if asJSON {
		_, err := fmt.Fprintln(stdout, strings.TrimSpace(string(raw)))
		return err
	}
	var s serverStats
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("stats: the server's answer is not what this version reads: %w", err)
	}
	return s.print(stdout)
}

// serverStats is /admin/stats as stats prints it. Pointers: a field an older server does not
// send is left out rather than printed as zero.
type serverStats struct {
	LiveCeremonies  int            `json:"liveCeremonies"`
	LiveByCommunity map[string]int `json:"liveByCommunity"`
	HeapBytes       uint64         `json:"heapBytes"`
	Goroutines      int            `json:"goroutines"`
	StoreRoundTrips *uint64        `json:"storeRoundTrips"`
	Commits         *struct {
		Commits       uint64  `json:"commits"`
		Writes        uint64  `json:"writes"`
		MeanBatchSize float64 `json:"meanBatchSize"`
		BatchSizes    []struct {
			From    int    `json:"from"`
			To      int    `json:"to"`
			Batches uint64 `json:"batches"`
		} `json:"batchSizes"`
	} `json:"commits"`
}

func (s serverStats) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "live ceremonies\t%d\n", s.LiveCeremonies)
	ids := make([]string, 0, len(s.LiveByCommunity))
	for id := range s.LiveByCommunity {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(tw, "  %s\t%d\n", id, s.LiveByCommunity[id])
	}
	fmt.Fprintf(tw, "heap\t%s\n", approxSize(s.HeapBytes))
	fmt.Fprintf(tw, "goroutines\t%d\n", s.Goroutines)
	if c := s.Commits; c != nil {
		fmt.Fprintf(tw, "group commits\t%d commits of %d writes since the start, %.2f writes per commit\n", c.Commits, c.Writes, c.MeanBatchSize)
		for _, b := range c.BatchSizes {
			size := strconv.Itoa(b.From)
			if b.To != b.From {
				size += "-" + strconv.Itoa(b.To)
			}
			fmt.Fprintf(tw, "  batches of %s\t%d\n", size, b.Batches)
		}
	}
	if s.StoreRoundTrips != nil {
		fmt.Fprintf(tw, "store round trips\t%d\n", *s.StoreRoundTrips)
	}
	return tw.Flush()
}

// approxSize is n bytes for people: 12.3 MiB.
func approxSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// profileKinds are what `webauthnd profile --kind` takes: net/http/pprof's profiles under
// their own names, cpu for /debug/pprof/profile.
var profileKinds = []string{"cpu", "heap", "allocs", "goroutine", "mutex", "block", "threadcreate", "trace"}

// profileCommand implements `webauthnd profile`: a profile of the running server, through its
// admin socket, to a new file (mode 0600). A CPU profile or a trace lasts --seconds; the other
// kinds are a snapshot, or with --seconds what changed during that time (pprof's delta
// profiles). The file is written under a temporary name and appears whole or not at all.
func profileCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		dataDir, out, kind string
		seconds            int
		force              bool
	)
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	fs.StringVar(&dataDir, "data-dir", "./data", "the running server's data directory (its admin socket)")
	fs.StringVar(&kind, "kind", "cpu", "what to profile: "+strings.Join(profileKinds, ", "))
	fs.IntVar(&seconds, "seconds", 0, "how long to profile (default: 30 for cpu and trace; a snapshot for the others)")
	fs.StringVar(&out, "out", "", "the file to write (mode 0600)")
	fs.BoolVar(&force, "force", false, "replace --out if it exists")
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	switch {
	case out == "":
		return errors.New("profile: --out is required")
	case !knownKind(kind):
		return fmt.Errorf("profile: --kind %q is none of %s", kind, strings.Join(profileKinds, ", "))
	case seconds < 0:
		return fmt.Errorf("profile: --seconds %d is negative", seconds)
	}
	timed := kind == "cpu" || kind == "trace"
	if timed && seconds == 0 {
		seconds = 30
	}
	// Before the profile's seconds are spent: a file that is there, or a directory that is
	// not, is refused now, not after.
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("profile: --out %s: its directory %s is no directory this user can reach", out, filepath.Dir(out))
	}
	if _, err := os.Lstat(out); err == nil && !force {
		return fmt.Errorf("profile: %s exists; choose another --out, or --force to replace it", out)
	} else if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("profile: %w", err)
	}
	sock, err := runningServer(ctx, dataDir, "profile")
	if err != nil {
		return err
	}

	path := httpapi.PprofPath + kind
	if kind == "cpu" {
		path = httpapi.PprofPath + "profile"
	}
	if seconds > 0 {
		path += "?" + url.Values{"seconds": {strconv.Itoa(seconds)}}.Encode()
	}
	if timed || seconds > 0 {
		fmt.Fprintf(stderr, "profiling %s for %d s…\n", kind, seconds)
	}
	// No client timeout: the profile takes --seconds, and ctx (Ctrl-C) ends it, which also
	// stops the profiling in the server.
	res, err := adminGet(ctx, sock, path, 0)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return fmt.Errorf("profile: the server answered %d: %s", res.StatusCode, adminMessage(raw))
	}
	size, err := writeNewFile(out, force, res.Body)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	fmt.Fprintf(stderr, "%s profile written to %s (%s, mode 0600)\n", kind, out, approxSize(uint64(size)))
	if kind == "trace" {
		fmt.Fprintf(stdout, "read it with: go tool trace %s\n", out)
	} else {
		fmt.Fprintf(stdout, "read it with: go tool pprof -top %s   (or go tool pprof -http=localhost:0 %s)\n", out, out)
	}
	return nil
}

func knownKind(kind string) bool {
	for _, k := range profileKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// writeNewFile writes r to path (mode 0600) under a temporary name, synced, then puts it in
// place: with replace, over what is there; without, only if path does not exist (a hard link
// fails rather than overwrite, which a check then a rename could not promise).
func writeNewFile(path string, replace bool, r io.Reader) (int64, error) {
	tmp, err := createTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer func() {
		tmp.Close()
		_ = os.Remove(tmp.Name()) // gone already when renamed
	}()
	n, err := io.Copy(tmp, r)
	if err != nil {
		return 0, fmt.Errorf("the stream from the server broke off after %d bytes: %w", n, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	if replace {
		return n, os.Rename(tmp.Name(), path)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return 0, fmt.Errorf("%s appeared while profiling; it is left as it was (--force replaces it)", path)
		}
		return 0, err
	}
	return n, nil
}

// adminGet sends GET path to the admin socket sock; timeout 0 leaves the request to ctx.
func adminGet(ctx context.Context, sock, path string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin"+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := adminClient(sock, timeout).Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return res, nil
}

// adminMessage is the message of the admin API's JSON error in raw, or raw itself (pprof
// answers its errors in plain text).
func adminMessage(raw []byte) string {
	var e struct{ Message string }
	if json.Unmarshal(raw, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(raw))
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/actors"
	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// passkeysCommand implements `webauthnd passkeys export` and `webauthnd passkeys import`: JSON
// Lines of a community's passkeys (httpapi.PasskeyLine), through a running server's admin
// socket or, when none runs, on the store directly (over PostgreSQL always directly, as every
// management command).
func passkeysCommand(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		loc       storeLocation
		community string
		file      string
		dryRun    bool
	)
	fs := flag.NewFlagSet("passkeys "+verb, flag.ContinueOnError)
	loc.register(fs)
	fs.StringVar(&community, "community", "", "the community whose passkeys are exported, or into which they are imported")
	if verb == "export" {
		fs.StringVar(&file, "out", "", "the file to write (JSON Lines, one passkey a line; mode 0600)")
	} else {
		fs.StringVar(&file, "in", "", "the file to read (JSON Lines, one passkey a line, as export writes them)")
		fs.BoolVar(&dryRun, "dry-run", false, "check every line and report, write nothing")
	}
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	if err := loc.parsed(fs); err != nil {
		return err
	}
	switch {
	case community == "":
		return errors.New("--community is required")
	case file == "" && verb == "export":
		return errors.New("--out is required")
	case file == "":
		return errors.New("--in is required")
	}
	if verb == "export" {
		return exportPasskeys(ctx, loc, community, file, stdout, stderr)
	}
	return importPasskeys(ctx, loc, community, file, dryRun, stdout, stderr)
}

// exportPasskeys writes the community's passkeys to a temporary file beside out and renames it
// to out once the export is whole, so that a failed export never leaves a file that looks
// complete.
func exportPasskeys(ctx context.Context, loc storeLocation, community, out string, stdout, stderr io.Writer) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	defer tmp.Close()
	n, err := withPasskeyStore(ctx, loc, stderr,
		func(sock string) (int, error) { return exportViaSocket(ctx, sock, community, tmp) },
		func(s persistence.Store) (int, error) { return httpapi.ExportPasskeys(ctx, s, community, tmp) })
	if err != nil {
		return fmt.Errorf("passkeys export: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("passkeys export: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("passkeys export: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("passkeys export: %w", err)
	}
	fmt.Fprintf(stdout, "exported %d passkeys of community %s to %s\n", n, community, out)
	return nil
}

// passkeysMaxConns is the PostgreSQL pool of the passkey commands: an import's checks read the
// store 16 lines at a time (httpapi's checkWorkers), and round trips, not the database's CPU,
// bound it (a million lines over a pool of 2 took 13 minutes).
const passkeysMaxConns = 8

// withPasskeyStore runs viaSock when a server holds the Badger store of loc, else direct on
// the store, opened for the command (PostgreSQL always).
func withPasskeyStore[T any](ctx context.Context, loc storeLocation, stderr io.Writer, viaSock func(sock string) (T, error), direct func(persistence.Store) (T, error)) (T, error) {
	var zero T
	if loc.target.postgres {
		// Not openManaged's pool of 2: an import checks 16 lines at once, each a few point reads.
		store, err := openPostgres(ctx, loc.target, passkeysMaxConns, true, zap.NewNop())
		if err != nil {
			return zero, err
		}
		defer store.Close()
		v, err := direct(store)
		return v, loc.target.scrub(err)
	}
	sock := socketPath(loc.dataDir)
	if up, err := probeAdmin(ctx, sock); err != nil {
		return zero, err
	} else if up {
		return viaSock(sock)
	}
	store, err := openStoreDirect(loc.dataDir, stderr)
	if err != nil {
		return zero, err
	}
	defer store.Close()
	return direct(store)
}

// exportViaSocket copies the server's export stream to w, counting its lines. A stream the
// server broke off (it aborts the response when its read fails) is an error.
func exportViaSocket(ctx context.Context, sock, community string, w io.Writer) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://admin"+httpapi.AdminPasskeysExportPath+"?community="+url.QueryEscape(community), nil)
	if err != nil {
		return 0, err
	}
	// No overall timeout: a million passkeys stream for a while; ctx ends it.
	res, err := adminClient(sock, 0).Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin socket: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, adminFailure(res)
	}
	lines := &lineCounter{w: w}
	if _, err := io.Copy(lines, res.Body); err != nil {
		return 0, fmt.Errorf("admin socket: the export stream broke off: %w", err)
	}
	return lines.n, nil
}

// lineCounter counts the line ends written through it.
type lineCounter struct {
	w io.Writer
	n int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return c.w.Write(p)
}

// adminFailure is the error of an admin response that is not 200: its message.
func adminFailure(res *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var e struct{ Message string }
	if json.Unmarshal(raw, &e) != nil || e.Message == "" {
		return fmt.Errorf("admin socket: %s", res.Status)
	}
	return errors.New(e.Message)
}

// Chunks of an import: what one request (and one write) carries.
const (
	chunkLines = httpapi.MaxPasskeyImportLines
	chunkBytes = 16 << 20
)

// importSummary adds up the reports of an import's chunks.
type importSummary struct {
	lines, imported, skipped, users int
	refused                         map[int]string
}

// importPasskeys checks the whole file, then writes it: all or nothing per run. A first pass
// sends every chunk as a dry run (each line checked on its own and against the store) while
// the command checks what spans chunks (a credential id twice in the file, a username with two
// handles, a handle of two usernames). Any refused line, and nothing is written: the report
// lists each with its number and reason. Otherwise, unless --dry-run, a second pass sends the
// chunks for real, 5,000 lines a write. Should the store change between the passes so that a
// chunk is refused then (a registration of the same id meanwhile), the import stops there: the
// chunks before it stay written, and running it again skips them.
func importPasskeys(ctx context.Context, loc storeLocation, community, in string, dryRun bool, stdout, stderr io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("--in: %w", err)
	}
	defer f.Close()
	sum, err := withPasskeyStore(ctx, loc, stderr,
		func(sock string) (importSummary, error) {
			sum, err := runImport(ctx, f, community, dryRun, stderr, func(ctx context.Context, req httpapi.PasskeyImport) (httpapi.PasskeyImportReport, error) {
				return importViaSocket(ctx, sock, req)
			})
			if !dryRun {
				// The server writes the run's audit line: it saw only chunks.
				if _, aerr := viaSocket(ctx, sock, http.MethodPost, httpapi.AdminPasskeysImportedPath, sum.run(community, err)); aerr != nil {
					fmt.Fprintf(stderr, "warning: the server did not write the import's audit line: %v\n", aerr)
				}
			}
			return sum, err
		},
		func(s persistence.Store) (importSummary, error) {
			imp := httpapi.PasskeyImporter{
				Store:    s,
				Write:    func(ctx context.Context, op persistence.Op) (any, error) { return persistence.ApplyOne(ctx, s, op) },
				CheckKey: actors.CheckPublicKey,
			}
			if dryRun {
				return runImport(ctx, f, community, true, stderr, imp.Import)
			}
			var sum importSummary
			_, err := loc.direct(stderr, func() (any, error) {
				var err error
				sum, err = runImport(ctx, f, community, false, stderr, imp.Import)
				return nil, err
			}, func(err error) messages.AuditEvent { return httpapi.AuditOfPasskeyImport(sum.run(community, err)) })
			return sum, err
		})
	if len(sum.refused) > 0 {
		numbers := make([]int, 0, len(sum.refused))
		for n := range sum.refused {
			numbers = append(numbers, n)
		}
		sort.Ints(numbers)
		for _, n := range numbers {
			fmt.Fprintf(stderr, "line %d: %s\n", n, sum.refused[n])
		}
	}
	if err != nil {
		return fmt.Errorf("passkeys import: %w", err)
	}
	if len(sum.refused) > 0 {
		return fmt.Errorf("passkeys import: %d of %d lines refused; nothing was written", len(sum.refused), sum.lines)
	}
	if dryRun {
		fmt.Fprintf(stdout, "dry run: %d lines checked: %d passkeys to import (%d new users), %d already stored; nothing written\n",
			sum.lines, sum.imported, sum.users, sum.skipped)
		return nil
	}
	fmt.Fprintf(stdout, "imported %d passkeys (%d new users) into community %s; %d already stored, skipped\n",
		sum.imported, sum.users, community, sum.skipped)
	return nil
}

// runImport is the two passes of importPasskeys over f, with chunks sent to do.
func runImport(ctx context.Context, f *os.File, community string, dryRun bool, stderr io.Writer, do func(context.Context, httpapi.PasskeyImport) (httpapi.PasskeyImportReport, error)) (importSummary, error) {
	checked, wrote := &progress{w: stderr, what: "checked"}, &progress{w: stderr, what: "wrote"}
	check := importSummary{refused: map[int]string{}}
	span := newSpanChecker()
	err := eachChunk(f, func(first int, lines []string, tooLong map[int]string) error {
		for n, reason := range tooLong {
			check.refused[n] = reason
		}
		rep, err := do(ctx, httpapi.PasskeyImport{CommunityID: community, FirstLine: first, Lines: lines, DryRun: true})
		if err != nil {
			return err
		}
		// A line's own fault comes first in the report; what it shares with another, after.
		check.add(rep, first+len(lines)-1)
		checked.at(check.lines)
		for i, l := range lines {
			if reason := span.check(first+i, l); reason != "" {
				if _, known := check.refused[first+i]; !known {
					check.refused[first+i] = reason
				}
			}
		}
		return nil
	})
	if err != nil || len(check.refused) > 0 || dryRun {
		return check, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return check, err
	}
	done := importSummary{refused: map[int]string{}}
	err = eachChunk(f, func(first int, lines []string, _ map[int]string) error {
		rep, err := do(ctx, httpapi.PasskeyImport{CommunityID: community, FirstLine: first, Lines: lines})
		if err != nil {
			return fmt.Errorf("lines %d to %d: %w (the lines before were written; run the import again to skip them and go on)", first, first+len(lines)-1, err)
		}
		done.add(rep, first+len(lines)-1)
		if len(rep.Refused) > 0 {
			return messages.Errorf(messages.CodeConflict, fmt.Sprintf("the store changed since the check: lines %d to %d were refused and not written (the lines before were; run the import again to skip them and go on)", first, first+len(lines)-1))
		}
		wrote.at(done.lines)
		return nil
	})
	return done, err
}

// run is what the audit trail says of an import run that ended with err.
func (s importSummary) run(community string, err error) httpapi.PasskeyImportRun {
	outcome := messages.AuditOutcome(err)
	if err == nil && len(s.refused) > 0 {
		outcome = string(messages.CodeInvalidRequest)
	}
	return httpapi.PasskeyImportRun{CommunityID: community, Imported: s.imported, Skipped: s.skipped,
		Refused: len(s.refused), Users: s.users, Outcome: outcome}
}

// add counts a chunk's report, whose last line is last.
func (s *importSummary) add(rep httpapi.PasskeyImportReport, last int) {
	s.lines = max(s.lines, last)
	s.imported += rep.Imported
	s.skipped += rep.Skipped
	s.users += rep.Users
	for _, r := range rep.Refused {
		if _, known := s.refused[r.Line]; !known {
			s.refused[r.Line] = r.Reason
		}
	}
}

// progress says how far a long import has come, every 100,000 lines.
type progress struct {
	w    io.Writer
	what string
	last int
}

func (p *progress) at(lines int) {
	if lines/100000 > p.last/100000 {
		fmt.Fprintf(p.w, "%s %d lines\n", p.what, lines)
	}
	p.last = lines
}

// eachChunk reads f's lines in chunks of up to chunkLines lines and chunkBytes bytes and calls
// fn with the number of the first, the lines, and the refusals of lines that cannot be sent as
// they are (longer than a line may be, or not UTF-8, which JSON would quietly alter): those are
// sent blank, so that the numbers of the others hold.
func eachChunk(f io.Reader, fn func(first int, lines []string, refused map[int]string) error) error {
	r := bufio.NewReaderSize(f, 1<<20)
	var (
		lines   []string
		refused = map[int]string{}
		size    int
		n       int // lines read
	)
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		err := fn(n-len(lines)+1, lines, refused)
		lines, refused, size = nil, map[int]string{}, 0
		return err
	}
	for {
		line, long, err := readLine(r, httpapi.MaxPasskeyLineBytes)
		if errors.Is(err, io.EOF) && len(line) == 0 && !long {
			return flush()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		n++
		switch {
		case long:
			refused[n] = fmt.Sprintf("the line is longer than %d KiB", httpapi.MaxPasskeyLineBytes>>10)
			line = nil
		case !utf8.Valid(line):
			refused[n] = "the line is not valid UTF-8"
			line = nil
		}
		lines = append(lines, string(line))
		size += quotedLen(line) + 1
		if len(lines) == chunkLines || size >= chunkBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return flush()
		}
	}
}

// quotedLen bounds the length of line as a JSON string in a request (importViaSocket does not
// escape HTML): a quote or backslash takes 2 bytes, a control character up to 6, so that a
// chunk of chunkBytes stays within the admin route's body limit whatever its lines hold.
func quotedLen(line []byte) int {
	n := 2
	for _, b := range line {
		switch {
		case b == '"' || b == '\\':
			n += 2
		case b < 0x20:
			n += 6
		case b == 0xe2: // U+2028 and U+2029 (e2 80 a8/a9) are written \u2028: 6 bytes for 3
			n += 4
		default:
			n++
		}
	}
	return n
}

// readLine reads one line without its end (\n or \r\n); long reports a line over limit, whose
// rest it reads and drops.
func readLine(r *bufio.Reader, limit int) (line []byte, long bool, err error) {
	for {
		part, err := r.ReadSlice('\n')
		if !long {
			line = append(line, part...)
			if len(line) > limit+2 {
				long, line = true, nil
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		return line, long, err
	}
}

// spanChecker checks what no chunk can see on its own: that a credential id appears once in
// the file, that a username has one user handle and a handle one username. It keeps digests,
// not values, so that a million passkeys take tens of megabytes.
type spanChecker struct {
	ids      map[digest]int
	handleOf map[digest]digestAt // username → its handle, first seen on line
	userOf   map[digest]digestAt // handle → its username
}

type (
	digest   [16]byte
	digestAt struct {
		d    digest
		line int
	}
)

func digestOf(b []byte) digest {
	sum := sha256.Sum256(b)
	return digest(sum[:16])
}

func newSpanChecker() *spanChecker {
	return &spanChecker{ids: map[digest]int{}, handleOf: map[digest]digestAt{}, userOf: map[digest]digestAt{}}
}

// check returns why line n of the file is refused for what it shares with an earlier line, or
// "". It reads only the three fields it compares, leniently: a line that is not a valid passkey
// line is the importer's to refuse, with its reason.
func (s *spanChecker) check(n int, line string) string {
	if len(line) == 0 {
		return ""
	}
	var l struct {
		Username     string `json:"username"`
		UserHandle   string `json:"userHandle"`
		CredentialID string `json:"credentialId"`
	}
	if json.Unmarshal([]byte(line), &l) != nil || l.Username == "" || l.UserHandle == "" || l.CredentialID == "" {
		return ""
	}
	// Digests of the texts: a strict parse (the importer's) accepts one text per value.
	id, user, handle := digestOf([]byte(l.CredentialID)), digestOf([]byte(l.Username)), digestOf([]byte(l.UserHandle))
	if first, dup := s.ids[id]; dup {
		return fmt.Sprintf("credentialId is also on line %d", first)
	}
	if h, seen := s.handleOf[user]; seen && h.d != handle {
		return fmt.Sprintf("user %q has another userHandle on line %d", l.Username, h.line)
	}
	if o, seen := s.userOf[handle]; seen && o.d != user {
		return fmt.Sprintf("userHandle is another user's on line %d", o.line)
	}
	s.ids[id] = n
	if _, seen := s.handleOf[user]; !seen {
		s.handleOf[user] = digestAt{handle, n}
		s.userOf[handle] = digestAt{user, n}
	}
	return ""
}

// importViaSocket sends one chunk to the running server.
func importViaSocket(ctx context.Context, sock string, req httpapi.PasskeyImport) (httpapi.PasskeyImportReport, error) {
	var rep httpapi.PasskeyImportReport
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // a line's < > & as they are: chunks are cut by quotedLen
	if err := enc.Encode(req); err != nil {
		return rep, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://admin"+httpapi.AdminPasskeysImportPath, &body)
	if err != nil {
		return rep, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	// A chunk of 5,000 passkeys takes seconds; a loaded server, more.
	res, err := adminClient(sock, 5*time.Minute).Do(hreq)
	if err != nil {
		return rep, fmt.Errorf("admin socket: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return rep, adminFailure(res)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<20)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("admin socket: %w", err)
	}
	return rep, nil
}

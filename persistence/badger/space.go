package badger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// A full disk must not kill the process. Badger writes its write-ahead log, its tables and its
// value log through memory-mapped sparse files: on a filesystem with no free block left, a
// store into such a page faults (SIGBUS) and the process dies, and again at every restart that
// replays the log. So, as etcd does with its space quota, the store stops writing while space
// is still left: it keeps a reserve free on its filesystem.
//
//   - Free space at or above the reserve: every write.
//   - Below the reserve: only the writes that keep sign-ins working ([persistence.Essential]); every
//     other op (registrations, imports, admin writes, and any op added later) is refused with
//     507 storage_full.
//   - Below a quarter of the reserve: no write at all. What is left is for Badger's own writes
//     once ours stop: flushing the memtable into a table at close, and compacting.
//
// Free space is read with statfs before every batch (Store.Apply), before every transaction of
// an Import and by every health check, not by a poller: a reading costs under a microsecond
// (BenchmarkSpaceRead: 0.6-1.6 µs, by the host) next to a synced commit of about 0.6 ms
// (BenchmarkApplyRecordSignIn, batch=1), and a reading taken right before the batch that it
// admits cannot be overrun by a burst, which a poller's could. One batch (at most 256 ops, and within Badger's
// transaction limit of 15 % of a memtable) is the most a reading can miss. Service resumes by
// itself: the first batch after space returns finds it.
//
// One exception saves the system call where it cannot matter: a reading that found at least
// spaceHeadroom (64 MiB) above the reserve is reused for spaceFresh (50 ms). At the fastest
// write rate measured, an import at ~25 MB/s of records, the store's own batches write about
// 1 MiB in that time, far short of the headroom, so a reused reading admits nothing a fresh one
// would refuse. Badger's flushes and compactions, and other processes on the filesystem, may
// write more; they may between any reading and the batch it admits as well, and the reserve is
// what absorbs them. Near the reserve, and on small filesystems (the tests' fake and tmpfs
// disks), every batch reads.

// Defaults of the reserve: 256 MiB or 5 % of the filesystem, whichever is smaller, but never
// less than MinReserve.
const (
	defaultReserveBytes   = 256 << 20
	defaultReservePercent = 5
)

// MinReserve is the smallest default reserve: a quarter of it, what is left when every write
// stops, must hold what Badger may write at once on its own: a full memtable flushed into a
// level-0 table, and a table that a compaction writes before it deletes its inputs (68 MiB with
// the options of Open). An explicit reserve may be smaller (tests use a few MiB); Open then
// logs a warning.
const MinReserve = 4 * (memTableSize + baseTableSize)

// Reserve is the free space the store keeps on its filesystem (webauthnd's --min-free-disk):
// a size in Bytes, or a Percent of the filesystem's size. The zero Reserve is the default. It
// implements flag.Value.
type Reserve struct {
	Bytes   uint64
	Percent float64
}

// Of returns the reserve in bytes on a filesystem of total bytes. A share follows the
// filesystem's size, so growing the filesystem grows it too.
func (r Reserve) Of(total uint64) uint64 {
	switch {
	case r.Bytes > 0:
		return r.Bytes
	case r.Percent > 0:
		return uint64(float64(total) * r.Percent / 100)
	}
	return max(min(defaultReserveBytes, total/100*defaultReservePercent), MinReserve)
}

// String returns the reserve as Set takes it ("default" for the zero Reserve).
func (r Reserve) String() string {
	switch {
	case r.Bytes > 0:
		return formatBytes(r.Bytes)
	case r.Percent > 0:
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	}
	return "default"
}

// Set parses s as ParseReserve does.
func (r *Reserve) Set(s string) error {
	v, err := ParseReserve(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// sizeUnits are the units ParseReserve takes, case-insensitively: bytes, SI and IEC.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// errReserveSyntax says what ParseReserve takes.
var errReserveSyntax = errors.New("give a size such as 256MiB, 1GiB or a number of bytes (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), or a share of the filesystem such as 5%")

// ParseReserve reads a reserve: a share of the filesystem ("5%", above 0 and below 100) or a
// size ("256MiB", "1.5GiB", "500MB", "1048576"; at least one byte).
func ParseReserve(s string) (Reserve, error) {
	s = strings.TrimSpace(s)
	if share, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(share), 64)
		if err != nil || !startsWithDigit(share) || p <= 0 || p >= 100 {
			return Reserve{}, fmt.Errorf("%q: a share is above 0%% and below 100%%, e.g. 5%%", s)
		}
		return Reserve{Percent: p}, nil
	}
	end := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(s)
	}
	number, unit := s[:end], strings.ToLower(strings.TrimSpace(s[end:]))
	scale, known := sizeUnits[unit]
	n, err := strconv.ParseFloat(number, 64)
	if err != nil || !startsWithDigit(number) || !known {
		return Reserve{}, fmt.Errorf("%q: %w", s, errReserveSyntax)
	}
	bytes := math.Floor(n * scale)
	if bytes < 1 || bytes >= 1<<63 {
		return Reserve{}, fmt.Errorf("%q: a size is at least one byte and below 8 EiB", s)
	}
	return Reserve{Bytes: uint64(bytes)}, nil
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// formatBytes writes n in the largest IEC unit that divides it, else in bytes.
func formatBytes(n uint64) string {
	for _, u := range []struct {
		name string
		size uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatUint(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10)
}

// approxBytes writes n for a log line, in MiB with one decimal.
func approxBytes(n uint64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// spaceLevel is how much of the reserve is left.
type spaceLevel int32

const (
	// spaceAmple: at or above the reserve; every write.
	spaceAmple spaceLevel = iota
	// spaceLow: below the reserve; only essential ops.
	spaceLow
	// spaceExhausted: below a quarter of the reserve; no write.
	spaceExhausted
)

// admits reports whether op may be written at level.
func admits(level spaceLevel, op persistence.Op) bool {
	switch level {
	case spaceAmple:
		return true
	case spaceLow:
		return persistence.Essential(op)
	}
	return false
}

// storageFullMessage is what a client refused for want of space is told.
const storageFullMessage = "the service's storage is almost full, so it stores nothing new: " +
	"its operator must free space on the data directory's filesystem (or grow it); service resumes by itself when space returns"

// spaceReading is one statfs of the store's filesystem.
type spaceReading struct {
	level                 spaceLevel
	avail, total, reserve uint64
	err                   error // statfs failed: nothing is refused
}

// refusal is the error of a write refused at this reading.
func (r spaceReading) refusal() error {
	return messages.Wrap(messages.CodeStorageFull, storageFullMessage,
		fmt.Errorf("%s free of %s, reserve %s", approxBytes(r.avail), approxBytes(r.total), approxBytes(r.reserve)))
}

// spaceGuard reads the free space of the store's filesystem and logs each change of level.
type spaceGuard struct {
	dir     string
	reserve Reserve
	statfs  func(dir string) (avail, total uint64, err error)
	log     *zap.Logger
	// last is the level of the last reading (-1 after a failed statfs), so that each change
	// is logged once.
	last atomic.Int32
	// recent is the last reading that found spaceHeadroom above the reserve, reused until
	// spaceFresh has passed.
	recent atomic.Pointer[timedReading]
}

// A reading with spaceHeadroom free above the reserve is reused for spaceFresh (see the top of
// this file).
const (
	spaceHeadroom = 64 << 20
	spaceFresh    = 50 * time.Millisecond
)

// timedReading is a reading and when it was taken.
type timedReading struct {
	spaceReading
	at time.Time
}

func newSpaceGuard(dir string, reserve Reserve, log *zap.Logger) *spaceGuard {
	return &spaceGuard{dir: dir, reserve: reserve, statfs: statfs, log: log}
}

// statfs returns the space available to this process on dir's filesystem and its size.
func statfs(dir string) (avail, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bsize := uint64(st.Bsize)
	return uint64(st.Bavail) * bsize, uint64(st.Blocks) * bsize, nil
}

// read takes a reading. A failed statfs refuses nothing (the store's own errors will say
// more); it is logged once.
func (g *spaceGuard) read() spaceReading {
	if r := g.recent.Load(); r != nil && time.Since(r.at) < spaceFresh {
		return r.spaceReading
	}
	at := time.Now()
	avail, total, err := g.statfs(g.dir)
	if err != nil {
		if g.last.Swap(-1) != -1 {
			g.log.Warn("cannot read the free space of the data directory's filesystem; writes are not limited", zap.Error(err))
		}
		return spaceReading{level: spaceAmple, err: err}
	}
	r := spaceReading{avail: avail, total: total, reserve: g.reserve.Of(total)}
	switch {
	case avail >= r.reserve:
		r.level = spaceAmple
	case avail >= r.reserve/4:
		r.level = spaceLow
	default:
		r.level = spaceExhausted
	}
	if r.level == spaceAmple && avail-r.reserve >= spaceHeadroom {
		g.recent.Store(&timedReading{spaceReading: r, at: at})
	} else {
		g.recent.Store(nil)
	}
	if prev := spaceLevel(g.last.Swap(int32(r.level))); prev != r.level {
		fields := []zap.Field{zap.String("dir", g.dir), zap.String("free", approxBytes(avail)),
			zap.String("size", approxBytes(total)), zap.String("reserve", approxBytes(r.reserve))}
		switch r.level {
		case spaceAmple:
			g.log.Info("free space is above the reserve again: every write is accepted", fields...)
		case spaceLow:
			g.log.Warn("free space is below the reserve: registrations, imports and admin writes are refused "+
				"(507 storage_full) until space is freed on the data directory's filesystem; sign-ins go on", fields...)
		case spaceExhausted:
			g.log.Error("free space is below a quarter of the reserve: every write is refused (507 storage_full), "+
				"sign-ins too, until space is freed on the data directory's filesystem", fields...)
		}
	}
	return r
}

// CheckSpace returns a storage_full error while the free space of the store's filesystem is
// below its reserve (registrations are refused then), and nil otherwise. It reads no record,
// so it ignores ctx.
func (s *Store) CheckSpace(context.Context) error {
	if r := s.space.read(); r.level != spaceAmple {
		return r.refusal()
	}
	return nil
}

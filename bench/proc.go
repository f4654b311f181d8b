package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is the CPU time and resident set of the server's nodes (when their pids are
// known), the CPU time of PostgreSQL (when its postmaster's pid is known) and of the harness
// itself, at one moment.
type procSample struct {
	serverCPU  time.Duration // every node's, added up
	serverRSS  int64         // bytes, every node's
	dbCPU      time.Duration // the postmaster's and its children's, see postgresCPU
	dbProcs    int           // the postmaster's children
	harnessCPU time.Duration
	machineCPU time.Duration // busy time of all CPUs: what else ran shows as the difference
}

// sample reads /proc. It fails only when a node's pid or the postmaster's was given and cannot
// be read.
func sample(pids []int, pgPID int, pgDB string) (procSample, error) {
	var s procSample
	s.harnessCPU, _ = processCPU("self")
	s.machineCPU, _ = machineCPU()
	for _, pid := range pids {
		cpu, err := processCPU(strconv.Itoa(pid))
		if err != nil {
			return s, fmt.Errorf("--pid %d: %w", pid, err)
		}
		rss, err := processRSS(strconv.Itoa(pid))
		if err != nil {
			return s, fmt.Errorf("--pid %d: %w", pid, err)
		}
		s.serverCPU += cpu
		s.serverRSS += rss
	}
	if pgPID != 0 {
		var err error
		if s.dbCPU, s.dbProcs, err = postgresCPU(pgPID, pgDB); err != nil {
			return s, fmt.Errorf("--pg-pid %d: %w", pgPID, err)
		}
	}
	return s, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux platform Go
// supports.
const clockTicks = 100

// procStat is what the harness reads of /proc/<pid>/stat.
type procStat struct {
	comm         string
	ppid         int
	utime, stime time.Duration // the process's own CPU time
	// cutime and cstime are the CPU time of its children that ended and that it waited for.
	cutime, cstime time.Duration
}

// readStat reads /proc/<pid>/stat: the command name (field 2), the parent (4), and the CPU
// times (14 to 17).
func readStat(pid string) (procStat, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(pid, b)
}

// parseStat parses the contents b of /proc/<pid>/stat.
func parseStat(pid string, b []byte) (procStat, error) {
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	open, end := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("cannot parse /proc/%s/stat", pid)
	}
	fields := strings.Fields(string(b[end+1:])) // fields[0] is field 3 (state)
	if len(fields) < 15 {
		return procStat{}, fmt.Errorf("cannot parse /proc/%s/stat", pid)
	}
	var n [5]int64 // ppid, utime, stime, cutime, cstime
	for i, f := range []string{fields[1], fields[11], fields[12], fields[13], fields[14]} {
		var err error
		if n[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return procStat{}, fmt.Errorf("cannot parse /proc/%s/stat: %w", pid, err)
		}
	}
	tick := func(v int64) time.Duration { return time.Duration(v) * time.Second / clockTicks }
	return procStat{comm: string(b[open+1 : end]), ppid: int(n[0]), utime: tick(n[1]), stime: tick(n[2]),
		cutime: tick(n[3]), cstime: tick(n[4])}, nil
}

// processCPU returns the user plus system CPU time of a process (utime and stime, fields 14
// and 15 of /proc/<pid>/stat).
func processCPU(pid string) (time.Duration, error) {
	st, err := readStat(pid)
	return st.utime + st.stime, err
}

// postgresCPU returns the CPU time that a PostgreSQL server has used: its postmaster's own, its
// live children's (the backends serving the nodes' connections, the WAL writer, the
// checkpointer, autovacuum), and, when db is empty, its ended children's, which the
// postmaster's cutime and cstime hold once it has reaped them, so that a backend that ends
// during a run still counts. That is every database of the server. When db names a database,
// the backends and autovacuum workers of other databases are left out, and so are ended
// children (on a shared server mostly other clients' short connections; the nodes' pools keep
// theirs). It also returns how many children it counted.
func postgresCPU(postmaster int, db string) (time.Duration, int, error) {
	pm, err := readStat(strconv.Itoa(postmaster))
	if err != nil {
		return 0, 0, err
	}
	if pm.comm != "postgres" && pm.comm != "postmaster" {
		return 0, 0, fmt.Errorf("process %d is %q, not a PostgreSQL postmaster (the first line of postmaster.pid in its data directory)", postmaster, pm.comm)
	}
	total := pm.utime + pm.stime
	if db == "" {
		total += pm.cutime + pm.cstime
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	children := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := readStat(e.Name())
		if err != nil || st.ppid != postmaster {
			continue // gone since the listing, or not PostgreSQL's
		}
		if db != "" {
			title, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			if of, ok := titleDatabase(string(title)); ok && of != db {
				continue
			}
		}
		total += st.utime + st.stime
		children++
	}
	return total, children, nil
}

// titleDatabase returns the database that a PostgreSQL child's process title names: a
// backend's "postgres: [cluster: ]user database host(port) activity", or an autovacuum
// worker's "postgres: [cluster: ]autovacuum worker database". ok is false for the processes
// every database shares (the WAL writer, the checkpointer, ...) and for what it cannot read.
func titleDatabase(title string) (db string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimRight(strings.ReplaceAll(title, "\x00", " "), " "), "postgres: ")
	if !found {
		return "", false
	}
	words := strings.Fields(rest)
	if len(words) > 0 && strings.HasSuffix(words[0], ":") { // Debian's cluster_name, e.g. "15/main:"
		words = words[1:]
	}
	switch {
	case len(words) >= 3 && words[0] == "autovacuum" && words[1] == "worker":
		return words[2], true
	case len(words) >= 3 && (words[2] == "[local]" || (strings.Contains(words[2], "(") && strings.HasSuffix(words[2], ")"))):
		return words[1], true
	}
	return "", false
}

// processRSS returns a process's resident set size (VmRSS of /proc/<pid>/status).
func processRSS(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%s/status", pid)
}

// machineCPU returns the busy time of all CPUs since boot: the first line of /proc/stat, less
// idle and iowait (guest time is already part of user time).
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("cannot parse /proc/stat")
	}
	var ticks int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse /proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

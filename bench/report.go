package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary is the result of a run, as the JSON summary carries it.
type Summary struct {
	Scenario string `json:"scenario"`
	Routes   string `json:"routes"`
	Mode     string `json:"mode"` // steady or burst
	Users    int    `json:"users"`
	// Nodes is how many servers the ceremonies went to (--url); with more than one, each
	// ceremony's result went to another node than its options.
	Nodes   int     `json:"nodes"`
	Seconds float64 `json:"seconds"`
	// Ceremonies counts outcomes; PerSecond is completed ceremonies per second.
	Ceremonies Outcomes `json:"ceremonies"`
	// Calls are the latencies of each route, whatever its answer.
	Calls map[string]Latency `json:"calls"`
	// Errors are the answers other than 200.
	Errors Errors `json:"errors"`
	Floor  Floor  `json:"floor"`
	// Server is set when the server's pid (every node's) was given.
	Server *ServerCost `json:"server,omitempty"`
	// Database is set when the PostgreSQL postmaster's pid was given.
	Database *DatabaseCost `json:"database,omitempty"`
	// RoundTrips is set when every node's admin socket was given and each counted its store's
	// round trips (over PostgreSQL).
	RoundTrips *RoundTrips `json:"store_round_trips,omitempty"`
	// HarnessCPUMicros is the harness's own CPU time per completed ceremony: on a machine the
	// two share, this is CPU the server did not get.
	HarnessCPUMicros float64 `json:"harness_cpu_us_per_ceremony"`
	// Machine is how busy the whole machine was, to tell a quiet run from a disturbed one.
	Machine MachineLoad `json:"machine"`
	// Seeded is the number of seeded users signed in as (--seeded), 0 when the virtual users
	// registered their own passkeys.
	Seeded int `json:"seeded_users,omitempty"`
	// Aftermath is set for a burst with --admin-socket.
	Aftermath *Aftermath `json:"aftermath,omitempty"`
}

// MachineLoad is the average number of busy CPUs over the measured phase: in all, and
// what neither the server (when its pids are given), nor PostgreSQL (when its pid is given),
// nor the harness used. The latter is other processes, plus kernel work (interrupts) charged
// to no process.
type MachineLoad struct {
	CPUs       int     `json:"cpus"`
	CoresBusy  float64 `json:"cores_busy"`
	OtherCores float64 `json:"other_cores_busy"`
}

// Outcomes counts the ceremonies of a run: completed, refused with 429 and Retry-After, and
// failed otherwise (a 429 without Retry-After included).
type Outcomes struct {
	OK        int64   `json:"ok"`
	Refused   int64   `json:"refused_429"`
	Failed    int64   `json:"failed"`
	PerSecond float64 `json:"per_second"`
}

// Errors counts the calls that did not answer 200, by HTTP status (0: no answer) and by the
// error body's code.
type Errors struct {
	ByStatus map[string]int `json:"by_status"`
	ByCode   map[string]int `json:"by_code"`
}

// ServerCost is the server's CPU time and memory over the measured phase: every node's, added
// up.
type ServerCost struct {
	PIDs          []int   `json:"pids"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUMicros     float64 `json:"cpu_us_per_ceremony"`
	FloorMultiple float64 `json:"floor_multiple"`
	Cores         float64 `json:"cores_busy"`
	RSSBeforeMiB  float64 `json:"rss_before_mib"`
	RSSAfterMiB   float64 `json:"rss_after_mib"`
}

// DatabaseCost is PostgreSQL's CPU time over the measured phase: the postmaster's and every
// child's (see postgresCPU), beside the nodes'.
type DatabaseCost struct {
	PID int `json:"pid"`
	// Only is the database that --pg-db kept to (the others' backends left out); empty: all.
	Only       string  `json:"only_database,omitempty"`
	Processes  int     `json:"processes"` // the postmaster's children at the end
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUMicros  float64 `json:"cpu_us_per_ceremony"`
	Cores      float64 `json:"cores_busy"`
}

func summarize(cfg config, m measurement, floor Floor, before, after procSample) Summary {
	s := m.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	secs := m.elapsed.Seconds()
	sum := Summary{
		Scenario: cfg.scenario, Routes: cfg.routes, Mode: "steady", Users: m.workers, Nodes: len(cfg.urls), Seconds: round(secs, 3),
		Ceremonies: Outcomes{OK: s.ok.Load(), Refused: s.refused.Load(), Failed: s.failed.Load(),
			PerSecond: round(float64(s.ok.Load())/secs, 1)},
		Calls:  map[string]Latency{},
		Errors: Errors{ByStatus: map[string]int{}, ByCode: maps.Clone(s.codes)},
		Floor:  floor,
		Seeded: cfg.seeded,
	}
	if cfg.burst > 0 {
		sum.Mode = "burst"
	}
	for call, samples := range s.latencies {
		sum.Calls[call] = summarizeLatency(samples)
	}
	for status, n := range s.statuses {
		sum.Errors.ByStatus[strconv.Itoa(status)] = n
	}
	machine, harness, server := after.machineCPU-before.machineCPU, after.harnessCPU-before.harnessCPU, after.serverCPU-before.serverCPU
	db := after.dbCPU - before.dbCPU
	sum.Machine = MachineLoad{CPUs: runtime.NumCPU(), CoresBusy: round(machine.Seconds()/secs, 2),
		OtherCores: round(max(0, (machine-harness-server-db).Seconds())/secs, 2)}
	ok := float64(sum.Ceremonies.OK)
	if ok > 0 {
		sum.HarnessCPUMicros = round(micros(harness)/ok, 1)
	}
	if cfg.pgPID != 0 {
		dc := &DatabaseCost{PID: cfg.pgPID, Only: cfg.pgDB, Processes: after.dbProcs, CPUSeconds: round(db.Seconds(), 2), Cores: round(db.Seconds()/secs, 2)}
		if ok > 0 {
			dc.CPUMicros = round(micros(db)/ok, 1)
		}
		sum.Database = dc
	}
	if len(cfg.pids) > 0 {
		sc := &ServerCost{PIDs: cfg.pids, CPUSeconds: round(server.Seconds(), 2),
			Cores:        round(server.Seconds()/secs, 2),
			RSSBeforeMiB: round(float64(before.serverRSS)/(1<<20), 1), RSSAfterMiB: round(float64(after.serverRSS)/(1<<20), 1)}
		if ok > 0 {
			sc.CPUMicros = round(micros(server)/ok, 1)
			sc.FloorMultiple = round(sc.CPUMicros/floor.TotalMicros, 2)
		}
		sum.Server = sc
	}
	return sum
}

// callOrder lists the calls in the order of a ceremony.
var callOrder = []string{callRegOptions, callRegResult, callSignInOptions, callSignInResult}

// writeText prints the human report.
func writeText(w io.Writer, s Summary) {
	fmt.Fprintf(w, "\nwebauthnd bench: %s via %s, %s, %d users, %.1fs\n", s.Scenario, s.Routes, s.Mode, s.Users, s.Seconds)
	if s.Nodes > 1 {
		fmt.Fprintf(w, "nodes        %d, each ceremony's result sent to another node than its options\n", s.Nodes)
	}
	if s.Seeded > 0 {
		fmt.Fprintf(w, "store        signing in as %d seeded users\n", s.Seeded)
	}
	fmt.Fprintf(w, "ceremonies   %d ok (%.1f/s), %d refused (429), %d failed\n",
		s.Ceremonies.OK, s.Ceremonies.PerSecond, s.Ceremonies.Refused, s.Ceremonies.Failed)
	fmt.Fprintf(w, "%-22s %8s %8s %8s %8s %8s  (ms)\n", "call", "count", "p50", "p95", "p99", "max")
	for _, call := range callOrder {
		if l, ok := s.Calls[call]; ok {
			fmt.Fprintf(w, "%-22s %8d %8.2f %8.2f %8.2f %8.2f\n", call, l.Count, l.P50, l.P95, l.P99, l.Max)
		}
	}
	if len(s.Errors.ByStatus) == 0 {
		fmt.Fprintln(w, "errors       none")
	} else {
		fmt.Fprintf(w, "errors       by status: %s; by code: %s\n", counts(s.Errors.ByStatus), counts(s.Errors.ByCode))
	}
	f := s.Floor
	fmt.Fprintf(w, "floor        verify %.1fµs + sign %.1fµs = %.1fµs (crypto/ecdsa P-256, one core)\n",
		f.VerifyMicros, f.SignMicros, f.TotalMicros)
	if sc := s.Server; sc != nil {
		fmt.Fprintf(w, "server       %.1fµs CPU per ceremony = %.2f× the floor; %.2f cores busy; RSS %.1f → %.1f MiB\n",
			sc.CPUMicros, sc.FloorMultiple, sc.Cores, sc.RSSBeforeMiB, sc.RSSAfterMiB)
	} else {
		fmt.Fprintln(w, "server       CPU not measured (give --pid)")
	}
	if d := s.Database; d != nil {
		of := "every database"
		if d.Only != "" {
			of = "database " + d.Only + " and the shared processes"
		}
		fmt.Fprintf(w, "postgresql   %.1fµs CPU per ceremony; %.2f cores busy (the postmaster and %d processes: %s)\n",
			d.CPUMicros, d.Cores, d.Processes, of)
	}
	if s.RoundTrips != nil || s.Nodes > 1 || s.Database != nil {
		fmt.Fprintf(w, "round trips  %s\n", s.RoundTrips)
	}
	fmt.Fprintf(w, "harness      %.1fµs CPU per ceremony\n", s.HarnessCPUMicros)
	fmt.Fprintf(w, "machine      %.2f of %d CPUs busy, %.2f by other processes and unattributed kernel work\n",
		s.Machine.CoresBusy, s.Machine.CPUs, s.Machine.OtherCores)
	if a := s.Aftermath; a != nil {
		fmt.Fprintf(w, "aftermath    %gs after the burst: %d live ceremonies (%d before); heap %.1f → %.1f MiB (%+.1f %%); %d → %d goroutines\n",
			a.SettleSeconds, a.LiveCeremoniesAfter, a.LiveCeremoniesBefore, float64(a.HeapBeforeBytes)/(1<<20),
			float64(a.HeapAfterBytes)/(1<<20), a.HeapChangePercent, a.GoroutinesBefore, a.GoroutinesAfter)
		if a.RSSBeforeMiB > 0 {
			fmt.Fprintf(w, "             RSS %.1f → %.1f MiB\n", a.RSSBeforeMiB, a.RSSAfterMiB)
		}
		fmt.Fprintf(w, "             %s\n", a.Verdict)
	}
}

// writeJSON writes the summary to path, or to stdout when path is "-".
func writeJSON(path string, stdout io.Writer, s Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// counts formats a tally as "a×3 b×1", largest first.
func counts(m map[string]int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// round rounds v to digits decimals, for a readable JSON summary.
func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is the CPU time and resident set of the server (when its pid is known) and the
// CPU time of the harness itself, at one moment.
type procSample struct {
	serverCPU  time.Duration
	serverRSS  int64 // bytes
	harnessCPU time.Duration
	machineCPU time.Duration // busy time of all CPUs: what else ran shows as the difference
}

// sample reads /proc. It fails only when the server's pid was given and cannot be read.
func sample(pid int) (procSample, error) {
	var s procSample
	s.harnessCPU, _ = processCPU("self")
	s.machineCPU, _ = machineCPU()
	if pid == 0 {
		return s, nil
	}
	var err error
	if s.serverCPU, err = processCPU(strconv.Itoa(pid)); err != nil {
		return s, fmt.Errorf("--pid %d: %w", pid, err)
	}
	if s.serverRSS, err = processRSS(strconv.Itoa(pid)); err != nil {
		return s, fmt.Errorf("--pid %d: %w", pid, err)
	}
	return s, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux platform Go
// supports.
const clockTicks = 100

// processCPU returns the user plus system CPU time of a process (utime and stime, fields 14
// and 15 of /proc/<pid>/stat).
func processCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("cannot parse /proc/%s/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:])) // fields[0] is field 3 (state)
	if len(fields) < 13 {
		return 0, fmt.Errorf("cannot parse /proc/%s/stat", pid)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse /proc/%s/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
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

package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// Fields 3 to 17 after the name: state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime.
	const times = " S 41 41 41 0 -1 4194560 100 0 0 0 250 50 700 300 20 0 1 0 99 1000 10"
	for _, tc := range []struct {
		name, stat, comm string
	}{
		{"a plain name", "42 (postgres)" + times, "postgres"},
		{"a name with spaces and parentheses", "42 (a) b (c))" + times, "a) b (c)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseStat("42", []byte(tc.stat))
			if err != nil {
				t.Fatal(err)
			}
			want := procStat{comm: tc.comm, ppid: 41, utime: 2500 * time.Millisecond, stime: 500 * time.Millisecond,
				cutime: 7 * time.Second, cstime: 3 * time.Second}
			if st != want {
				t.Errorf("parseStat = %+v, want %+v", st, want)
			}
		})
	}
	for _, bad := range []string{"", "42 postgres S 1", "42 (postgres) S 1 2 3", "42 (postgres)" + strings.Replace(times, "250", "x", 1)} {
		if _, err := parseStat("42", []byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestReadStatOfThisProcess(t *testing.T) {
	st, err := readStat("self")
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", st.ppid, os.Getppid())
	}
}

func TestPostgresCPURefusesAnotherProcess(t *testing.T) {
	_, _, err := postgresCPU(os.Getpid(), "")
	if err == nil || !strings.Contains(err.Error(), "not a PostgreSQL postmaster") {
		t.Errorf("postgresCPU of the test itself: %v, want a refusal", err)
	}
	if _, err := sample(nil, os.Getpid(), ""); err == nil || !strings.Contains(err.Error(), "--pg-pid") {
		t.Errorf("sample with a --pg-pid that is no postmaster: %v, want an error naming --pg-pid", err)
	}
}

func TestTitleDatabase(t *testing.T) {
	for _, tc := range []struct {
		title, db string
		ok        bool
	}{
		{"postgres: 15/main: postgres wad_a 127.0.0.1(51234) idle\x00", "wad_a", true},
		{"postgres: webauthnd wad_b [local] SELECT", "wad_b", true},
		{"postgres: app db ::1(5432) idle in transaction", "db", true},
		{"postgres: 15/main: autovacuum worker wad_c", "wad_c", true},
		{"postgres: 15/main: walwriter   ", "", false},
		{"postgres: checkpointer", "", false},
		{"postgres: 15/main: logical replication launcher", "", false},
		{"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", "", false},
		{"", "", false},
	} {
		if db, ok := titleDatabase(tc.title); db != tc.db || ok != tc.ok {
			t.Errorf("titleDatabase(%q) = %q, %v; want %q, %v", tc.title, db, ok, tc.db, tc.ok)
		}
	}
}

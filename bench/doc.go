// Command bench is webauthnd's load harness. It drives complete WebAuthn ceremonies over HTTP
// against a running server, as relying-party backends do, with N concurrent virtual users,
// each holding a software authenticator (one ES256 passkey).
//
//	go run ./bench [--url http://127.0.0.1:8080[,URL2...]] [--license KEY | --license-file FILE]
//	               [--scenario register|signin|discoverable] [--routes u1|encrypted]
//	               [--users 8] [--duration 10s [--count N] [--rate R] | --burst 20000 [--settle 302s]]
//	               [--admin-socket DATA/admin.sock[,DATA2/admin.sock...]]
//	               [--seeded N --seed S] [--pid SERVER_PID[,PID2...]] [--pg-pid POSTMASTER_PID]
//	               [--json FILE|-]
//	go run ./bench seed --data-dir DIR --users N --seed S [--community default]
//
// A run has three phases: it times the cryptographic floor (one P-256 signature verification
// plus one ES256 signature, on one core), registers one passkey per virtual user (sign-in
// scenarios only), then measures: steady load for --duration, or a burst of --burst ceremonies
// started as fast as --users workers allow. It prints a progress line each second on stderr and
// a report at the end: ceremonies per second, latency percentiles of each call, errors by HTTP
// status and by error code (429s apart), the harness's own CPU per ceremony, how busy the rest
// of the machine was, and, with --pid, the server's CPU time per ceremony and as a multiple of
// the floor.
//
// Several nodes over one PostgreSQL database: --url takes the nodes' URLs (comma-separated, or
// the flag repeated), and ceremony n sends its options to node n and its result to node n+1,
// round robin, so that with two nodes or more every result reaches a node that did not issue
// its options, as behind a load balancer without stickiness (the setup's registrations too).
// --pid takes every node's pid, and the report adds up their CPU. --pg-pid names the
// PostgreSQL postmaster (the first line of postmaster.pid in its data directory): the report
// gives the CPU time of it and of its children (the backends, the WAL writer, the
// checkpointer; children that ended during the run through the postmaster's cutime), per
// ceremony, beside the nodes'. That is every database of the server: measure where no one else
// uses it. --admin-socket takes every node's admin socket, in --url order: the harness reads
// GET /admin/stats before and after the measured phase and reports the store's round trips to
// the database per ceremony (a node over PostgreSQL counts its pool's round trips; Badger
// makes none). bench/cluster.sh starts the nodes over a fresh database and reproduces the
// figures of "Many nodes over PostgreSQL" in docs/performance.md.
//
// --routes encrypted drives the same ceremonies through the sealed routes (/webauthn/attestation/…
// and /webauthn/assertion/… behind BlockID's envelope) instead of /webauthn/u1/…: the harness
// reads the curve from /webauthn/environment and the service's key from /webauthn/publickeys,
// gives each virtual user its own key pair and shared AES-256-GCM key (one ECDH per user, as an
// SDK per session), and seals every call with a fresh request id. Only the transport differs;
// the latencies include sealing and opening.
//
// --admin-socket, with --burst, also checks the burst's aftermath: it reads GET
// /admin/stats?gc=1 on the server's admin Unix socket (every node's, added up) before the
// burst and --settle after it (by default the server's default --ceremony-timeout, 300 s,
// plus 2 s, when every abandoned ceremony has timed out), and
// reports the live ceremonies left (target 0), the live heap before and after (target: at most
// 10 % more), goroutines, and with --pid the resident set, with a verdict. Both readings are
// taken with the harness's idle connections closed, as a burst's clients go away: an idle
// keep-alive connection holds a goroutine and its buffers on the server until its idle timeout.
//
// A store of a million passkeys is written directly, not registered over HTTP: start webauthnd
// once on a data directory (it makes the default community and its license), stop it, run
// `bench seed --data-dir DIR --users N --seed S`, which writes users seed-0 … seed-(N-1) with one
// ES256 passkey each, keys derived from S, then start the server again and run with
// --seeded N --seed S: the virtual users sign in as seeded users chosen at random (each worker
// its own share, so no passkey runs two ceremonies at once) and register nothing. A user's
// counter starts, at its first sign-in of a run, at the sixteenths of a second since 2026, so
// later runs on the same store start above what earlier ones left.
//
// The harness refuses URLs that are not loopback: it is a benchmark, not a load generator for
// other people's servers. A run imports nothing of webauthnd: it speaks only the public API and
// carries its own envelope, as an SDK does. Only `bench seed` imports webauthnd code
// (persistence), because the issue asks for a store written directly.
//
// The scripts beside it run it against fresh servers and print medians (docs/performance.md
// says which figure each one gives): figures.sh (the figures of one build), cluster.sh (nodes
// over PostgreSQL), ab.sh (builds or settings interleaved, a fresh server per run), alternate.sh
// (builds side by side, alternating short windows, paired ratios) and bigstore.sh (a million
// passkeys and the memory they need). What they share is in lib.sh.
package main

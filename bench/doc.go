// Command bench is webauthnd's load harness. It drives complete WebAuthn ceremonies over HTTP
// against a running server, as relying-party backends do, with N concurrent virtual users,
// each holding a software authenticator (one ES256 passkey).
//
//	go run ./bench [--url http://127.0.0.1:8080] [--license KEY | --license-file FILE]
//	               [--scenario register|signin|discoverable] [--routes u1]
//	               [--users 8] [--duration 10s [--count N] [--rate R] | --burst 20000]
//	               [--pid SERVER_PID] [--json FILE|-]
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
// The harness refuses URLs that are not loopback: it is a benchmark, not a load generator for
// other people's servers. It imports nothing of webauthnd: it speaks only the public API.
// figures.sh runs it against fresh servers to reproduce docs/performance.md.
package main

package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// HealthChecks are the checks of /healthz besides draining. Each is bounded in time by the
// handler (healthCheckTimeout), whether or not it honours its context.
type HealthChecks struct {
	// Store checks that the store answers a read.
	Store func(ctx context.Context) error
	// Actors checks that the engine's actors answer a message.
	Actors func(ctx context.Context) error
	// Storage checks the free-space reserve: a storage_full error below it. Over PostgreSQL
	// the storage is the database's, and the check always passes; nil skips it (always "ok").
	Storage func(ctx context.Context) error
}

// healthCheckTimeout bounds each check of /healthz: a store that hangs makes the check answer
// "timeout" rather than hang the load balancer's probe (which commonly gives up after 5 s).
const healthCheckTimeout = 2 * time.Second

// What a check of /healthz says; "ok" when it passes.
const (
	checkOK          = "ok"
	checkUnavailable = "unavailable"  // it answered with an error
	checkTimeout     = "timeout"      // it did not answer within healthCheckTimeout
	checkStorageFull = "storage_full" // below the free-space reserve
	checkDraining    = "draining"     // shutting down
)

// errCheckTimeout is a check that did not answer in time.
var errCheckTimeout = errors.New("no answer within the health check's time")

// handleHealthz answers 200 when the service can take every request, else 503. The body says
// the result of each check (checks: store, actors, storage, draining), which ones failed
// (failed, in that order), and for clients of the first version the one reason a load
// balancer acts on: draining (shutting down), storage_full (free space below the reserve:
// registrations are refused, reads and, above a quarter of the reserve, sign-ins go on), or
// unavailable (the store or the engine does not answer). The checks run together, each at
// most timeout; their errors go to the log, never to the body (a database's error can name
// its host and user).
func handleHealthz(checks HealthChecks, draining func() bool, version string, timeout time.Duration, log *zap.Logger) http.HandlerFunc {
	probes := []*probe{
		{name: "store", check: checks.Store},
		{name: "actors", check: checks.Actors},
		{name: "storage", check: checks.Storage},
	}
	return func(w http.ResponseWriter, r *http.Request) {
		results := make([]string, len(probes))
		var wg sync.WaitGroup
		for i, p := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = p.result(r.Context(), timeout, log)
			}()
		}
		drainingResult := checkOK
		if draining != nil && draining() {
			drainingResult = checkDraining
		}
		wg.Wait()

		body := map[string]any{"version": version}
		all := map[string]string{"draining": drainingResult}
		failed := []string{}
		reason := ""
		for i, p := range probes {
			all[p.name] = results[i]
			if results[i] != checkOK {
				failed = append(failed, p.name)
				// unavailable wins over storage_full: a store that does not answer serves nothing.
				switch {
				case results[i] != checkStorageFull:
					reason = string(messages.CodeUnavailable)
				case reason == "":
					reason = string(messages.CodeStorageFull)
				}
			}
		}
		if drainingResult != checkOK {
			failed = append(failed, "draining")
			reason = checkDraining // wins: the instance is going away whatever else holds
		}
		body["checks"], body["failed"] = all, failed
		switch reason {
		case "":
			body["status"], body["code"] = "ok", "200"
			encode(w, http.StatusOK, body)
		default:
			body["status"], body["code"], body["reason"] = "unavailable", "503", reason
			if reason == checkDraining {
				body["status"] = "draining"
			}
			encode(w, http.StatusServiceUnavailable, body)
		}
	}
}

// probe runs one check of /healthz. Concurrent probes of the same check share one call, and a
// call that never returns (a store that hangs and ignores its context) holds one goroutine,
// not one per probe: a load balancer that polls every second piles nothing up.
type probe struct {
	name  string
	check func(ctx context.Context) error

	mu   sync.Mutex
	call *probeCall // the call in flight, if any
}

type probeCall struct {
	done chan struct{}
	err  error
}

// result runs the check (or joins the call in flight), waits at most timeout, and says how it
// went; a failure is logged with its cause.
func (p *probe) result(ctx context.Context, timeout time.Duration, log *zap.Logger) string {
	if p.check == nil {
		return checkOK
	}
	err := p.run(ctx, timeout)
	if err == nil {
		return checkOK
	}
	result := checkUnavailable
	switch {
	case errors.Is(err, errCheckTimeout) || errors.Is(err, context.DeadlineExceeded):
		result = checkTimeout
	case messages.ErrorCode(err) == messages.CodeStorageFull:
		result = checkStorageFull
	}
	log.Warn("health check failed", zap.String("check", p.name), zap.String("result", result), zap.Error(err))
	return result
}

func (p *probe) run(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	c := p.call
	if c == nil {
		c = &probeCall{done: make(chan struct{})}
		p.call = c
		go func() {
			// Not the request's context: the call is shared, and one caller leaving must not
			// cancel it for the others.
			checkCtx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			c.err = p.check(checkCtx)
			p.mu.Lock()
			p.call = nil
			p.mu.Unlock()
			close(c.done)
		}()
	}
	p.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-c.done:
		return c.err
	case <-timer.C:
		return errCheckTimeout
	case <-ctx.Done():
		return errCheckTimeout
	}
}

package httpapi

// Prometheus metrics: the registry, the engine's Observer, the public API's request metrics,
// and the handler of --metrics-addr. docs/operations.md says what each series tells an
// operator; metrics_test.go checks that every series the docs' alert rules and dashboard use is
// here.
//
// Labels come from bounded sets only: route patterns as routes.go registers them (never a raw
// path, which would carry usernames, DIDs and credential ids), methods, statuses, error codes,
// ceremony kinds, and community ids (bounded by the communities the store holds: the license
// check refuses a community that does not exist before the engine sees it).

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webauthnd/webauthnd/messages"
)

// The route labels of requests that no route of routes.go took: refused before routing (a
// privateKey header) or matching no path (NotFound), and a path whose route has no handler for
// the method (MethodNotAllowed).
const (
	routeUnmatched        = "unmatched"
	routeMethodNotAllowed = "method_not_allowed"
)

// refusalReasons are the error codes that webauthnd_refusals_total counts: requests turned
// away before or instead of their ceremony (overload, limits, the envelope, the license, the
// store), as opposed to a ceremony's own outcome.
var refusalReasons = []messages.Code{
	messages.CodeBusy, messages.CodeRateLimited,
	messages.CodeEnvelopeInvalid, messages.CodeRequestInvalid, messages.CodeRequestStale, messages.CodeRequestReplayed,
	messages.CodeLicenseMissing, messages.CodeLicenseInvalid, messages.CodeLicenseDisabled, messages.CodeLicenseExpired,
	messages.CodeLicenseScope,
	messages.CodePrivateKeyRefused, messages.CodeBodyTooLarge,
	messages.CodeUnavailable, messages.CodeStorageFull,
}

// methods are the method labels; any other method is "other".
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions}

// Metrics holds webauthnd's Prometheus registry: its own (not the global one, so that tests and
// several servers in one process do not share series), with the Go runtime and process
// collectors. It is the engine's Observer (see actors.Observer): every method is a counter or
// histogram update and never blocks.
type Metrics struct {
	registry *prometheus.Registry

	ceremonies       *prometheus.CounterVec
	ceremonyDuration map[messages.CeremonyKind]prometheus.Observer
	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	refusals         map[messages.Code]prometheus.Counter
	batchSize        prometheus.Histogram
	commitDuration   prometheus.Histogram
	cloneWarnings    *prometheus.CounterVec
	tokens           *prometheus.CounterVec

	// unmatched are the series of requests no route took, by label and method.
	mu        sync.Mutex
	unmatched map[[2]string]*routeMetrics
}

// NewMetrics returns the registry with every series of webauthnd. live, when set, reports the
// live ceremonies of each community on this node; it is read at each scrape, off the
// ceremonies' path, within the scrape's time.
func NewMetrics(live func(context.Context) map[string]int) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		ceremonies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webauthnd_ceremonies_total",
			Help: "Ceremonies ended on this node, by kind (registration, signin, discoverable), community and outcome (ok, ceremony_expired, or the error code answered).",
		}, []string{"kind", "community", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webauthnd_http_requests_total",
			Help: "HTTP requests of the public port, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "webauthnd_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests of the public port, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webauthnd_store_commit_batch_size",
			Help:    "Writes grouped into one commit of the store by the writer (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webauthnd_store_commit_duration_seconds",
			Help:    "Time the store took to commit one batch of writes (synced).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 10},
		}),
		cloneWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webauthnd_clone_warnings_total",
			Help: "Sign-ins answered with a clone warning (the passkey's signature counter went backwards, at that sign-in or before), by community.",
		}, []string{"community"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webauthnd_tokens_issued_total",
			Help: "Signature tokens issued, by community.",
		}, []string{"community"}),
		unmatched: map[[2]string]*routeMetrics{},
	}
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "webauthnd_ceremony_duration_seconds",
		Help: "Time from a ceremony's options to its result, by kind: mostly the user's, at the authenticator.",
		// From a platform authenticator's touch to the five minutes of the default timeout.
		Buckets: []float64{.25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300},
	}, []string{"kind"})
	m.ceremonyDuration = map[messages.CeremonyKind]prometheus.Observer{}
	for _, k := range messages.CeremonyKinds {
		m.ceremonyDuration[k] = durations.WithLabelValues(string(k))
	}
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webauthnd_refusals_total",
		Help: "Requests refused before or instead of their ceremony, by reason (the error code answered: busy, rate_limited, envelope, license and store refusals).",
	}, []string{"reason"})
	m.refusals = map[messages.Code]prometheus.Counter{}
	for _, code := range refusalReasons {
		m.refusals[code] = refusals.WithLabelValues(string(code)) // every reason at 0 from the start
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ceremonies, durations, m.requests, m.requestDuration, refusals,
		m.batchSize, m.commitDuration, m.cloneWarnings, m.tokens,
	)
	if live != nil {
		reg.MustRegister(liveCollector{live: live, desc: prometheus.NewDesc("webauthnd_live_ceremonies",
			"Ceremonies in progress on this node (options answered, result not yet), by community.", []string{"community"}, nil)})
	}
	return m
}

// Handler serves the registry in the Prometheus text format at /metrics, and 404 at any other
// path: it is what --metrics-addr listens with, never the public port.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(m.registry,
		promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry, Timeout: 10 * time.Second})))
	return mux
}

// CeremonyEnded counts a ceremony by kind, community and outcome, and observes its time from
// options to result when it had a result (took > 0).
func (m *Metrics) CeremonyEnded(kind messages.CeremonyKind, community string, outcome messages.Code, took time.Duration) {
	m.ceremonies.WithLabelValues(string(kind), community, string(outcome)).Inc()
	if o, ok := m.ceremonyDuration[kind]; ok && took > 0 {
		o.Observe(took.Seconds())
	}
}

// Committed observes one group commit's batch size and duration.
func (m *Metrics) Committed(batch int, took time.Duration) {
	m.batchSize.Observe(float64(batch))
	m.commitDuration.Observe(took.Seconds())
}

// CloneWarning counts a sign-in answered with a clone warning.
func (m *Metrics) CloneWarning(community string) { m.cloneWarnings.WithLabelValues(community).Inc() }

// TokenIssued counts a signature token.
func (m *Metrics) TokenIssued(community string) { m.tokens.WithLabelValues(community).Inc() }

// liveCollector reports the live ceremonies of each community when scraped.
type liveCollector struct {
	desc *prometheus.Desc
	live func(context.Context) map[string]int
}

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	// Each supervisor answers in microseconds; the bound keeps a stuck one from holding the
	// scrape.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for community, n := range c.live(ctx) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), community)
	}
}

// routeMetrics are the series of one route and method, resolved when routes.go registers the
// route, so that a request costs no label look-up but its status's, and that one only the
// first time the route answers the status.
type routeMetrics struct {
	duration prometheus.Observer
	requests *prometheus.CounterVec // curried with route and method
	mu       sync.Mutex
	statuses atomic.Pointer[map[int]prometheus.Counter] // copied on write
}

// route returns the series of a route pattern and method.
func (m *Metrics) route(pattern, method string) *routeMetrics {
	labels := prometheus.Labels{"route": pattern, "method": method}
	rm := &routeMetrics{duration: m.requestDuration.With(labels), requests: m.requests.MustCurryWith(labels)}
	rm.statuses.Store(&map[int]prometheus.Counter{})
	return rm
}

// unmatchedRoute returns the series of requests that no route took, labelled label, with the
// method reduced to a known one: a client chooses the method of a request that matches nothing.
func (m *Metrics) unmatchedRoute(label, method string) *routeMetrics {
	known := "other"
	for _, k := range methods {
		if method == k {
			known = k
			break
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{label, known}
	rm, ok := m.unmatched[key]
	if !ok {
		rm = m.route(label, known)
		m.unmatched[key] = rm
	}
	return rm
}

// observe records one answered request.
func (rm *routeMetrics) observe(status int, took time.Duration) {
	rm.duration.Observe(took.Seconds())
	c, ok := (*rm.statuses.Load())[status]
	if !ok {
		rm.mu.Lock()
		old := *rm.statuses.Load()
		if c, ok = old[status]; !ok {
			c = rm.requests.WithLabelValues(strconv.Itoa(status))
			grown := make(map[int]prometheus.Counter, len(old)+1)
			for k, v := range old {
				grown[k] = v
			}
			grown[status] = c
			rm.statuses.Store(&grown)
		}
		rm.mu.Unlock()
	}
	c.Inc()
}

// instrument counts and times every request of next (the public API): by the route that
// routes.go's labelled wrapper names, or as unmatched; and counts the refusals among the error
// codes the error writer sets. Nil m: next as it is.
func (m *Metrics) instrument(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The request log's recorder (withRequestLog wraps every request of the public API)
		// already keeps the status and the code; one of its own only when called without it.
		rec, ok := w.(*statusRecorder)
		if !ok {
			rec = &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		}
		next.ServeHTTP(rec, r)
		rm := rec.route
		if rm == nil {
			label := routeUnmatched
			if rec.methodNotAllowed {
				label = routeMethodNotAllowed
			}
			rm = m.unmatchedRoute(label, r.Method)
		}
		rm.observe(rec.status, time.Since(start))
		if rec.code != "" {
			if c, ok := m.refusals[messages.Code(rec.code)]; ok {
				c.Inc()
			}
		}
	})
}

// labelled names the route of the requests that h answers, for instrument. Nil m: h as it is.
func (m *Metrics) labelled(method, pattern string, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	rm := m.route(pattern, method)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*statusRecorder); ok {
			rec.route = rm
		}
		h.ServeHTTP(w, r)
	})
}

// markMethodNotAllowed marks a request that the router's MethodNotAllowed answers, for instrument.
func markMethodNotAllowed(w http.ResponseWriter) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.methodNotAllowed = true
	}
}

package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/actors"
	"github.com/webauthnd/webauthnd/httpapi"
)

// The metrics implement the engine's Observer.
var _ actors.Observer = (*httpapi.Metrics)(nil)

// observerOf is metrics as the engine's Observer: none when metrics are off (a nil *Metrics in
// the interface would not be nil).
func observerOf(metrics *httpapi.Metrics) actors.Observer {
	if metrics == nil {
		return nil
	}
	return metrics
}

// listenMetrics serves /metrics on addr, a listener of its own: the public port never serves
// it. An empty addr (the default) serves nothing and returns a nil server.
func listenMetrics(addr string, metrics *httpapi.Metrics, log *zap.Logger) (*http.Server, net.Listener, error) {
	if addr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           metrics.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log),
	}
	return srv, ln, nil
}

package httpapi

import (
	"context"
	_ "embed"
	"net/http"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

//go:embed openapi.json
var openAPIDocument []byte

// handleHealthz answers 200 when the service can take every request, else 503 with a reason:
// draining (shutting down), storage_full (free space below the reserve: registrations are
// refused, reads and, above a quarter of the reserve, sign-ins go on), or unavailable (the
// store or the engine does not answer). A load balancer takes the instance out either way.
func handleHealthz(health func(context.Context) error, draining func() bool, version string, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if draining != nil && draining() {
			encode(w, http.StatusServiceUnavailable, map[string]string{"status": "draining", "code": "503", "version": version, "reason": "draining"})
			return
		}
		if err := health(r.Context()); err != nil {
			reason := messages.ErrorCode(err)
			if reason != messages.CodeStorageFull {
				reason = messages.CodeUnavailable
			}
			log.Warn("health check failed", zap.String("reason", string(reason)), zap.Error(err))
			encode(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "code": "503", "version": version, "reason": string(reason)})
			return
		}
		encode(w, http.StatusOK, map[string]string{"status": "ok", "code": "200", "version": version})
	}
}

func handleEnvironment(cfg Config, envelope *Keyring) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, environment(cfg, envelope.Current()))
	}
}

// environment is what /environment tells any caller: the reference's keys, with values a
// client needs (timeouts, the envelope's curve, the public URL). The Go version, the CPU count
// and the platform are left out: they help an attacker pick an exploit and no client needs them.
func environment(cfg Config, envelope *EnvelopeKey) map[string]any {
	return map[string]any{
		"sessionMaxAgeMinute":       int(cfg.CeremonyTimeout.Minutes()),
		"appSessionIdleTimeout":     int(cfg.CeremonyTimeout.Minutes()),
		"instanceType":              "webauthnd",
		"allowed_time_span":         int(cfg.AllowedTimeSpan.Seconds()),
		"samlNotOrAfterSkewMinutes": 0,
		"jwtExpirationInMs":         cfg.TokenTTL.Milliseconds(),
		"wxMaxBuffer":               bodyLimit,
		"ec_curve_name":             envelope.Curve(),
		"env": map[string]any{
			"direct":      map[string]any{"publicUrl": cfg.PublicURL},
			"application": map[string]any{"name": "webauthnd"},
			"system":      map[string]any{},
			"os":          map[string]any{},
		},
	}
}

func handlePublicKeys(envelope *Keyring, tokenKeys func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]any{"publicKey": envelope.Current().PublicKey(), "keys": tokenKeys()})
	}
}

// directoryKeys are the entries of /sd that the reference lists.
var directoryKeys = []string{"adminconsole", "sessions", "licenses", "global_caas", "user_management", "acr", "local_caas"}

// directory is the service directory: every key non-empty, by default <public-url>/<key>, and
// webauthn = <public-url>/webauthn, which BlockID SDKs read.
func directory(cfg Config) map[string]string {
	base := trimSlash(cfg.PublicURL)
	sd := map[string]string{"webauthn": base + "/webauthn"}
	for _, k := range directoryKeys {
		sd[k] = base + "/" + k
	}
	for k, v := range cfg.Directory {
		if v != "" {
			sd[k] = v
		}
	}
	return sd
}

func handleDirectory(cfg Config) http.HandlerFunc {
	body := directory(cfg)
	return func(w http.ResponseWriter, r *http.Request) { encode(w, http.StatusOK, body) }
}

func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	}
}

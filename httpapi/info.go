package httpapi

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.json
var openAPIDocument []byte

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

package main

import (
	"encoding/base64"
	"sync"
	"testing"

	"github.com/descope/virtualwebauthn"
)

// TestDuplicateRegistrationResultCreatesOneCredential is guarantee 2 for registrations: the
// same attestation result sent 16 times at once (as a client that retries everything would)
// is accepted exactly once, every other copy is a 4xx, and the user ends with one credential.
// Both ways a result finds its ceremony are covered: by the challenge alone, and with the
// ceremony's sessionInfo header.
func TestDuplicateRegistrationResultCreatesOneCredential(t *testing.T) {
	s := startServer(t, "")
	for _, tc := range []struct {
		name        string
		username    string
		sessionInfo bool
	}{{"by challenge", "ivan", false}, {"with sessionInfo", "judy", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPasskey(localRP, tc.username)
			opts, session := s.registrationOptions(t, s.License, "default", p)
			body := ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
			headers := lic(s.License)
			if tc.sessionInfo {
				headers["sessionInfo"] = session
			}
			const copies = 16
			statuses := make([]int, copies)
			codes := make([]any, copies)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range copies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					var res map[string]any
					statuses[i], res, _ = s.call(t, "POST", "/webauthn/u1/attestation/result", headers, body)
					codes[i] = res["code"]
				}()
			}
			close(start)
			wg.Wait()
			ok := 0
			for i, st := range statuses {
				switch {
				case st == 200:
					ok++
				case st < 400 || st >= 500:
					t.Errorf("copy %d answered %d (%v), want 200 or a 4xx", i, st, codes[i])
				}
			}
			if ok != 1 {
				t.Fatalf("%d of %d concurrent copies succeeded, want exactly 1 (%v %v)", ok, copies, statuses, codes)
			}

			// One credential: the user's sign-in options allow exactly that one.
			_, sign := s.signInOptions(t, s.License, "default", "localhost", tc.username)
			allowed, _ := sign["allowCredentials"].([]any)
			if len(allowed) != 1 || allowed[0].(map[string]any)["id"] != base64.RawURLEncoding.EncodeToString(p.cred.ID) {
				t.Fatalf("allowCredentials after 16 copies = %v, want only the registered credential", allowed)
			}
			p.auth.Options.UserHandle = []byte(opts.UserID)
			p.auth.AddCredential(p.cred)
			s.signIn(t, s.License, "default", p, true)
		})
	}
}

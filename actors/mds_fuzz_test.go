package actors

import (
	"encoding/json"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// checkMDSOutcome is what any input must give: a refusal that is an invalid_request, or a
// BLOB whose entries the store accepts and whose count is right.
func checkMDSOutcome(t *testing.T, got MDSBlob, err error) {
	t.Helper()
	if err != nil {
		if code := messages.ErrorCode(err); code != messages.CodeInvalidRequest {
			t.Fatalf("refused with %s (%v), want invalid_request", code, err)
		}
		return
	}
	if got.Blob.Number < 1 || got.Blob.Entries != len(got.Entries) {
		t.Fatalf("accepted number %d with %d entries (%d counted)", got.Blob.Number, len(got.Entries), got.Blob.Entries)
	}
	seen := map[string]bool{}
	for i, e := range got.Entries {
		if err := persistence.ValidateMDSEntry(e); err != nil {
			t.Fatalf("accepted entry %d the store refuses: %v", i, err)
		}
		for _, id := range append([]string{e.AAGUID}, e.KeyIdentifiers...) {
			if id != "" && seen[id] {
				t.Fatalf("accepted two entries of %s", id)
			}
			seen[id] = true
		}
	}
}

// FuzzVerifyMDSBlob: whatever the bytes, verification refuses them with an invalid_request or
// returns entries the store accepts, and never panics. Seeds: a BLOB of real entries signed by
// a test CA through x5c, one signed by the root itself, and an altered one.
func FuzzVerifyMDSBlob(f *testing.F) {
	ca := newTestCA(f)
	payload := testPayload(f, 3, "2030-01-01", blob9Entries(f, 6)[5])
	good := ca.sign(f, nil, payload)
	f.Add(good)
	f.Add(ca.signWith(f, ca.rootKey, map[string]any{"x5c": nil}, payload))
	f.Add(tamper(good, 1))
	f.Add([]byte("e30.e30.e30"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := VerifyMDSBlob(raw, ca.root.Raw, clockBlob9)
		checkMDSOutcome(t, got, err)
	})
}

// FuzzDecodeMDSPayload: a verified payload is still untrusted in its shape (a vendor's entry
// may be anything); whatever it holds, decoding refuses it with an invalid_request or returns
// entries the store accepts, and never panics. Seeds: real entries of BLOB 9 (U2F, UAF and the
// smallest FIDO2 one; the fuzzer mutates small inputs faster) and a repeated entry.
func FuzzDecodeMDSPayload(f *testing.F) {
	entries := blob9Entries(f, 6)
	for _, i := range []int{0, 3, 5} {
		f.Add(testPayload(f, 9, "2021-12-01", entries[i]))
	}
	f.Add(testPayload(f, 9, "2021-12-01", entries[5], entries[5]))
	f.Add(testPayload(f, 9, "2021-12-01", json.RawMessage(`{"aaguid":"00000000-0000-0000-0000-000000000000","statusReports":[{"status":"REVOKED","effectiveDate":"2021-01-01"}]}`)))
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := decodeMDSPayload(payload, clockBlob9)
		checkMDSOutcome(t, got, err)
	})
}

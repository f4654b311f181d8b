package persistence

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDiffRecords(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	cred := Credential{ID: []byte("id"), Transports: []string{"usb"}, Created: at, SignCount: 3}
	ring := Keyring{Keys: []KeyRecord{{Kind: "ES256", Private: []byte("new"), Created: at}, {Kind: "ES256", Private: []byte("old"), Retired: at}}}
	for _, tc := range []struct {
		name string
		a, b any
		skip []string
		want string
	}{
		{"the same", cred, cred, nil, ""},
		{"a time in another zone is the same instant", cred, with(cred, func(c *Credential) { c.Created = at.In(time.FixedZone("x", 3600)) }), nil, ""},
		{"nil and empty slices are alike", Credential{}, Credential{ID: []byte{}, Transports: []string{}}, nil, ""},
		{"a counter", cred, with(cred, func(c *Credential) { c.SignCount = 4 }), nil, "SignCount"},
		{"a nanosecond", cred, with(cred, func(c *Credential) { c.Created = at.Add(1) }), nil, "Created"},
		{"a transport", cred, with(cred, func(c *Credential) { c.Transports = []string{"nfc"} }), nil, "Transports[0]"},
		{"a skipped field", cred, with(cred, func(c *Credential) { c.Created = at.Add(time.Hour) }), []string{"Created"}, ""},
		{"a retired key's secret, named but not shown", ring, Keyring{Keys: []KeyRecord{ring.Keys[0], {Kind: "ES256", Private: []byte("other"), Retired: at}}}, nil, "Keys[1].Private"},
		{"a missing key", ring, Keyring{Keys: ring.Keys[:1]}, nil, "Keys (its length)"},
		{"JSON re-encoded means the same", MDSEntry{Entry: json.RawMessage(`{"a": [1, 2], "b": "x"}`)}, MDSEntry{Entry: json.RawMessage(`{"b":"x","a":[1,2]}`)}, nil, ""},
		{"JSON that means another thing", MDSEntry{Entry: json.RawMessage(`{"a":1}`)}, MDSEntry{Entry: json.RawMessage(`{"a":2}`)}, nil, "Entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := diffRecords(tc.a, tc.b, tc.skip...); got != tc.want {
				t.Fatalf("diffRecords = %q, want %q", got, tc.want)
			}
		})
	}
}

func with[T any](v T, change func(*T)) T {
	change(&v)
	return v
}

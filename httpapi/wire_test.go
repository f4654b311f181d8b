package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// TestWithStatus: the engine's options get status, errorMessage and the extra members, and
// stay one valid JSON object; what is not an object is an error, not a malformed answer.
func TestWithStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options string
		extra   []string
		want    map[string]any
		wantErr bool
	}{
		{"options", `{"challenge":"abc","timeout":30000}`, nil,
			map[string]any{"challenge": "abc", "timeout": 30000.0, "status": "success", "errorMessage": ""}, false},
		{"empty object", ` { } `, nil, map[string]any{"status": "success", "errorMessage": ""}, false},
		{"extra member escaped", `{"a":1}`, []string{"sessionInfo", `x"y\`},
			map[string]any{"a": 1.0, "status": "success", "errorMessage": "", "sessionInfo": `x"y\`}, false},
		{"not an object", `[1]`, nil, nil, true},
		{"empty", ``, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := withStatus([]byte(tc.options), tc.extra...)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("withStatus(%q) = %s, want an error", tc.options, out)
				}
				return
			}
			var got map[string]any
			if err != nil || json.Unmarshal(out, &got) != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("withStatus(%q) = %s, %v; want %v", tc.options, out, err, tc.want)
			}
		})
	}
}

// TestEnvironmentTellsNothingOfTheMachine: /environment keeps the reference's keys but not the
// Go version, CPU count or platform, which help an attacker and no client needs.
func TestEnvironmentTellsNothingOfTheMachine(t *testing.T) {
	key, err := NewEnvelopeKey(CurveSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(environment(Config{PublicURL: "http://localhost:8080", Version: "v9.9.9"}, key))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{runtime.Version(), runtime.GOOS, runtime.GOARCH, "goVersion", "cpus", "v9.9.9"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("/environment tells %q: %s", leak, raw)
		}
	}
	var env map[string]any
	_ = json.Unmarshal(raw, &env)
	for _, k := range []string{"sessionMaxAgeMinute", "appSessionIdleTimeout", "instanceType", "allowed_time_span",
		"samlNotOrAfterSkewMinutes", "jwtExpirationInMs", "wxMaxBuffer", "ec_curve_name", "env"} {
		if _, ok := env[k]; !ok {
			t.Errorf("the reference's key %q is missing", k)
		}
	}
}

// TestLenientBytesFastPathAgrees: a credential field's JSON string without escapes is read
// without encoding/json (plainJSONString); every other string goes through it. Both ways must
// give the same bytes, or the same refusal.
func TestLenientBytesFastPathAgrees(t *testing.T) {
	reference := func(data []byte) ([]byte, error) {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, err
		}
		return decodeLenient(s)
	}
	for _, in := range []string{
		`"AQID"`, `"AQ=="`, `"A-_w"`, `"A+/w"`, `""`, `"a\/b"`, `"\u0041QID"`, `"AQ\"ID"`,
		`"AQ\\ID"`, "\"tab\there\"", `"é"`, `"AQID`, `AQID"`, `123`, `"!!"`, `" AQID"`,
	} {
		t.Run(in, func(t *testing.T) {
			var got lenientBytes
			err := got.UnmarshalJSON([]byte(in))
			want, wantErr := reference([]byte(in))
			if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
				t.Errorf("UnmarshalJSON(%s) = %x, %v; through encoding/json: %x, %v", in, []byte(got), err, want, wantErr)
			}
		})
	}
}

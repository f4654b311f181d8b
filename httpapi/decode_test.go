package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// TestUnmarshalStrict is the spec of the one JSON decoder: a name equal to a field binds, a
// name that folds to a field's is refused naming the spelling, a name twice is refused, any
// other name is ignored; in the body and in every nested object of a known shape.
func TestUnmarshalStrict(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		into    func() any
		want    any    // the decoded value, when accepted
		refusal string // a part of the message, when refused
	}{
		{"exact names bind", `{"dns":"localhost","username":"alice"}`, func() any { return &optionsRequest{} },
			&optionsRequest{DNS: "localhost", Username: "alice"}, ""},
		{"unknown names are ignored", `{"dns":"localhost","dguid":"x","nested":{"USERNAME":"y","a":1,"a":2}}`, func() any { return &optionsRequest{} },
			&optionsRequest{DNS: "localhost"}, ""},
		{"a name in another case", `{"username":"alice","USERNAME":"bob"}`, func() any { return &optionsRequest{} },
			nil, `the field is spelled "username"`},
		{"a name in another case alone", `{"Username":"bob"}`, func() any { return &optionsRequest{} },
			nil, `the field is spelled "username"`},
		{"a long s (U+017F) folding to s", `{"uſername":"bob"}`, func() any { return &optionsRequest{} },
			nil, `the field is spelled "username"`},
		{"a Kelvin sign (U+212A) folding to k", `{"Kelvin":1}`, func() any {
			return &struct {
				X int `json:"kelvin"`
			}{}
		},
			nil, `the field is spelled "kelvin"`},
		{"a name twice", `{"username":"alice","username":"bob"}`, func() any { return &optionsRequest{} },
			nil, `names "username" twice`},
		{"an unknown name twice", `{"dguid":"a","dguid":"b"}`, func() any { return &optionsRequest{} },
			nil, `names "dguid" twice`},
		{"a nested object: the credential's response", `{"response":{"clientDataJSON":"AA","clientdatajson":"AQ"}}`,
			func() any { return &credentialRequest{} }, nil, `the field is spelled "clientDataJSON"`},
		{"a nested name twice", `{"response":{"signature":"AA","signature":"AQ"}}`,
			func() any { return &credentialRequest{} }, nil, `names "signature" twice`},
		{"free-form values are not looked into", `{"clientExtensionResults":{"credProps":{"rk":true},"CREDPROPS":1,"x":1,"x":2}}`,
			func() any { return &credentialRequest{} }, &credentialRequest{ClientExtensionResults: json.RawMessage(`{"credProps":{"rk":true},"CREDPROPS":1,"x":1,"x":2}`)}, ""},
		{"elements of a list of objects", `{"licenses":[{"id":"a"},{"ID":"b"}]}`,
			func() any {
				return &struct {
					Licenses []persistence.RevokeLicense `json:"licenses"`
				}{}
			}, nil, `the field is spelled "id"`},
		{"fields of an admin request", `{"community":{"id":"c","Id":"d"}}`,
			func() any { return &persistence.PutCommunity{} }, nil, `the field is spelled "id"`},
		{"the sealed requestid", `{"ts":1,"uuid":"a","Uuid":"b"}`, func() any { return &sealedRequestID{} },
			nil, `the field is spelled "uuid"`},
		{"trailing data", `{"dns":"a"} {}`, func() any { return &optionsRequest{} }, nil, "data after its JSON object"},
		{"not an object", `["dns"]`, func() any { return &optionsRequest{} }, nil, "expected shape"},
		{"malformed", `{"dns":`, func() any { return &optionsRequest{} }, nil, "not valid JSON"},
		{"not UTF-8", "{\"dns\":\"\xff\"}", func() any { return &optionsRequest{} }, nil, "not valid UTF-8"},
		{"too deep", strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100), func() any { return &optionsRequest{} },
			nil, "nested too deeply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.into()
			err := unmarshalStrict([]byte(tc.body), v)
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !reflect.DeepEqual(v, tc.want) {
					t.Fatalf("decoded %+v, want %+v", v, tc.want)
				}
				return
			}
			var e *messages.Error
			if !errors.As(err, &e) || e.Code != messages.CodeInvalidRequest || !strings.Contains(e.Message, tc.refusal) {
				t.Fatalf("got %v, want invalid_request saying %q", err, tc.refusal)
			}
		})
	}
}

// TestDecodeBodyLimit: a body over 64 KiB is 413, whatever it holds.
func TestDecodeBodyLimit(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"dns":"`+strings.Repeat("a", bodyLimit)+`"}`))
	r.Body = http.MaxBytesReader(w, r.Body, bodyLimit)
	var req optionsRequest
	if code := messages.ErrorCode(decode(r, &req)); code != messages.CodeBodyTooLarge {
		t.Fatalf("got %s, want body_too_large", code)
	}
}

// manyNames is a JSON object of distinct names (0, 1, 2, … in hex) of about size bytes, with
// extra members at its end.
func manyNames(size int, extra string) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	for i := 0; b.Len() < size-len(extra)-20; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"%x":0`, i)
	}
	b.WriteString(extra + "}")
	return b.Bytes()
}

// TestUnmarshalStrictManyNames: a name given twice is found among thousands, and a body of the
// vendor routes' 1 MiB made of distinct names decodes in linear time. Comparing each name with
// every earlier one took 10 s of CPU for that body (45 ms for 64 KiB on the public discovery
// route), which any caller could repeat at will.
func TestUnmarshalStrictManyNames(t *testing.T) {
	err := unmarshalStrict(manyNames(64<<10, `,"name":"a","updatedBy":"x","name":"b"`), &vendorPutRequest{})
	if code := messages.ErrorCode(err); code != messages.CodeInvalidRequest || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("a name twice after thousands of others: %v", err)
	}
	body := manyNames(vendorBodyLimit, `,"name":"a"`)
	start := time.Now()
	var req vendorPutRequest
	if err := unmarshalStrict(body, &req); err != nil || req.Name != "a" {
		t.Fatalf("distinct names: %v, name %q", err, req.Name)
	}
	// About 40 ms here (400 ms under -race); the quadratic check took 10 s (far more under -race).
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("%d bytes of distinct names took %s to decode", len(body), took)
	}
}

// TestCallerPoint: a caller's public point has exactly two spellings, X‖Y and 0x04‖X‖Y; the
// compressed and hybrid forms of the same point are refused.
func TestCallerPoint(t *testing.T) {
	xy := bytes.Repeat([]byte{7}, 64)
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"X‖Y", xy, true},
		{"0x04‖X‖Y", append([]byte{4}, xy...), true},
		{"hybrid 0x06‖X‖Y", append([]byte{6}, xy...), false},
		{"hybrid 0x07‖X‖Y", append([]byte{7}, xy...), false},
		{"compressed 0x02‖X", append([]byte{2}, xy[:32]...), false},
		{"compressed 0x03‖X", append([]byte{3}, xy[:32]...), false},
		{"empty", nil, false},
		{"66 bytes", append([]byte{4, 4}, xy...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := callerPoint(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("callerPoint: %v", err)
			}
			if tc.ok && !bytes.Equal(got, append([]byte{4}, xy...)) {
				t.Fatalf("spelled %x", got)
			}
		})
	}
}

// FuzzUnmarshalStrict feeds the strict decoder untrusted bodies for the request shapes. It must
// never panic; a refusal is invalid_request; what it accepts decodes exactly as Go's decoder
// does, and no name in it folds to a field without being that field.
func FuzzUnmarshalStrict(f *testing.F) {
	for _, seed := range []string{
		`{"dns":"localhost","username":"alice","displayName":"Alice","communityId":"default","tenantId":"default","dguid":"x"}`,
		`{"username":"alice","USERNAME":"bob"}`, `{"uſername":"bob"}`, `{"dns":"a","dns":"b"}`,
		`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"AA","attestationObject":"AA","transports":["usb"]},"clientExtensionResults":{}}`,
		`{"response":{"signature":"AA","Signature":"AA"}}`, `[]`, `null`, `{"a":[{"b":{}}]}`, `{} x`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, credential bool) {
		var strict, loose any = &optionsRequest{}, &optionsRequest{}
		if credential {
			strict, loose = &credentialRequest{}, &credentialRequest{}
		}
		err := unmarshalStrict(body, strict)
		if err != nil {
			if code := messages.ErrorCode(err); code != messages.CodeInvalidRequest {
				t.Fatalf("refused with %s: %v", code, err)
			}
			return
		}
		if err := json.Unmarshal(body, loose); err != nil {
			t.Fatalf("accepted what Go's decoder refuses: %v", err)
		}
		if !reflect.DeepEqual(strict, loose) {
			t.Fatalf("decoded %+v; Go's decoder gives %+v", strict, loose)
		}
		var names map[string]json.RawMessage
		if json.Unmarshal(body, &names) == nil {
			fields := shapeOf(reflect.TypeOf(strict)).fields
			for name := range names {
				for field := range fields {
					if name != field && strings.EqualFold(name, field) {
						t.Fatalf("accepted %q, which folds to the field %q", name, field)
					}
				}
			}
		}
	})
}

// BenchmarkUnmarshalStrict measures what the name check adds to decoding a result body.
func BenchmarkUnmarshalStrict(b *testing.B) {
	blob := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, n)) }
	body := []byte(`{"id":"` + blob(32) + `","rawId":"` + blob(32) + `","type":"public-key","authenticatorAttachment":"platform",` +
		`"response":{"clientDataJSON":"` + blob(140) + `","authenticatorData":"` + blob(37) + `","signature":"` + blob(71) +
		`","userHandle":"` + blob(32) + `"},"clientExtensionResults":{},"dns":"localhost","communityId":"default","tenantId":"default"}`)
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var req credentialRequest
			if err := unmarshalStrict(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var req credentialRequest
			if err := json.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

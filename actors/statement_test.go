package actors

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

const yubikey5 = "cb69481e-8ff7-4039-93ec-0a2729a154a8"

// yubikeyStatement is a real MDS3 statement (see testdata/README.md).
func yubikeyStatement(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("testdata/yubikey5-statement.json")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// editStatement returns the statement with its members changed by edit.
func editStatement(tb testing.TB, text string, edit func(m map[string]any)) string {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		tb.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestStatementsCheck(t *testing.T) {
	real := yubikeyStatement(t)
	minimal := `{"aaguid":"` + yubikey5 + `","description":"Minimal","protocolFamily":"fido2","schema":3}`
	good := []struct{ name, text string }{
		{"a real MDS3 statement", real},
		{"a minimal statement", minimal},
		{"its aaguid in upper case", strings.Replace(minimal, yubikey5, strings.ToUpper(yubikey5), 1)},
		{"members the types do not know", editStatement(t, minimal, func(m map[string]any) { m["futureMember"] = []any{1, "x"} })},
		{"authenticatorGetInfo naming the same AAGUID (CTAP's hex form)", editStatement(t, real, func(m map[string]any) {
			m["authenticatorGetInfo"] = map[string]any{"aaguid": strings.ReplaceAll(yubikey5, "-", "")}
		})},
		{"256 KiB exactly", minimal[:len(minimal)-1] + `,"legalHeader":"` + strings.Repeat("l", 256<<10-len(minimal)-len(`,"legalHeader":""`)) + `"}`},
	}
	for _, tc := range good {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			if err := (Statements{}).Check(tc.text, yubikey5); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
	bad := []struct {
		name, text, says string
	}{
		{"another AAGUID than the record's", strings.Replace(minimal, yubikey5, "6028b017-b1d4-4c02-b4b3-afcdafc96bb2", 1), "not the record's"},
		{"no aaguid (a U2F statement)", editStatement(t, minimal, func(m map[string]any) { delete(m, "aaguid") }), "has no aaguid"},
		{"the all-zero aaguid", strings.Replace(minimal, yubikey5, "00000000-0000-0000-0000-000000000000", 1), "all-zero"},
		{"an aaguid without hyphens", strings.Replace(minimal, yubikey5, strings.ReplaceAll(yubikey5, "-", ""), 1), "aaguid is not"},
		{"an aaguid in braces", strings.Replace(minimal, `"`+yubikey5+`"`, `"{`+yubikey5+`}"`, 1), "aaguid is not"},
		{"an aaguid that is a number", strings.Replace(minimal, `"`+yubikey5+`"`, `42`, 1), `"aaguid" is not a string`},
		{"protocolFamily u2f", strings.Replace(minimal, "fido2", "u2f", 1), "protocolFamily"},
		{"schema 2", strings.Replace(minimal, `"schema":3`, `"schema":2`, 1), "schema 2"},
		{"no description", strings.Replace(minimal, "Minimal", "  ", 1), "no description"},
		{"aaguid twice, the last another", minimal[:len(minimal)-1] + `,"aaguid":"6028b017-b1d4-4c02-b4b3-afcdafc96bb2"}`, "twice"},
		{"AAGUID in another case", minimal[:len(minimal)-1] + `,"AAGUID":"6028b017-b1d4-4c02-b4b3-afcdafc96bb2"}`, `it is spelled "aaguid"`},
		{"a root certificate that is not base64", editStatement(t, real, func(m map[string]any) { m["attestationRootCertificates"] = []any{"!!"} }), "attestationRootCertificates[0]"},
		{"a root certificate that is not DER", editStatement(t, real, func(m map[string]any) { m["attestationRootCertificates"] = []any{"AAAA"} }), "attestationRootCertificates[0]"},
		{"an icon that is no URL", editStatement(t, minimal, func(m map[string]any) { m["icon"] = "no url" }), "does not parse"},
		{"authenticatorGetInfo naming another AAGUID", editStatement(t, minimal, func(m map[string]any) {
			m["authenticatorGetInfo"] = map[string]any{"aaguid": "6028b017b1d44c02b4b3afcdafc96bb2"}
		}), "authenticatorGetInfo"},
		{"an array", `[` + minimal + `]`, "not a JSON object"},
		{"JSON null", `null`, "not a JSON object"},
		{"a JSON string", `"` + yubikey5 + `"`, "not a JSON object"},
		{"truncated", minimal[:40], "not a JSON object"},
		{"two objects", minimal + minimal, "data after"},
		{"not UTF-8", strings.Replace(minimal, "Minimal", "\xff", 1), "UTF-8"},
		{"over 256 KiB", minimal[:len(minimal)-1] + `,"legalHeader":"` + strings.Repeat("l", 256<<10) + `"}`, "256 KiB"},
		{"empty", ``, "not a JSON object"},
	}
	for _, tc := range bad {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			err := (Statements{}).Check(tc.text, yubikey5)
			var e *messages.Error
			if !errors.As(err, &e) || e.Code != messages.CodeInvalidRequest {
				t.Fatalf("Check = %v, want invalid_request", err)
			}
			if !strings.HasPrefix(e.Message, "metadata ") || !strings.Contains(e.Message, tc.says) {
				t.Fatalf("message %q: want it to start with \"metadata \" and say %q", e.Message, tc.says)
			}
		})
	}
}

// FuzzParseStatement feeds statement texts to ParseStatement: it never panics, refuses with a
// 400 invalid_request only, and what it accepts is a statement that Check accepts for its own
// AAGUID, not the zero one.
func FuzzParseStatement(f *testing.F) {
	real := yubikeyStatement(f)
	f.Add(real)
	f.Add(`{"aaguid":"` + yubikey5 + `","description":"d","protocolFamily":"fido2","schema":3}`)
	f.Add(`{"aaguid":"` + yubikey5 + `","description":"d","protocolFamily":"fido2","schema":3,"aaguid":"x"}`)
	f.Add(`{"aaguid":"` + yubikey5 + `","description":"d","protocolFamily":"fido2","schema":3,"authenticatorGetInfo":{"aaguid":"00"}}`)
	f.Add(`{"AaGuId":1}`)
	f.Add(`[]`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, text string) {
		st, err := ParseStatement(text)
		if err != nil {
			var e *messages.Error
			if !errors.As(err, &e) || e.Code != messages.CodeInvalidRequest || e.Message == "" {
				t.Fatalf("ParseStatement refused with %v, want an invalid_request", err)
			}
			return
		}
		aaguid, ferr := persistence.FormatAAGUID(st.AaGUID[:])
		if ferr != nil || aaguid == "00000000-0000-0000-0000-000000000000" || st.Description == "" {
			t.Fatalf("ParseStatement accepted a statement with AAGUID %s (%v) and description %q", aaguid, ferr, st.Description)
		}
		if err := (Statements{}).Check(text, aaguid); err != nil {
			t.Fatalf("Check of an accepted statement for its own AAGUID: %v", err)
		}
	})
}

package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Opener returns a new, empty store for t and registers with t.Cleanup what closes it.
type Opener func(t *testing.T) persistence.Store

// fresh is how soon a change made through one Store value must be seen through another over
// the same database (the "within a second"); eventually polls for that long.
const fresh = time.Second

// eventually polls cond until it holds or within has passed, and fails the test with what
// cond last said. It never sleeps longer than a poll interval at a time.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, within, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// apply runs a batch and fails the test unless it returns one Result per op.
func apply(t *testing.T, s persistence.Writer, ops ...persistence.Op) []persistence.Result {
	t.Helper()
	res := s.Apply(t.Context(), ops)
	if len(res) != len(ops) {
		t.Fatalf("Apply of %d ops returned %d results", len(ops), len(res))
	}
	return res
}

// mustApply runs one op and fails the test when it is refused.
func mustApply(t *testing.T, s persistence.Writer, op persistence.Op) any {
	t.Helper()
	r := apply(t, s, op)[0]
	if r.Err != nil {
		t.Fatalf("Apply(%T): %s", op, describe(r.Err))
	}
	return r.Value
}

// mustApplyAll runs each op in its own batch and fails the test when one is refused.
func mustApplyAll(t *testing.T, s persistence.Writer, ops ...persistence.Op) {
	t.Helper()
	for _, op := range ops {
		mustApply(t, s, op)
	}
}

// applyErr runs one op and returns its error.
func applyErr(t *testing.T, s persistence.Writer, op persistence.Op) error {
	t.Helper()
	return apply(t, s, op)[0].Err
}

// shared are the refusals that persistence shares between backends: a case that wants one
// wants that very error (errors.Is), not only its code.
var shared = []error{
	persistence.ErrCounterRegression, persistence.ErrStartAgain, persistence.ErrCredentialExists,
	persistence.ErrCredentialUnknown, persistence.ErrPasskeyNotFound, persistence.ErrLinkNotFound,
	persistence.ErrNothingToRemove, persistence.ErrLinkedElsewhere, persistence.ErrRequestReplayed,
	persistence.ErrLicenseIDExists,
}

// byCheck, as the refusal a case wants, stands for what persistence.Check says of the case's
// op: a backend refuses a malformed op with that very code and message.
var byCheck = errors.New("refused as persistence.Check refuses it")

// wantRefusal fails the test unless err refuses as want does: nil when want is nil, else a
// *messages.Error with want's code, and want itself (errors.Is) when want is a shared refusal.
// want must be nil or a *messages.Error.
func wantRefusal(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: refused: %s", what, describe(err))
		}
		return
	}
	var w *messages.Error
	if !errors.As(want, &w) {
		t.Fatalf("%s: the case wants %v, which is no *messages.Error", what, want)
	}
	wantCode(t, what, err, w.Code)
	if slices.Contains(shared, want) && !errors.Is(err, want) {
		t.Fatalf("%s: err = %s, want the shared refusal %q (errors.Is)", what, describe(err), want)
	}
}

// code is a refusal that a case compares by its code only.
func code(c messages.Code) error { return messages.Errorf(c, "any refusal with code "+string(c)) }

// wantChecked fails the test unless err is the refusal persistence.Check(op) makes: the same
// code and the same message.
func wantChecked(t *testing.T, what string, err error, op persistence.Op) {
	t.Helper()
	want := persistence.Check(op)
	if want == nil {
		t.Fatalf("%s: the case wants Check's refusal, but Check(%T) accepts the op", what, op)
	}
	var w, got *messages.Error
	if !errors.As(want, &w) {
		t.Fatalf("%s: Check(%T) = %v, which is no *messages.Error", what, op, want)
	}
	if !errors.As(err, &got) || got.Code != w.Code || got.Message != w.Message {
		t.Fatalf("%s: err = %s, want Check's %q", what, describe(err), want)
	}
}

// wantCode fails the test unless err is a *messages.Error with code.
func wantCode(t *testing.T, what string, err error, code messages.Code) {
	t.Helper()
	var me *messages.Error
	switch {
	case err == nil:
		t.Fatalf("%s: accepted, want a refusal with code %q", what, code)
	case !errors.As(err, &me):
		t.Fatalf("%s: err = %s (%T), want a *messages.Error with code %q", what, describe(err), err, code)
	case me.Code != code:
		t.Fatalf("%s: err = %s, want code %q", what, describe(err), code)
	}
}

// wantNotFound fails the test unless err is persistence.ErrNotFound.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("%s: err = %s, want ErrNotFound", what, describe(err))
	}
}

// describe renders err with its cause chain (a *messages.Error shows only its client-safe
// message).
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	out := err.Error()
	for c := errors.Unwrap(err); c != nil; c = errors.Unwrap(c) {
		out += " <- " + c.Error()
	}
	return out
}

// same reports whether two records are the same as a reader sees them: field by field, with
// times equal as instants and both in UTC (or both zero), a nil slice the same as an empty one
// (no reader tells them apart, and databases hand back either), and JSON texts the same when
// they hold the same value.
func same(a, b any) bool {
	return sameValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

var (
	timeType = reflect.TypeFor[time.Time]()
	jsonType = reflect.TypeFor[json.RawMessage]()
)

func sameValue(a, b reflect.Value) bool {
	if !a.IsValid() || !b.IsValid() {
		return a.IsValid() == b.IsValid()
	}
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		if ta.IsZero() || tb.IsZero() {
			return ta.IsZero() && tb.IsZero()
		}
		return ta.Equal(tb) && ta.Location() == time.UTC && tb.Location() == time.UTC
	}
	if a.Type() == jsonType {
		// The same JSON value: a backend may re-encode it (drop spaces, order keys).
		var va, vb any
		ea, eb := json.Unmarshal(a.Bytes(), &va), json.Unmarshal(b.Bytes(), &vb)
		if ea != nil || eb != nil {
			return ea != nil && eb != nil && bytes.Equal(a.Bytes(), b.Bytes())
		}
		return reflect.DeepEqual(va, vb)
	}
	switch a.Kind() {
	case reflect.Slice:
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return bytes.Equal(a.Bytes(), b.Bytes())
		}
		fallthrough
	case reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Map:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	}
	panic(fmt.Sprintf("storetest: same cannot compare %s", a.Type()))
}

// wantSame fails the test unless got and want are the same record (see same).
func wantSame(t *testing.T, what string, got, want any) {
	t.Helper()
	if !same(got, want) {
		t.Fatalf("%s =\n\t%+v\nwant\n\t%+v", what, got, want)
	}
}

// opCase is one case of an op's spec: on a store seeded by its table's seed, the setup ops
// (each must be accepted), then op, refused as want says (nil: accepted; byCheck: as
// persistence.Check refuses it); then after checks what the store holds, given the op's value
// (nil when refused).
type opCase struct {
	name  string
	setup []persistence.Op
	op    persistence.Op
	want  error
	after func(t *testing.T, s persistence.Store, v any)
}

// runOps runs each case on a store of its own.
func runOps(t *testing.T, open Opener, seed func(t *testing.T, s persistence.Store), cases []opCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if seed != nil {
				seed(t, s)
			}
			mustApplyAll(t, s, tc.setup...)
			r := apply(t, s, tc.op)[0]
			what := fmt.Sprintf("Apply(%T)", tc.op)
			if tc.want == byCheck {
				wantChecked(t, what, r.Err, tc.op)
			} else {
				wantRefusal(t, what, r.Err, tc.want)
			}
			if r.Err != nil {
				r.Value = nil
			}
			if tc.after != nil {
				tc.after(t, s, r.Value)
			}
		})
	}
}

// readCase is one case of a read's spec, run on a store that its table seeded once.
type readCase struct {
	name string
	read func(t *testing.T, s persistence.Store) (any, error)
	// want is the value the read returns; wantErr the error it returns instead
	// (persistence.ErrNotFound, compared with errors.Is).
	want    any
	wantErr error
}

// runReads seeds one store and runs each read on it.
func runReads(t *testing.T, open Opener, seed func(t *testing.T, s persistence.Store), cases []readCase) {
	t.Helper()
	s := open(t)
	if seed != nil {
		seed(t, s)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read(t, s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("read = %+v, %s; want %v", got, describe(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %s", describe(err))
			}
			wantSame(t, "read", got, tc.want)
		})
	}
}

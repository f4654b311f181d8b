package persistence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"
)

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// diffRecords names the first field in which two records of one type differ, or returns ""
// when none does; it never shows their values, which may be secret (keys, key hashes).
// Fields named in skip are left out at every level. Times are compared with Equal, byte slices
// and other slices by content (nil and empty alike), and JSON texts (json.RawMessage) by what
// they mean, since a database may store them re-encoded.
func diffRecords(a, b any, skip ...string) string {
	return diffValues(reflect.ValueOf(a), reflect.ValueOf(b), "", skip)
}

func diffValues(a, b reflect.Value, path string, skip []string) string {
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s (type %s, not %s)", orRecord(path), b.Type(), a.Type())
	}
	differs := orRecord(path)
	switch t := a.Type(); {
	case t == timeType:
		if !a.Interface().(time.Time).Equal(b.Interface().(time.Time)) {
			return differs
		}
	case t == rawType:
		if !sameJSON(a.Bytes(), b.Bytes()) {
			return differs
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			return differs
		}
	case t.Kind() == reflect.Slice:
		if a.Len() != b.Len() {
			return differs + " (its length)"
		}
		for i := range a.Len() {
			if d := diffValues(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), skip); d != "" {
				return d
			}
		}
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || slices.Contains(skip, f.Name) {
				continue
			}
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			if d := diffValues(a.Field(i), b.Field(i), p, skip); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return differs
		}
	}
	return ""
}

func orRecord(path string) string {
	if path == "" {
		return "the record"
	}
	return path
}

// sameJSON reports whether two JSON texts mean the same value (both empty counts as the same).
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

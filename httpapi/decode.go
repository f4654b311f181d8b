package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/webauthnd/webauthnd/messages"
)

// bodyLimit is the largest request body a route accepts, unless routes.go gives it another
// limit with bodyUpTo.
const bodyLimit = 64 << 10

// decode reads a JSON object from the request body into v with unmarshalStrict's rules. A body
// over the route's limit is 413, with a message that gives the limit; one that cannot be read or
// fails those rules is 400.
func decode(r *http.Request, v any) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	return unmarshalStrict(raw, v)
}

// readBody reads the request body, up to the route's limit (413 beyond it).
func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, messages.Errorf(messages.CodeBodyTooLarge, "the request body is larger than "+sizeName(tooLarge.Limit))
		}
		return nil, messages.Wrap(messages.CodeInvalidRequest, "the request body could not be read", err)
	}
	return raw, nil
}

// sizeName writes a byte count as people read limits: 64 KiB, 1 MiB.
func sizeName(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// readNoBody reads the body of a route that takes none: an empty body (or only white space) is
// fine; anything else is 400.
func readNoBody(r *http.Request) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		return messages.Errorf(messages.CodeInvalidRequest, "this route takes no request body")
	}
	return nil
}

// unmarshalStrict is the one JSON decoder of every object whose shape webauthnd defines
// (request bodies, the credential's response, the sealed requestid, admin requests). Go's
// decoder binds a key to a field case-insensitively (USERNAME, and uſername with U+017F, bind
// to username) and lets the last of two equal keys win, so that a body a relying party checked
// could mean something else here. The rules, in every object of a known shape:
//   - a name equal to a field's binds;
//   - a name that matches a field only under Unicode case folding is 400, naming the spelling;
//   - any name twice in one object is 400;
//   - any other name is ignored (BlockID SDKs send extras such as dguid).
//
// Free-form values (json.RawMessage, maps, types that decode themselves) are not looked into.
// Bytes that are not UTF-8 (Go's decoder would quietly replace them), malformed JSON, a value of
// the wrong type and trailing data are 400 too.
func unmarshalStrict(raw []byte, v any) error {
	if !utf8.Valid(raw) {
		return messages.Errorf(messages.CodeInvalidRequest, "the request body is not valid UTF-8")
	}
	sc := nameScanner{b: raw}
	if err := sc.value(shapeOf(reflect.TypeOf(v)), 0); err != nil {
		return err
	}
	if sc.skipSpace(); sc.i < len(sc.b) {
		return messages.Errorf(messages.CodeInvalidRequest, "the request body has data after its JSON object")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return messages.Wrap(messages.CodeInvalidRequest, "the request body is not a valid JSON object of the expected shape", err)
	}
	return nil
}

// maxDepth bounds the nesting of a request body (no request of ours nests beyond a few levels).
const maxDepth = 64

var errNotJSON = messages.Errorf(messages.CodeInvalidRequest, "the request body is not valid JSON")

// nameScanner walks a JSON text to apply unmarshalStrict's rules to the names of the objects of
// a known shape. It only finds names: json.Unmarshal, which runs after it, checks the rest of
// the syntax and the types. It reads the text in place (a name with escapes aside), so that the
// check costs little beside the decode itself.
type nameScanner struct {
	b []byte
	i int
}

func (sc *nameScanner) skipSpace() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// value reads one JSON value whose shape is sh (nil: a free-form value, only read).
func (sc *nameScanner) value(sh *shape, depth int) error {
	if depth > maxDepth {
		return messages.Errorf(messages.CodeInvalidRequest, "the request body is nested too deeply")
	}
	sc.skipSpace()
	if sc.i >= len(sc.b) {
		return errNotJSON
	}
	switch sc.b[sc.i] {
	case '{':
		return sc.object(sh, depth)
	case '[':
		sc.i++
		var elem *shape
		if sh != nil {
			elem = sh.elem
		}
		for first := true; ; first = false {
			sc.skipSpace()
			if sc.i < len(sc.b) && sc.b[sc.i] == ']' && first {
				sc.i++
				return nil
			}
			if err := sc.value(elem, depth+1); err != nil {
				return err
			}
			if done, err := sc.next(']'); done || err != nil {
				return err
			}
		}
	case '"':
		_, err := sc.str()
		return err
	default: // a number, true, false or null: json.Unmarshal checks which
		for sc.i < len(sc.b) && !strings.ContainsRune(",}] \t\n\r", rune(sc.b[sc.i])) {
			sc.i++
		}
		return nil
	}
}

// object reads an object, checking its names against sh when sh knows its fields.
func (sc *nameScanner) object(sh *shape, depth int) error {
	sc.i++ // {
	// The names seen so far, to refuse one given twice: in a small array while there are few
	// (no allocation for the objects of real requests), in a map beyond, so that a body of
	// many distinct names (a megabyte of them on the vendor routes) costs linear time, not
	// quadratic.
	var seenBuf [16][]byte
	seen := seenBuf[:0]
	var seenMany map[string]struct{}
	for first := true; ; first = false {
		sc.skipSpace()
		if sc.i < len(sc.b) && sc.b[sc.i] == '}' && first {
			sc.i++
			return nil
		}
		name, err := sc.str()
		if err != nil {
			return err
		}
		if sc.skipSpace(); sc.i >= len(sc.b) || sc.b[sc.i] != ':' {
			return errNotJSON
		}
		sc.i++
		var sub *shape
		if sh != nil && sh.fields != nil {
			twice := false
			if seenMany != nil {
				_, twice = seenMany[string(name)]
				seenMany[string(name)] = struct{}{}
			} else {
				for _, s := range seen {
					twice = twice || bytes.Equal(s, name)
				}
				if seen = append(seen, name); len(seen) > len(seenBuf) {
					seenMany = make(map[string]struct{}, 2*len(seen))
					for _, s := range seen {
						seenMany[string(s)] = struct{}{}
					}
				}
			}
			if twice {
				return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("the request body names %s twice", quoteName(string(name))))
			}
			if sub, err = sh.field(name); err != nil {
				return err
			}
		}
		if err := sc.value(sub, depth+1); err != nil {
			return err
		}
		if done, err := sc.next('}'); done || err != nil {
			return err
		}
	}
}

// next reads the comma between members or elements, or the closing delimiter (done).
func (sc *nameScanner) next(closing byte) (done bool, err error) {
	sc.skipSpace()
	if sc.i >= len(sc.b) {
		return true, errNotJSON
	}
	switch sc.b[sc.i] {
	case ',':
		sc.i++
		return false, nil
	case closing:
		sc.i++
		return true, nil
	}
	return true, errNotJSON
}

// str reads a string and returns its value: the bytes in place when it has no escapes.
func (sc *nameScanner) str() ([]byte, error) {
	if sc.i >= len(sc.b) || sc.b[sc.i] != '"' {
		return nil, errNotJSON
	}
	start, escaped := sc.i, false
	for sc.i++; sc.i < len(sc.b); sc.i++ {
		switch sc.b[sc.i] {
		case '\\':
			escaped = true
			sc.i++
		case '"':
			sc.i++
			if !escaped {
				return sc.b[start+1 : sc.i-1], nil
			}
			var s string
			if err := json.Unmarshal(sc.b[start:sc.i], &s); err != nil {
				return nil, errNotJSON
			}
			return []byte(s), nil
		}
	}
	return nil, errNotJSON
}

// shape is what the strict decoder knows of a type: the JSON names of a struct's fields with the
// shapes of their values, or the shape of a slice's elements. A nil *shape is a free-form value.
type shape struct {
	fields map[string]*shape
	elem   *shape
}

// field returns the shape of the field a name binds to (nil when it binds to none and is
// ignored), or the error for a name that only folds to a field's.
func (sh *shape) field(name []byte) (*shape, error) {
	if sub, ok := sh.fields[string(name)]; ok {
		return sub, nil
	}
	for field := range sh.fields {
		if bytes.EqualFold([]byte(field), name) {
			return nil, messages.Errorf(messages.CodeInvalidRequest,
				fmt.Sprintf("the request body names %s: the field is spelled %q", quoteName(string(name)), field))
		}
	}
	return nil, nil
}

// quoteName quotes a name from a request for a message, cut to a readable length.
func quoteName(name string) string {
	if len(name) > 64 {
		name = strings.ToValidUTF8(name[:64], "") + "…"
	}
	return fmt.Sprintf("%q", name)
}

var (
	shapes          sync.Map // reflect.Type -> *shape
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// shapeOf returns the shape of values of type t, as encoding/json binds them.
func shapeOf(t reflect.Type) *shape {
	if sh, ok := shapes.Load(t); ok {
		return sh.(*shape)
	}
	sh := buildShape(t, map[reflect.Type]bool{})
	shapes.Store(t, sh)
	return sh
}

func buildShape(t reflect.Type, visiting map[reflect.Type]bool) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if visiting[t] || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // decodes itself (or recurses): free-form to the name check
	}
	switch t.Kind() {
	case reflect.Struct:
		visiting[t] = true
		defer delete(visiting, t)
		sh := &shape{fields: map[string]*shape{}}
		addFields(sh, t, visiting)
		return sh
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // []byte is a base64 string
		}
		if elem := buildShape(t.Elem(), visiting); elem != nil {
			return &shape{elem: elem}
		}
	}
	return nil
}

// addFields adds the JSON names of t's fields to sh, promoting those of untagged embedded
// structs as encoding/json does.
func addFields(sh *shape, t reflect.Type, visiting map[reflect.Type]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			addFields(sh, ft, visiting)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		sh.fields[name] = buildShape(f.Type, visiting)
	}
}

package subjects

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// DecodeError is what Unmarshal returns for data that is not a valid
// message. errors.Is matches its Kind (ErrMalformed, ErrVersion, ErrInvalid
// or ErrTooLarge); Error keeps the Go type and the decoder's wording for
// logs, and Describe says what is wrong for people.
type DecodeError struct {
	Kind   error  // the sentinel: ErrMalformed, ErrVersion, ErrInvalid or ErrTooLarge
	Type   string // the Go type decoded into, for logs only
	Field  string // wire path of the field at fault ("job.processor", "tasks[3].id"); empty when not known
	Reason string // what is wrong, for people: no Go type names, no library wording
	Err    error  // the cause, for logs; may be nil
}

func (e *DecodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%v: %s: %s", e.Kind, e.Type, e.Reason)
	}
	return fmt.Sprintf("%v: %s: %v", e.Kind, e.Type, e.Err)
}

// Unwrap returns the sentinel and the cause.
func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Describe is the error for people: which field (when known) and what is
// wrong with it.
func (e *DecodeError) Describe() string {
	if e.Field != "" {
		return fmt.Sprintf("field %q %s", e.Field, e.Reason)
	}
	return e.Reason
}

// locateField finds the field of m's type that data does not decode into
// and says why: each top-level value is decoded on its own, and nested maps
// and lists are followed down to the innermost value at fault. It runs
// only after the decoder failed and scanMessage accepted data, so every
// length in data is already known to be honest.
func locateField(data []byte, m Message) (field, reason string) {
	t := reflect.TypeOf(m)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	path, why, ok := locate(t, data, 0)
	if !ok {
		return "", "cannot be decoded"
	}
	return path, why
}

// locate reports the path below a value of type t encoded as raw that
// fails to decode, and why; ok is false when raw decodes.
func locate(t reflect.Type, raw []byte, depth int) (path, reason string, ok bool) {
	if decodes(t, raw) {
		return "", "", false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if depth < maxDepth && len(raw) > 0 {
		switch {
		case t.Kind() == reflect.Struct && isMap(raw[0]):
			var fields map[string]msgpack.RawMessage
			if msgpack.Unmarshal(raw, &fields) == nil {
				for _, k := range sortedKeys(fields) {
					ft, found := fieldType(t, k)
					if !found {
						continue // unknown fields are ignored by the decoder
					}
					if sub, why, bad := locate(ft, fields[k], depth+1); bad {
						return joinPath(k, sub), why, true
					}
				}
			}
		case t.Kind() == reflect.Map && isMap(raw[0]) && t.Key().Kind() == reflect.String:
			var entries map[string]msgpack.RawMessage
			if msgpack.Unmarshal(raw, &entries) == nil {
				for _, k := range sortedKeys(entries) {
					if sub, why, bad := locate(t.Elem(), entries[k], depth+1); bad {
						return joinPath(k, sub), why, true
					}
				}
			}
		case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t.Elem().Kind() != reflect.Uint8 && isArray(raw[0]):
			var items []msgpack.RawMessage
			if msgpack.Unmarshal(raw, &items) == nil {
				for i, it := range items {
					if sub, why, bad := locate(t.Elem(), it, depth+1); bad {
						return joinPath(fmt.Sprintf("[%d]", i), sub), why, true
					}
				}
			}
		}
	}
	return "", fmt.Sprintf("must be %s, got %s", expected(t), got(raw)), true
}

func decodes(t reflect.Type, raw []byte) bool {
	return msgpack.NewDecoder(bytes.NewReader(raw)).Decode(reflect.New(t).Interface()) == nil
}

func joinPath(head, tail string) string {
	switch {
	case tail == "":
		return head
	case strings.HasPrefix(tail, "["):
		return head + tail
	default:
		return head + "." + tail
	}
}

func sortedKeys(m map[string]msgpack.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fieldType is the type of the field of struct t that the decoder fills
// from wire key name, following embedded structs (Proto).
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				if ft, ok := fieldType(et, name); ok {
					return ft, true
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

func isArray(c byte) bool { return c&0xf0 == 0x90 || c == 0xdc || c == 0xdd }

// expected names what a value of type t looks like on the wire.
func expected(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a map"
	default:
		return "a valid value"
	}
}

// got names the msgpack value that raw starts with.
func got(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	c := raw[0]
	switch {
	case c <= 0x7f, c >= 0xe0, c >= 0xcc && c <= 0xd3:
		return "an integer"
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		return "a map"
	case isArray(c):
		return "a list"
	case c&0xe0 == 0xa0, c >= 0xd9 && c <= 0xdb:
		return "a string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2, c == 0xc3:
		return "a boolean"
	case c == 0xca, c == 0xcb:
		return "a number"
	case c >= 0xc4 && c <= 0xc6:
		return "bytes"
	default:
		return "an extension value"
	}
}

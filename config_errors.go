package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Messages for a configuration document that does not decode: where the
// fault is, in the reader's terms (a JSON path, a line and a column), and
// what was probably meant.

// unknownField is a member of the document that its place has no field for.
type unknownField struct {
	path  string   // JSON path of the object holding it, "" for the top
	name  string   // the member's name, as written
	known []string // the field names that object does have
}

// findUnknownField walks doc as typ would decode it and returns the first
// member, in document order, that typ has no field for: the one that
// encoding/json's DisallowUnknownFields reports without saying where.
func findUnknownField(doc []byte, typ reflect.Type) (unknownField, bool) {
	return walkUnknown(doc, typ, "")
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

func walkUnknown(doc []byte, typ reflect.Type, path string) (unknownField, bool) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == rawMessageType || reflect.PointerTo(typ).Implements(unmarshalerType) {
		return unknownField{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	tok, err := dec.Token()
	if err != nil {
		return unknownField{}, false
	}
	switch {
	case tok == json.Delim('{') && typ.Kind() == reflect.Struct:
		fields := jsonFields(typ)
		for dec.More() {
			key, raw, ok := nextMember(dec)
			if !ok {
				return unknownField{}, false
			}
			f, found := matchField(fields, key)
			if !found {
				names := make([]string, len(fields))
				for i, f := range fields {
					names[i] = f.name
				}
				return unknownField{path: path, name: key, known: names}, true
			}
			if u, ok := walkUnknown(raw, f.typ, joinPath(path, f.name)); ok {
				return u, true
			}
		}
	case tok == json.Delim('{') && typ.Kind() == reflect.Map:
		for dec.More() {
			key, raw, ok := nextMember(dec)
			if !ok {
				return unknownField{}, false
			}
			if u, ok := walkUnknown(raw, typ.Elem(), joinPath(path, key)); ok {
				return u, true
			}
		}
	case tok == json.Delim('[') && (typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array):
		for i := 0; dec.More(); i++ {
			var raw json.RawMessage
			if dec.Decode(&raw) != nil {
				return unknownField{}, false
			}
			if u, ok := walkUnknown(raw, typ.Elem(), fmt.Sprintf("%s[%d]", path, i)); ok {
				return u, true
			}
		}
	}
	return unknownField{}, false
}

// nextMember reads one member of an object whose opening brace is read.
func nextMember(dec *json.Decoder) (string, json.RawMessage, bool) {
	tok, err := dec.Token()
	key, isKey := tok.(string)
	if err != nil || !isKey {
		return "", nil, false
	}
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return "", nil, false
	}
	return key, raw, true
}

func joinPath(path, name string) string {
	switch {
	case name == "":
		return path
	case path == "":
		return name
	}
	return path + "." + name
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the members a struct decodes, embedded structs' included,
// as encoding/json names them.
func jsonFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for i := range typ.NumField() {
		sf := typ.Field(i)
		tag := sf.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" && !strings.Contains(tag, ",") {
			continue
		}
		if sf.Anonymous && name == "" {
			t := sf.Type
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() == reflect.Struct {
				out = append(out, jsonFields(t)...)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out = append(out, jsonField{name, sf.Type})
	}
	return out
}

// matchField finds key as encoding/json does: the exact name first, then
// any field whose name equals it ignoring case.
func matchField(fields []jsonField, key string) (jsonField, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return jsonField{}, false
}

// didYouMean returns the known name closest to name when it is close enough
// to be a typo of it (two edits, or a third of its length for long names),
// or when one is the start of the other; "" otherwise.
func didYouMean(name string, known []string) string {
	best, bestDist := "", -1
	n := strings.ToLower(name)
	for _, k := range known {
		d := editDistance(n, strings.ToLower(k))
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	if bestDist <= max(2, utf8.RuneCountInString(name)/3) {
		return best
	}
	for _, k := range known {
		lk := strings.ToLower(k)
		if len(n) >= 4 && (strings.HasPrefix(lk, n) || strings.HasPrefix(n, lk) && len(lk) >= 4) {
			return k
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// describeUnknownField is the message for an unknown member of doc, which
// was being decoded as typ at the path at ("" for the whole document); nil
// when doc has no such member.
func describeUnknownField(at string, doc []byte, typ reflect.Type) error {
	u, ok := findUnknownField(doc, typ)
	if !ok {
		return nil
	}
	msg := fmt.Sprintf("unknown field %q", u.name)
	if s := didYouMean(u.name, u.known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	if p := joinPath(at, u.path); p != "" {
		msg = p + ": " + msg
	}
	return configErrorf("%s", msg)
}

// lineColumn turns the offset of a JSON syntax error (the bytes read when it
// was found) into the line and column, both from 1, of the byte at fault.
func lineColumn(doc []byte, offset int64) (line, col int) {
	pos := min(max(int(offset)-1, 0), len(doc))
	before := doc[:pos]
	line = 1 + bytes.Count(before, []byte("\n"))
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[start:])
}

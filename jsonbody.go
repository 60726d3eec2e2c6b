package main

// The JSON request body: an object of strings, read token by token so that
// a repeated key is seen (encoding/json keeps the last one silently, where
// a repeated form field is already a 400).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
)

// parseJSONParams decodes a JSON body that must be one object whose values
// are strings (null reads as empty) into values. Errors are 400s: not an
// object, or trailing data (the message says where, never quoting the
// body), a value of another type, or a key given twice, the last two naming
// the key.
func parseJSONParams(body []byte) (url.Values, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	notObject := func(err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return badRequest("body is not a JSON object: %s", jsonErrorKind(err))
	}
	if tok, err := dec.Token(); err != nil {
		return nil, notObject(err)
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, badRequest("body is not a JSON object")
	}
	v := url.Values{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notObject(err)
		}
		k, ok := tok.(string) // the decoder yields only strings as keys, or an error
		if !ok {
			return nil, badRequest("body is not a JSON object")
		}
		if v.Has(k) {
			return nil, badRequest("%s: given more than once", truncate(k, 40))
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, notObject(err)
		}
		switch val := tok.(type) {
		case string:
			v.Set(k, val)
		case nil:
			v.Set(k, "")
		default:
			// A number, a boolean, or an object or array (left unread).
			return nil, badRequest("%s: must be a string", truncate(k, 40))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, notObject(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("body is not a JSON object: data after the object")
	}
	return v, nil
}

// errRepeatedMember is a JSON object that names one member twice, at any
// depth: decoders disagree on which one counts (encoding/json keeps the
// last), so such a document is refused rather than read either way.
var errRepeatedMember = errors.New("a member name is repeated")

// checkMembersOnce reads data token by token and fails with
// errRepeatedMember (naming the member, truncated) when an object at any
// depth has a member name twice, or with the decoder's error when data is
// not JSON. It does not check for data after the first value.
func checkMembersOnce(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	// One set of names per open object or array (nil for an array), as deep
	// as the document nests; the decoder checks the nesting itself.
	var stack []map[string]bool
	expectKey := func() bool { return len(stack) > 0 && stack[len(stack)-1] != nil }
	for {
		if expectKey() && dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := tok.(string) // in an object the decoder yields keys as strings
			if stack[len(stack)-1][k] {
				return fmt.Errorf("%w: %q", errRepeatedMember, truncate(k, 40))
			}
			stack[len(stack)-1][k] = true
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, map[string]bool{})
		case json.Delim('['):
			stack = append(stack, nil)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			return nil
		}
	}
}

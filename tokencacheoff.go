//go:build tokencacheoff

package main

// Built with -tags tokencacheoff, the service verifies every bearer token in
// full: the load figure "verifying every call" in the README comes from such
// a build. Release builds never set this tag.
func init() { tokenCacheEnabled = false }

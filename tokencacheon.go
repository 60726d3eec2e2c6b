//go:build !tokencacheoff

package main

// tokenCacheEnabled is true unless built with -tags tokencacheoff (see
// tokencacheoff.go): providers are built with a verified-token cache.
const tokenCacheEnabled = true

//go:build tokencacheoff

package main

// tokenCacheEnabled is false with -tags tokencacheoff: providers are built
// without a verified-token cache and verify every bearer token in full. The
// load figure "no cache at all" in docs/performance.md comes from such a build.
// Release builds never set this tag.
const tokenCacheEnabled = false

package main

// Defaults of the limits that keep memory bounded however many clients hold
// slow requests open (SPEC.md, Operations), sized for a 2-core, 256 MB
// appliance: a connection being served costs some 20-30 KB, so 1024 of them
// stay near 30 MB, and 8 MiB of large bodies in flight is 128 at the 64 KiB
// limit. Both leave room for the load runs' 256 keep-alive connections.
const (
	defaultMaxConnections       = 1024
	defaultMaxBodyBytesInFlight = 8 << 20
	maxMaxConnections           = 1_000_000
	maxMaxBodyBytesInFlight     = 1 << 30
)

// validateLimits applies the defaults of max_connections and
// max_body_bytes_in_flight (absent or 0) and checks their range.
func (c *config) validateLimits() error {
	switch {
	case c.MaxConnections == 0:
		c.MaxConnections = defaultMaxConnections
	case c.MaxConnections < 1 || c.MaxConnections > maxMaxConnections:
		return configErrorf("max_connections: must be from 1 to %d, not %d", maxMaxConnections, c.MaxConnections)
	}
	switch {
	case c.MaxBodyBytesInFlight == 0:
		c.MaxBodyBytesInFlight = defaultMaxBodyBytesInFlight
	case c.MaxBodyBytesInFlight < maxBodyBytes || c.MaxBodyBytesInFlight > maxMaxBodyBytesInFlight:
		// Below one body of the largest size, such a body could never be read.
		return configErrorf("max_body_bytes_in_flight: must be from %d (one body of the largest size) to %d, not %d",
			maxBodyBytes, maxMaxBodyBytesInFlight, c.MaxBodyBytesInFlight)
	}
	return nil
}

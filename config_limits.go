package main

// Defaults of the limits that keep memory bounded however many clients hold
// slow requests open (SPEC.md, Operations), sized for a 2-core, 256 MB
// appliance: 8 MiB of large bodies in flight is 128 at the 64 KiB limit.
const (
	defaultMaxBodyBytesInFlight = 8 << 20
	maxMaxBodyBytesInFlight     = 1 << 30
)

// validateLimits applies the default of max_body_bytes_in_flight (absent
// or 0) and checks its range.
func (c *config) validateLimits() error {
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

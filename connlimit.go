package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// metricsMaxConnections caps the metrics listener, whose scrapers are few.
const metricsMaxConnections = 64

// connLimitListener serves at most a fixed number of connections at once.
// Past the cap, Accept takes one more connection from the kernel and holds
// it, unserved, until a place frees; the others wait in the kernel's accept
// queue, costing this process nothing, and are served in turn, where
// closing them would turn a burst of ordinary clients into errors. While a
// connection waits, one idle between requests gives its place up (the one
// idle longest, or the next to go idle), as nginx does with keep-alive
// connections when it runs out: otherwise clients holding idle connections
// open could keep everyone else out for the whole idle timeout.
//
// The http.Server must report connection states to connState.
type connLimitListener struct {
	net.Listener
	slots     chan struct{} // one token per connection being served
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu      sync.Mutex
	idle    map[*limitedConn]time.Time // idle since
	waiting bool                       // Accept holds a connection that waits for a place
}

// limitListener wraps ln so that at most n of its connections are served.
func limitListener(ln net.Listener, n int) *connLimitListener {
	return &connLimitListener{
		Listener: ln,
		slots:    make(chan struct{}, n),
		done:     make(chan struct{}),
		idle:     make(map[*limitedConn]time.Time),
	}
}

// Accept returns the next connection once it has a place.
func (l *connLimitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.mu.Lock()
		l.waiting = true
		victim := l.longestIdleLocked()
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
		l.mu.Lock()
		l.waiting = false
		l.mu.Unlock()
	}
	return &limitedConn{Conn: c, l: l}, nil
}

// longestIdleLocked takes the connection idle longest out of the idle set,
// or returns nil when none is idle.
func (l *connLimitListener) longestIdleLocked() *limitedConn {
	var victim *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if victim == nil || t.Before(since) {
			victim, since = c, t
		}
	}
	delete(l.idle, victim)
	return victim
}

// connState tracks which connections are idle between requests; one that
// goes idle while a connection waits for a place is closed at once.
func (l *connLimitListener) connState(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if state != http.StateIdle {
		delete(l.idle, lc)
		l.mu.Unlock()
		return
	}
	if l.waiting {
		l.mu.Unlock()
		lc.Close()
		return
	}
	l.idle[lc] = time.Now()
	l.mu.Unlock()
}

// Close stops Accept, also one whose connection waits for a place, and
// closes ln.
func (l *connLimitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its place back when it is closed, once.
type limitedConn struct {
	net.Conn
	l    *connLimitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}

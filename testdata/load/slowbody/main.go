// Command slowbody holds many connections to a scaiwave-auth on loopback,
// each with a request that declares a large body and sends only part of
// it, and reports how the server answered and the server's peak memory
// (VmHWM) while they were held. It measures what the connection and
// body-in-flight caps are for; it is not a test and `go test` never runs
// it (testdata is outside the package).
//
//	go run ./testdata/load/slowbody -addr 127.0.0.1:8080 -pid $(pgrep -n scaiwave-auth) -n 4000
//
// It only talks to loopback addresses, and every count and time is capped.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "the service's address (loopback only)")
	n := flag.Int("n", 4000, "connections to hold (at most 10000)")
	path := flag.String("path", "/v1/auth/token", "request path")
	length := flag.Int("length", 64<<10, "Content-Length each request declares")
	send := flag.Int("send", 32<<10, "body bytes sent before stalling")
	hold := flag.Duration("hold", 12*time.Second, "how long to hold the connections (at most 2m)")
	dials := flag.Int("dials", 256, "connections dialled at once")
	pid := flag.Int("pid", 0, "the server's process id, to read its VmHWM and VmRSS from /proc")
	flag.Parse()

	if err := checkLoopback(*addr); err != nil {
		fail(err)
	}
	if *n < 1 || *n > 10000 || *hold <= 0 || *hold > 2*time.Minute || *send < 0 || *send > *length || *dials < 1 {
		fail(errors.New("-n must be 1-10000, -hold at most 2m, -send at most -length"))
	}

	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", *path, *addr, *length)
	body := []byte("grant_type=password&username=alice&password=" + strings.Repeat("x", *send))[:*send]

	ctx, cancel := context.WithTimeout(context.Background(), *hold)
	defer cancel()
	var peakRSS atomic.Int64
	if *pid > 0 {
		go sampleRSS(ctx, *pid, &peakRSS)
		fmt.Printf("server before: %s\n", memLine(*pid))
	}

	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		wg       sync.WaitGroup
		sem      = make(chan struct{}, *dials)
	)
	record := func(s string) { mu.Lock(); outcomes[s]++; mu.Unlock() }
	start := time.Now()
	for range *n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			c, err := d.DialContext(ctx, "tcp", *addr)
			<-sem
			if err != nil {
				record("dial failed")
				return
			}
			defer c.Close()
			deadline, _ := ctx.Deadline()
			c.SetDeadline(deadline)
			if _, err := c.Write(append([]byte(head), body...)); err != nil {
				record("write failed")
				return
			}
			// Stall: send nothing more, and see whether and how the server
			// answers before the hold ends.
			line, err := bufio.NewReader(c).ReadString('\n')
			var ne net.Error
			switch {
			case err == nil:
				f := strings.Fields(line)
				if len(f) >= 2 {
					record("answered " + f[1])
				} else {
					record("answered garbage")
				}
			case errors.As(err, &ne) && ne.Timeout():
				record("held to the end, no answer")
			default:
				record("closed by the server, no answer")
			}
		}()
	}
	fmt.Printf("%d connections dialled in %v\n", *n, time.Since(start).Round(time.Millisecond))
	wg.Wait()
	var keys []string
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-32s %d\n", k, outcomes[k])
	}
	if *pid > 0 {
		fmt.Printf("server after:  %s (highest VmRSS sampled while held: %d MB)\n", memLine(*pid), peakRSS.Load()>>10)
	}
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return fmt.Errorf("-addr %s: loopback addresses only", addr)
	}
	return nil
}

// status reads the kB values of VmHWM and VmRSS from /proc/PID/status.
func status(pid int) (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

func memLine(pid int) string {
	hwm, rss := status(pid)
	return fmt.Sprintf("VmHWM %d MB, VmRSS %d MB", hwm>>10, rss>>10)
}

func sampleRSS(ctx context.Context, pid int, peak *atomic.Int64) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if _, rss := status(pid); rss > peak.Load() {
			peak.Store(rss)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "slowbody:", err)
	os.Exit(2)
}

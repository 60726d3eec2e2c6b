package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runCmd runs the program as the operator would, with an empty environment.
func runCmd(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = run(context.Background(), append([]string{"scaiwave-auth"}, args...), noEnv, &out, &errb)
	return out.String(), errb.String(), err
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.db")
	// The service keeps running beside the admin commands.
	svc := openTestStore(t, path)
	t.Cleanup(func() { svc.Close() })
	var clock atomic.Int64
	clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	svc.now = func() time.Time { return time.Unix(clock.Add(1), 0) } // ann before bob
	ann, err := svc.ensureParticipant(ctx, principal{"acme", "https://idp.example.com", "ann"}, "Ann", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := svc.ensureParticipant(ctx, principal{"other", "https://idp.other.example", "bob"}, "Bob", "")
	if err != nil {
		t.Fatal(err)
	}

	list := func(args ...string) []participantOut {
		t.Helper()
		out, stderr, err := runCmd(append([]string{"participants", "list", "-json", "-db", path}, args...)...)
		if err != nil {
			t.Fatalf("participants list %v: %v (%s)", args, err, stderr)
		}
		var ps []participantOut
		if err := json.Unmarshal([]byte(out), &ps); err != nil {
			t.Fatalf("participants list -json is not a JSON array: %v: %q", err, out)
		}
		return ps
	}
	ps := list()
	if len(ps) != 2 || ps[0].ID != ann.ID || ps[1].ID != bob.ID {
		t.Fatalf("participants list -json = %+v; want ann then bob", ps)
	}
	if want := participantJSON(ann); ps[0] != want {
		t.Errorf("participants list -json entry = %+v; want %+v", ps[0], want)
	}
	if ps := list("-tenant", "other"); len(ps) != 1 || ps[0].ID != bob.ID {
		t.Errorf("participants list -tenant other = %+v; want only bob", ps)
	}

	missing := filepath.Join(dir, "missing.db")
	tests := []struct {
		name     string
		args     []string
		wantExit int
		wantOut  string // in stdout on success, in the error otherwise
	}{
		{"show", []string{"participants", "show", "-db", path, ann.ID}, 0, "ann@example.com"},
		{"show -json", []string{"participants", "show", ann.ID, "-json", "-db", path}, 0, `"personal_workspace_id":"` + ann.PersonalWorkspaceID + `"`},
		{"show unknown", []string{"participants", "show", "-db", path, "nobody"}, 1, "participant nobody: not found"},
		{"delete unknown", []string{"participants", "delete", "-db", path, "nobody"}, 1, "participant nobody: not found"},
		{"no subcommand", []string{"participants"}, 2, "want list, show ID or delete ID"},
		{"unknown subcommand", []string{"participants", "frob", "-db", path}, 2, "unknown command"},
		{"show without id", []string{"participants", "show", "-db", path}, 2, "want 1 argument"},
		{"backup without file", []string{"backup", "-db", path}, 2, "want exactly one FILE"},
		{"missing database", []string{"participants", "list", "-db", missing}, 1, missing},
		{"delete", []string{"participants", "delete", "-db", path, ann.ID}, 0, "deleted participant " + ann.ID},
		{"delete again", []string{"participants", "delete", "-db", path, ann.ID}, 1, "not found"},
	}
	for _, tc := range tests {
		checkAdminCmd(t, tc.name, tc.args, tc.wantExit, tc.wantOut)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an admin command on a missing database created it (stat: %v)", err)
	}
	if ps := list(); len(ps) != 1 || ps[0].ID != bob.ID {
		t.Errorf("participants list after delete = %+v; want only bob", ps)
	}
	if got := queryInt(t, svc.r, `SELECT count(*) FROM workspaces WHERE owner_participant_id = ?`, ann.ID); got != 0 {
		t.Errorf("deleted participant keeps %d workspaces", got)
	}

	target := filepath.Join(dir, "backup.db")
	out, _, err := runCmd("backup", "-db", path, target)
	if err != nil || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %q, %v", out, err)
	}
	b := openRaw(t, target, "mode=ro")
	integrityCheck(t, b)
	if got := queryInt(t, b, `SELECT count(*) FROM participants WHERE id = ?`, bob.ID); got != 1 {
		t.Errorf("backup holds %d rows for bob; want 1", got)
	}
	orig, _ := os.ReadFile(target)
	_, _, err = runCmd("backup", "-db", path, target)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("backup onto an existing file: err %v (exit %d); want exit 1, already exists", err, exitCode(err))
	}
	if now, _ := os.ReadFile(target); !bytes.Equal(now, orig) {
		t.Errorf("a refused backup changed the existing file")
	}
}

// TestAttackAdminTerminalInjection registers, through /register, a person
// whose name claim carries OSC and CSI escape sequences (7-bit and C1) and
// a newline followed by a forged row, then lists and shows the
// participants as the operator would: no control byte reaches the
// terminal, and each participant stays on its own line.
func TestAttackAdminTerminalInjection(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	forged := "00000000-0000-4000-8000-000000000000  acme  Administrator  root@example.com"
	evil := "\x1b]0;pwned\x07\x1b[2J\x1b[31mMallory\u009b1;31m\x7f\u202e\nforged\r" + forged
	w := a.register(f.accessToken(map[string]any{"sub": "mallory\x1b[0m", "name": evil, "email": "m\x1b[8m@example.com\u2028x"}))
	if w.Code != 200 {
		t.Fatalf("POST /v1/auth/register with an escape-laden name = %d %s", w.Code, w.Body)
	}
	id := decode(t, w).Data["participant_id"].(string)
	checkRegister(t, "a plain participant", a.register(f.accessToken(map[string]any{"sub": "ann", "name": "Ann Zoë Example"})), 200)

	for _, args := range [][]string{
		{"participants", "list"},
		{"participants", "list", "-json"},
		{"participants", "show", id},
		{"participants", "show", id, "-json"},
	} {
		out, stderr, err := runCmd(append(args, "-db", a.dbPath)...)
		if err != nil {
			t.Fatalf("%v: %v (%s)", args, err, stderr)
		}
		for _, r := range out {
			if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f || r == '\u202e' || r == '\u2028' {
				t.Errorf("%v: output has the raw control character %U:\n%q", args, r, out)
				break
			}
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		for _, l := range lines {
			if strings.HasPrefix(l, "forged") || strings.HasPrefix(l, "00000000-") {
				t.Errorf("%v: a claim started a line of its own: %q", args, l)
			}
		}
		switch {
		case args[1] == "list" && len(args) == 2:
			if len(lines) != 3 {
				t.Errorf("%v: %d lines; want a header and two rows:\n%s", args, len(lines), out)
			}
			if !strings.Contains(out, "Ann Zoë Example") {
				t.Errorf("%v: a plain name is not printed as it is:\n%s", args, out)
			}
		case args[1] == "show" && len(args) == 3:
			if len(lines) != 9 {
				t.Errorf("%v: %d lines; want one per field:\n%s", args, len(lines), out)
			}
		}
		if slices.Contains(args, "-json") {
			// Escaped, the JSON still says exactly what is stored.
			var v any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%v: not JSON: %v", args, err)
			}
			if !strings.Contains(fmt.Sprint(v), evil) {
				t.Errorf("%v: the JSON does not decode to the stored name", args)
			}
		}
	}
}

// TestAdminFlagsAroundCommand runs the admin commands with -config and -db
// before the command, as for the service, and after it; and refuses a
// -tenant nobody knows instead of printing an empty table.
func TestAdminFlagsAroundCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.db")
	empty := filepath.Join(dir, "empty.db")
	openTestStore(t, empty).Close()
	st := openTestStore(t, path)
	for _, p := range []principal{{"acme", "https://idp.example.com", "ann"}, {"other", "https://idp.other.example", "bob"}} {
		if _, err := st.ensureParticipant(ctx, p, strings.ToUpper(p.Subject[:1])+p.Subject[1:], ""); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	// acme and beta are configured; "other" is known from the database only.
	cfg := writeTestFile(t, dir, "scaiwave.json", cfgJSON(tenants(
		cfgTenant("acme", "hosts", []string{"a.example"}), cfgTenant("beta", "hosts", []string{"b.example"})), "database", path))
	emptyCfg := writeTestFile(t, dir, "empty.json", cfgJSON(tenants(cfgTenant("acme")), "database", empty))

	tests := []struct {
		name     string
		args     []string
		wantExit int
		want     string // in stdout on success, in the error otherwise
	}{
		{"-config before", []string{"-config", cfg, "participants", "list"}, 0, "Ann"},
		{"-config= before", []string{"-config=" + cfg, "participants", "list"}, 0, "Ann"},
		{"-config after", []string{"participants", "list", "-config", cfg}, 0, "Ann"},
		{"-db before", []string{"-db", path, "participants", "list", "-tenant", "other"}, 0, "Bob"},
		{"-db before, flags after", []string{"-db", path, "participants", "list", "-json"}, 0, `"display_name": "Ann"`},
		{"after wins over before", []string{"-db", filepath.Join(dir, "missing.db"), "participants", "list", "-db", path}, 0, "Ann"},
		{"-db before backup", []string{"-db", path, "backup", filepath.Join(dir, "copy.db")}, 0, "backed up"},
		{"a service flag before", []string{"-addr", "127.0.0.1:9", "participants", "list", "-db", path}, 2, "-addr is a flag of the service"},
		{"configured tenant without participants", []string{"-config", cfg, "participants", "list", "-tenant", "beta"}, 0, "ID"},
		{"unknown tenant", []string{"-config", cfg, "participants", "list", "-tenant", "nope"}, 2, `unknown tenant "nope"; the known tenants are acme, beta, other`},
		{"unknown tenant, database only", []string{"participants", "list", "-tenant", "acm", "-db", path}, 2, `unknown tenant "acm"; the known tenants are acme, other`},
		{"unknown tenant, -json", []string{"participants", "list", "-json", "-tenant", "nope", "-db", path}, 2, `unknown tenant "nope"`},
		{"unknown tenant, nothing known", []string{"participants", "list", "-tenant", "nope", "-db", empty}, 2, "the database has no participants yet"},
		{"configured tenant, empty database", []string{"participants", "list", "-tenant", "acme", "-config", emptyCfg}, 0, "ID"},
	}
	for _, tc := range tests {
		checkAdminCmd(t, tc.name, tc.args, tc.wantExit, tc.want)
	}
}

// checkAdminCmd runs the binary's command line args in-process and checks
// its exit status and that want is in its stdout (on success) or its error.
func checkAdminCmd(t *testing.T, name string, args []string, wantExit int, want string) {
	t.Helper()
	out, _, err := runCmd(args...)
	if got := exitCode(err); err != nil && got != wantExit || err == nil && wantExit != 0 {
		t.Errorf("%v (%s): exit %d, err %v; want exit %d", args, name, got, err, wantExit)
		return
	}
	text := out
	if err != nil {
		text = err.Error()
	}
	if !strings.Contains(text, want) {
		t.Errorf("%v (%s): output %q; want it to contain %q", args, name, text, want)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// runAdmin runs the operator's commands against the database, which may be
// in use by a running service at the same time:
//
//	participants list [-tenant T] [-json]
//	participants show ID
//	participants delete ID
//	backup FILE
//
// The database is the one the service would use: -db, SCAIWAVE_DB, the
// config file's "database" (-config or SCAIWAVE_CONFIG), or scaiwave.db.
// before are flags given before the command; those after it win.
func runAdmin(ctx context.Context, name string, before, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := args[0]
	sub := ""
	rest := args[1:]
	if cmd == "participants" {
		if len(rest) == 0 {
			return usageErrorf("participants: want list, show ID or delete ID")
		}
		sub, rest = rest[0], rest[1:]
	}
	fs := flag.NewFlagSet(name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", "", "database file (default: from -config, SCAIWAVE_DB, or scaiwave.db)")
	configPath := fs.String("config", "", "configuration file whose database to use")
	tenantID := fs.String("tenant", "", "list: only this tenant's participants")
	asJSON := fs.Bool("json", false, "list, show: print JSON")
	if err := fs.Parse(append(slices.Clip(before), interleave(rest)...)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	path, err := adminDatabase(*dbPath, *configPath, getenv)
	if err != nil {
		return err
	}
	pos := fs.Args()
	want := map[string]int{"list": 0, "show": 1, "delete": 1, "": 1}
	n, ok := want[sub]
	if !ok {
		return usageErrorf("participants %s: unknown command; want list, show ID or delete ID", sub)
	}
	if len(pos) != n {
		if cmd == "backup" {
			return usageErrorf("backup: want exactly one FILE")
		}
		return usageErrorf("participants %s: want %d argument(s), got %d", sub, n, len(pos))
	}
	if !isPostgresURL(path) {
		// A SQLite file must exist: the admin commands never create one.
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("database %s: %w", path, errors.Unwrap(err))
		}
	}
	st, err := openStore(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()

	switch {
	case cmd == "backup":
		if _, err := os.Stat(pos[0]); err == nil {
			return fmt.Errorf("backup: %s already exists; refusing to overwrite it", pos[0])
		}
		if err := st.backup(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backed up %s to %s\n", path, pos[0])
	case sub == "list":
		ps, err := st.listParticipants(ctx, *tenantID)
		if err != nil {
			return err
		}
		if len(ps) == 0 && *tenantID != "" {
			if err := checkTenantKnown(ctx, st, *tenantID, *configPath, getenv); err != nil {
				return err
			}
		}
		if *asJSON {
			return writeParticipantsJSON(stdout, ps)
		}
		// Names and emails come from token claims: every stored field is
		// printed escaped (printable), so that none can write terminal
		// escape sequences, tabs or forged rows.
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tDISPLAY NAME\tEMAIL\tWORKSPACE\tCREATED")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(p.ID), printable(p.TenantID), printable(p.DisplayName),
				printable(p.Email), printable(p.PersonalWorkspaceID), p.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case sub == "show":
		p, err := st.participantByID(ctx, pos[0])
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("participant %s: not found", pos[0])
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return writeTerminalJSON(stdout, participantJSON(p), "")
		}
		j := participantJSON(p)
		for _, kv := range [][2]string{{"id", j.ID}, {"tenant", j.TenantID}, {"issuer", j.Issuer}, {"subject", j.Subject},
			{"display name", j.DisplayName}, {"email", j.Email}, {"workspace", j.PersonalWorkspaceID},
			{"created", j.CreatedAt}, {"updated", j.UpdatedAt}} {
			fmt.Fprintf(stdout, "%-13s %s\n", kv[0]+":", printable(kv[1]))
		}
	case sub == "delete":
		err := st.deleteParticipant(ctx, pos[0])
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("participant %s: not found", pos[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted participant %s and its personal workspace\n", pos[0])
	}
	return nil
}

// interleave moves flags before positional arguments so that both
// "list -json" and "show ID -json" parse.
func interleave(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			if (a == "-db" || a == "--db" || a == "-config" || a == "--config" || a == "-tenant" || a == "--tenant") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(append(flags, "--"), pos...)
}

// checkTenantKnown refuses a -tenant that neither the configuration (when
// one is given) nor the database knows, so that a typo is not mistaken for a
// tenant without participants.
func checkTenantKnown(ctx context.Context, st *store, id, configFlag string, getenv func(string) string) error {
	known := map[string]bool{}
	if configFlag == "" {
		configFlag = getenv("SCAIWAVE_CONFIG")
	}
	if configFlag != "" {
		if cfg, err := loadConfig(configFlag, getenv); err == nil {
			for _, t := range cfg.Tenants {
				known[t.ID] = true
			}
		}
	}
	all, err := st.listParticipants(ctx, "")
	if err != nil {
		return err
	}
	for _, p := range all {
		known[p.TenantID] = true
	}
	if known[id] {
		return nil
	}
	if len(known) == 0 {
		return usageErrorf("participants list: unknown tenant %q: the database has no participants yet, and no configuration names tenants (give -config FILE)", id)
	}
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, printable(k))
	}
	slices.Sort(names)
	return usageErrorf("participants list: unknown tenant %q; the known tenants are %s", id, strings.Join(names, ", "))
}

func adminDatabase(dbFlag, configFlag string, getenv func(string) string) (string, error) {
	if dbFlag != "" {
		return dbFlag, nil
	}
	if v := getenv("SCAIWAVE_DB"); v != "" {
		return v, nil
	}
	if configFlag == "" {
		configFlag = getenv("SCAIWAVE_CONFIG")
	}
	if configFlag != "" {
		cfg, err := loadConfig(configFlag, getenv)
		if err != nil {
			return "", err
		}
		if cfg.Database != "" {
			return cfg.Database, nil
		}
	}
	return defaultDatabase, nil
}

type participantOut struct {
	ID                  string `json:"id"`
	TenantID            string `json:"tenant_id"`
	Issuer              string `json:"issuer"`
	Subject             string `json:"subject"`
	DisplayName         string `json:"display_name"`
	Email               string `json:"email"`
	PersonalWorkspaceID string `json:"personal_workspace_id"`
	CreatedAt           string `json:"created_at"`
	UpdatedAt           string `json:"updated_at"`
}

func participantJSON(p participant) participantOut {
	return participantOut{p.ID, p.TenantID, p.Issuer, p.Subject, p.DisplayName, p.Email, p.PersonalWorkspaceID,
		p.CreatedAt.Format(time.RFC3339), p.UpdatedAt.Format(time.RFC3339)}
}

func writeParticipantsJSON(w io.Writer, ps []participant) error {
	out := make([]participantOut, 0, len(ps))
	for _, p := range ps {
		out = append(out, participantJSON(p))
	}
	return writeTerminalJSON(w, out, "  ")
}

// writeTerminalJSON writes v as JSON, on one line or indented by indent,
// that is safe to show on a terminal: encoding/json escapes the C0 controls but leaves DEL,
// the C1 controls (U+009B is a CSI to many terminals) and other invisible
// characters raw, and those are written as \u escapes here. The result is
// the same JSON value.
func writeTerminalJSON(w io.Writer, v any, indent string) error {
	var b []byte
	var err error
	if indent == "" {
		b, err = json.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", indent)
	}
	if err != nil {
		return err
	}
	out := make([]byte, 0, len(b)+1)
	for _, r := range string(b) {
		// Outside strings there is only ASCII, and inside them encoding/json
		// has escaped every C0 control, so a raw rune below DEL is safe.
		if r < 0x7f || unicode.IsPrint(r) {
			out = utf8.AppendRune(out, r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// isAdminCommand reports whether arg names one of the operator's commands.
func isAdminCommand(arg string) bool {
	return arg == "participants" || arg == "backup"
}

// adminFlags turns the service flags given before an admin command into the
// command's own. Only -config and -db mean something to it; any other flag
// there is refused rather than ignored.
func adminFlags(cmd string, o *options) ([]string, error) {
	var out []string
	names := make([]string, 0, len(o.given))
	for name := range o.given {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name != "config" && name != "db" {
			return nil, usageErrorf("%s: -%s is a flag of the service, not of this command (it takes -config and -db)", cmd, name)
		}
		out = append(out, "-"+name+"="+o.given[name])
	}
	return out, nil
}

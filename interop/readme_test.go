package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	tableBegin = "<!-- scenario table: generated from peers_test.go and scenario_test.go; TestREADMETable checks it -->"
	tableEnd   = "<!-- end of scenario table -->"
)

// TestREADMETable checks that the README's scenario table is the one the
// code runs: the same providers, steps and named skips.
func TestREADMETable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(interopDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no scenario table between the markers; put this there:\n%s\n%s%s", tableBegin, scenarioTable(), tableEnd)
	}
	got := readme[i+len(tableBegin)+1 : j]
	if want := scenarioTable(); got != want {
		t.Fatalf("README.md's scenario table differs from the code's; replace it with:\n%s", want)
	}
}

// scenarioTable renders peers × steps as Markdown: the providers, then one
// row per step saying "runs" or which numbered skip applies.
func scenarioTable() string {
	var b strings.Builder
	b.WriteString("\n| row | provider | started by |\n|---|---|---|\n")
	for _, p := range peers {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.name, p.provider, startedBy(p))
	}
	b.WriteString("\n| step | what it asserts |")
	for _, p := range peers {
		fmt.Fprintf(&b, " `%s` |", p.name)
	}
	b.WriteString("\n|---|---|")
	for range peers {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	var reasons []string
	number := map[string]int{}
	for _, s := range steps {
		fmt.Fprintf(&b, "| `%s` | %s |", s.name, s.what)
		for _, p := range peers {
			reason, ok := p.skip[s.name]
			if !ok {
				b.WriteString(" runs |")
				continue
			}
			if number[reason] == 0 {
				reasons = append(reasons, reason)
				number[reason] = len(reasons)
			}
			fmt.Fprintf(&b, " skip %d |", number[reason])
		}
		b.WriteString("\n")
	}
	b.WriteString("\nSkips, each with its reason (a skip that the provider's discovery contradicts fails instead):\n\n")
	for i, r := range reasons {
		fmt.Fprintf(&b, "%d. %s\n", i+1, r)
	}
	b.WriteString("\n")
	return b.String()
}

func startedBy(p *peer) string {
	switch {
	case p.hydraStrategy != "":
		return "`hydra serve all --dev`, in-memory, `strategies.access_token: " + p.hydraStrategy + "`; login/consent app in `hydra_test.go`"
	case strings.HasPrefix(p.name, "lemonldap"):
		return "portal under `plackup`, `lemonldap/lmConf-1.json`, client `" + p.clientID + "`"
	case strings.HasPrefix(p.name, "node"):
		return "`node/provider.mjs`"
	default:
		return "`zitadel/main.go`"
	}
}

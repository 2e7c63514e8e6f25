package main

import (
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

// TestBenchLUKS runs the LUKS part of make bench once: it must produce a
// row per volume type and key, with a KDF description from the real
// volumes (not asserted on speed: bench reports, tests do not time).
func TestBenchLUKS(t *testing.T) {
	testenv.NeedTool(t, "cryptsetup", "cryptsetup-bin")
	if testing.Short() {
		t.Skip("formats volumes with cryptsetup's default KDF cost (seconds)")
	}
	rows, err := benchLUKS(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	for _, r := range rows {
		t.Logf("%s: %s (%s)", r.metric, r.value, r.note)
		if r.value == "" || r.note == "" {
			t.Errorf("empty row %+v", r)
		}
	}
}

package tpm_test

import (
	"encoding/hex"
	"os"
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

func needTool(t *testing.T, tool, pkg string) { testenv.NeedTool(t, tool, pkg) }

func hexs(b []byte) string { return hex.EncodeToString(b) }

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

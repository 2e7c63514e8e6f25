// Package testenv decides what a test does when a host tool it needs is
// missing: under `make test` and in CI (GOHEADS_REQUIRE_ALL=1 or CI=true) the
// test fails, with the package to install; in a bare `go test` it skips, so
// a developer without QEMU can still run the unit tests.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing prerequisites must fail tests.
func Strict() bool {
	return os.Getenv("GOHEADS_REQUIRE_ALL") == "1" || os.Getenv("CI") == "true"
}

// NeedTool returns the path of tool, or skips/fails t naming the Debian
// package that provides it.
func NeedTool(t testing.TB, tool, debianPkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	Missing(t, tool+" not found; install it: apt-get install "+debianPkg)
	return ""
}

// Missing skips or fails t with msg, per Strict.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if Strict() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

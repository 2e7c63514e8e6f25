// Package bench holds the measurements `make bench` runs that need the
// test fixtures (swtpm, scenario machines, VMs). They live in a test
// binary gated by GOHEADS_BENCH_OUT: `go test ./...` skips them, and the
// builder runs them and prints their rows with its own. They report
// numbers; they fail only when the measured flow itself breaks.
package bench

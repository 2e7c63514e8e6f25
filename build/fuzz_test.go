package main

import "testing"

func TestDeadlineFlake(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      bool
	}{
		{"bare deadline", "fuzz: elapsed: 5s, execs: 135406\n--- FAIL: FuzzParseBLS (5.15s)\n    context deadline exceeded\nFAIL\n", true},
		{"crasher", "--- FAIL: FuzzParseBLS (0.10s)\n    --- FAIL: FuzzParseBLS (0.00s)\n        testing.go:1: panic: index out of range\n    Failing input written to testdata/fuzz/FuzzParseBLS/abc\n    context deadline exceeded\n", false},
		{"other failure", "--- FAIL: FuzzParseBLS\n    bls_test.go:10: mismatch\nFAIL\n", false},
	} {
		if got := deadlineFlake([]byte(tc.out)); got != tc.want {
			t.Errorf("%s: deadlineFlake = %v, want %v", tc.name, got, tc.want)
		}
	}
}

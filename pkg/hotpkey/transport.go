package hotpkey

import (
	"errors"
	"time"
)

// HID is the seam between the token protocols and the kernel: a hidraw node,
// or in tests a model of the token's firmware. Reports carry the report ID in
// the first byte, 0 for these tokens, as hidraw wants them.
type HID interface {
	// SetFeature sends a feature report (HIDIOCSFEATURE).
	SetFeature(report []byte) error
	// GetFeature reads feature report report[0] into report and returns
	// the length, report ID included (HIDIOCGFEATURE).
	GetFeature(report []byte) (int, error)
	// Write sends an output report (write(2) on hidraw).
	Write(report []byte) error
	// Read returns one input report, without a report ID for devices
	// that do not number their reports (read(2) on hidraw). It waits at
	// most timeout and then fails with ErrTimeout.
	Read(p []byte, timeout time.Duration) (int, error)
	Close() error
}

// ErrTimeout is returned by HID.Read when no report arrived in time.
var ErrTimeout = errors.New("timed out waiting for a HID report")

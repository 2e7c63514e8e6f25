//go:build !linux

package hotpkey

import (
	"errors"
	"fmt"
)

// OpenHidraw is only implemented on Linux.
func OpenHidraw(path string) (HID, error) {
	return nil, fmt.Errorf("open %s: %w", path, errors.ErrUnsupported)
}

package eventlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// SystemPaths says where ReadSystem looks for the log; an empty field skips
// that source. Tests point them at fixtures.
type SystemPaths struct {
	// CBMEMSysfs is the kernel's coreboot bus directory: with
	// CONFIG_GOOGLE_CBMEM (Linux 6.2+) each CBMEM entry is readable as
	// <dir>/cbmem-<id in %08x>/mem (coreboot util/cbmem sysfs_drv.c).
	CBMEMSysfs string
	// DevMem is physical memory, for the coreboot table walk (CONFIG_DEVMEM).
	DevMem string
	// SecurityFS is the kernel's copy of the log the firmware handed over in
	// its ACPI TPM2/TCPA table (SeaBIOS, UEFI).
	SecurityFS string
}

// DefaultPaths are the locations on a running system.
var DefaultPaths = SystemPaths{
	CBMEMSysfs: "/sys/bus/coreboot/devices",
	DevMem:     "/dev/mem",
	SecurityFS: "/sys/kernel/security/tpm0/binary_bios_measurements",
}

// maxFileLog bounds a log read from a file; UEFI logs are tens of KiB.
const maxFileLog = 16 << 20

// ReadSystem reads this machine's firmware event log from DefaultPaths.
func ReadSystem() (*Log, error) { return DefaultPaths.Read() }

// Read reads the firmware event log: coreboot's CBMEM log if coreboot left
// one (through sysfs, else /dev/mem), else the securityfs log. A log that is
// found but malformed is an error, never a reason to try the next source:
// a damaged coreboot log must not be papered over.
func (p SystemPaths) Read() (*Log, error) {
	var tried []string
	if p.CBMEMSysfs != "" {
		for _, c := range cbmemLogs {
			path := filepath.Join(p.CBMEMSysfs, fmt.Sprintf("cbmem-%08x", c.id), "mem")
			b, err := readFileLimit(path, maxLogBytes)
			if errNotExist(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			l, err := c.parse(b)
			if err != nil {
				return nil, fmt.Errorf("%s (CBMEM %s): %w", path, c.name, err)
			}
			l.Source = fmt.Sprintf("%s (CBMEM %s)", path, c.name)
			return l, nil
		}
		tried = append(tried, p.CBMEMSysfs+": no CBMEM TPM log")
	}
	if p.DevMem != "" {
		m, err := OpenDevMem(p.DevMem)
		if err != nil {
			tried = append(tried, err.Error())
		} else {
			l, err := FromCBMEM(m)
			m.Close()
			if err == nil {
				l.Source = p.DevMem + ": " + l.Source
				return l, nil
			}
			if !errors.Is(err, ErrNoCorebootTable) && !errors.Is(err, ErrNoLog) {
				return nil, fmt.Errorf("%s: %w", p.DevMem, err)
			}
			tried = append(tried, fmt.Sprintf("%s: %v", p.DevMem, err))
		}
	}
	if p.SecurityFS != "" {
		b, err := readFileLimit(p.SecurityFS, maxFileLog)
		if err == nil && len(b) == 0 {
			// The ACPI table names a log area the firmware never wrote to
			// (QEMU's qboot): no firmware log, not a damaged one.
			err = fmt.Errorf("%s: empty (the firmware logged nothing)", p.SecurityFS)
			tried = append(tried, err.Error())
		} else if err == nil {
			l, err := Parse(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.SecurityFS, err)
			}
			l.Source = p.SecurityFS
			return l, nil
		}
		if errNotExist(err) {
			tried = append(tried, fmt.Sprintf("%s: not present (no TPM driver, no log from the firmware, or securityfs not mounted)", p.SecurityFS))
		} else if err != nil {
			tried = append(tried, err.Error())
		}
	}
	return nil, fmt.Errorf("%w: tried %s", ErrNoLog, strings.Join(tried, "; "))
}

// ReadFile reads and parses a saved log (a copy of binary_bios_measurements,
// or a CBMEM entry saved with `cbmem -r <id>`).
func ReadFile(path string) (*Log, error) {
	b, err := readFileLimit(path, maxFileLog)
	if err != nil {
		return nil, err
	}
	l, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l.Source = path
	return l, nil
}

// errNotExist reports a missing file or device.
func errNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// readFileLimit reads a file (securityfs and sysfs files report size 0, so
// read to EOF) and refuses one larger than limit.
func readFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes, not an event log", path, limit)
	}
	return b, nil
}

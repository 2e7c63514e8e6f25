package hotpkey

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DeviceInfo describes one hidraw node of a supported token.
type DeviceInfo struct {
	// Path is the device node, /dev/hidrawN.
	Path string
	// SysPath is the node's sysfs directory, /sys/class/hidraw/hidrawN.
	SysPath string
	ID      USBID
	Model   Model
	// Name is HID_NAME from the kernel, as reported by the device.
	Name string
}

// Uevent is what the kernel says about a HID device in
// /sys/class/hidraw/hidrawN/device/uevent.
type Uevent struct {
	// Bus is the bus type from HID_ID (3 = USB).
	Bus  uint16
	ID   USBID
	Name string // HID_NAME
	Phys string // HID_PHYS
	Uniq string // HID_UNIQ
}

// busUSB is BUS_USB from linux/input.h.
const busUSB = 3

// ParseUevent parses a HID device uevent file. HID_ID is required
// ("0003:000020A0:00004108": bus, vendor, product in hex); the other keys are
// optional. HID_NAME comes from the device's USB strings, so it is kept as
// text and never interpreted.
func ParseUevent(data []byte) (Uevent, error) {
	var u Uevent
	haveID := false
	for i, line := range bytes.Split(data, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			continue // blank or unknown line: uevent is key=value only
		}
		switch string(k) {
		case "HID_ID":
			parts := strings.Split(string(v), ":")
			if len(parts) != 3 {
				return u, fmt.Errorf("uevent line %d: HID_ID=%q: want bus:vendor:product", i+1, v)
			}
			var n [3]uint64
			for j, p := range parts {
				x, err := strconv.ParseUint(p, 16, 32)
				if err != nil {
					return u, fmt.Errorf("uevent line %d: HID_ID=%q: field %d is not hex", i+1, v, j+1)
				}
				n[j] = x
			}
			if n[0] > 0xffff || n[1] > 0xffff || n[2] > 0xffff {
				return u, fmt.Errorf("uevent line %d: HID_ID=%q: value out of range", i+1, v)
			}
			u.Bus, u.ID = uint16(n[0]), USBID{uint16(n[1]), uint16(n[2])}
			haveID = true
		case "HID_NAME":
			u.Name = string(v)
		case "HID_PHYS":
			u.Phys = string(v)
		case "HID_UNIQ":
			u.Uniq = string(v)
		}
	}
	if !haveID {
		return u, errors.New("uevent has no HID_ID line")
	}
	return u, nil
}

// FindOptions locate sysfs and /dev; the zero value means the real ones.
type FindOptions struct {
	SysfsRoot string // default "/sys"
	DevDir    string // default "/dev"
}

// Find lists the hidraw nodes of supported tokens, in hotp_verification's
// order of preference (Pro, Librem Key, Storage, Nitrokey 3), then by node
// name. No token is not an error: the list is empty.
//
// A Nitrokey 3 is only listed through its FIDO interface (HID usage page
// 0xF1D0), the one that carries CTAPHID, when the report descriptor is
// readable.
func Find(opt FindOptions) ([]DeviceInfo, error) {
	sys := opt.SysfsRoot
	if sys == "" {
		sys = "/sys"
	}
	dev := opt.DevDir
	if dev == "" {
		dev = "/dev"
	}
	classDir := filepath.Join(sys, "class", "hidraw")
	ents, err := os.ReadDir(classDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no hidraw support loaded, hence no token
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", classDir, err)
	}
	var out []DeviceInfo
	for _, e := range ents {
		sp := filepath.Join(classDir, e.Name())
		data, err := os.ReadFile(filepath.Join(sp, "device", "uevent"))
		if err != nil {
			continue // node vanished or is not a HID device
		}
		u, err := ParseUevent(data)
		if err != nil || u.Bus != busUSB {
			continue
		}
		m := ModelOf(u.ID)
		if m == ModelUnknown {
			continue
		}
		if m == Nitrokey3 {
			if rd, err := os.ReadFile(filepath.Join(sp, "device", "report_descriptor")); err == nil && !isFIDODescriptor(rd) {
				continue
			}
		}
		out = append(out, DeviceInfo{
			Path:    filepath.Join(dev, e.Name()),
			SysPath: sp,
			ID:      u.ID,
			Model:   m,
			Name:    u.Name,
		})
	}
	rank := func(m Model) int {
		for i, d := range Devices {
			if d.Model == m {
				return i
			}
		}
		return len(Devices)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i].Model), rank(out[j].Model); ri != rj {
			return ri < rj
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

// isFIDODescriptor reports whether a HID report descriptor declares the
// FIDO usage page: global item Usage Page (0x06, two bytes) = 0xF1D0.
func isFIDODescriptor(rd []byte) bool {
	return bytes.Contains(rd, []byte{0x06, 0xd0, 0xf1})
}

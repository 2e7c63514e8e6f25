package hotpkey

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeHidraw creates sysfs entries as the kernel lays them out:
// class/hidraw/hidrawN/device/{uevent,report_descriptor}.
func fakeHidraw(t *testing.T, sys, node, uevent string, rdesc []byte) {
	t.Helper()
	d := filepath.Join(sys, "class", "hidraw", node, "device")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "uevent"), []byte(uevent), 0o644); err != nil {
		t.Fatal(err)
	}
	if rdesc != nil {
		if err := os.WriteFile(filepath.Join(d, "report_descriptor"), rdesc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func uevent(id, name string) string {
	return "DRIVER=hid-generic\nHID_ID=" + id + "\nHID_NAME=" + name +
		"\nHID_PHYS=usb-0000:00:14.0-1/input0\nHID_UNIQ=\nMODALIAS=hid:b0003g0001v000020A0p00004108\n"
}

func TestFind(t *testing.T) {
	sys := t.TempDir()
	// FIDO report descriptor starts with Usage Page (0xF1D0).
	fido := []byte{0x06, 0xd0, 0xf1, 0x09, 0x01, 0xa1, 0x01}
	keyboard := []byte{0x05, 0x01, 0x09, 0x06, 0xa1, 0x01}
	fakeHidraw(t, sys, "hidraw0", uevent("0003:0000046D:0000C31C", "Logitech USB Keyboard"), keyboard)
	fakeHidraw(t, sys, "hidraw1", uevent("0003:000020A0:000042B2", "Nitrokey Nitrokey 3"), fido)
	fakeHidraw(t, sys, "hidraw2", uevent("0003:000020A0:00004108", "Nitrokey Nitrokey Pro"), keyboard)
	fakeHidraw(t, sys, "hidraw3", uevent("0003:0000316D:00004C4B", "Purism, SPC Librem Key"), keyboard)
	// A Nitrokey 3 interface that is not the FIDO one is skipped.
	fakeHidraw(t, sys, "hidraw4", uevent("0003:000020A0:000042B2", "Nitrokey Nitrokey 3"), keyboard)
	// Same IDs on Bluetooth (bus 5) are not our token.
	fakeHidraw(t, sys, "hidraw5", uevent("0005:000020A0:00004108", "impostor"), nil)
	// Garbage uevent is skipped, not fatal.
	fakeHidraw(t, sys, "hidraw6", "HID_ID=zz\n", nil)

	got, err := Find(FindOptions{SysfsRoot: sys, DevDir: "/dev"})
	if err != nil {
		t.Fatal(err)
	}
	want := []DeviceInfo{
		{Path: "/dev/hidraw2", ID: USBID{0x20a0, 0x4108}, Model: NitrokeyPro, Name: "Nitrokey Nitrokey Pro"},
		{Path: "/dev/hidraw3", ID: USBID{0x316d, 0x4c4b}, Model: LibremKey, Name: "Purism, SPC Librem Key"},
		{Path: "/dev/hidraw1", ID: USBID{0x20a0, 0x42b2}, Model: Nitrokey3, Name: "Nitrokey Nitrokey 3"},
	}
	if len(got) != len(want) {
		t.Fatalf("Find = %+v, want %d devices", got, len(want))
	}
	for i := range want {
		g := got[i]
		g.SysPath = ""
		if g != want[i] {
			t.Errorf("device %d = %+v, want %+v", i, g, want[i])
		}
	}
	if got[0].SysPath != filepath.Join(sys, "class", "hidraw", "hidraw2") {
		t.Errorf("SysPath = %s", got[0].SysPath)
	}
}

func TestFindNothing(t *testing.T) {
	got, err := Find(FindOptions{SysfsRoot: t.TempDir()})
	if err != nil || len(got) != 0 {
		t.Fatalf("Find on a system without hidraw = %v, %v", got, err)
	}
	_, err = OpenFirst(FindOptions{SysfsRoot: t.TempDir()}, Options{})
	if !errors.Is(err, ErrNoDevice) || ExitCode(err) != 1 {
		t.Fatalf("OpenFirst: err = %v, want ErrNoDevice", err)
	}
}

func TestParseUevent(t *testing.T) {
	u, err := ParseUevent([]byte(uevent("0003:000020A0:000042B2", "Nitrokey Nitrokey 3")))
	if err != nil {
		t.Fatal(err)
	}
	if u.Bus != 3 || u.ID != (USBID{0x20a0, 0x42b2}) || u.Name != "Nitrokey Nitrokey 3" || ModelOf(u.ID) != Nitrokey3 {
		t.Fatalf("ParseUevent = %+v", u)
	}
	if u.ID.String() != "20a0:42b2" {
		t.Errorf("USBID prints %s", u.ID)
	}
	for _, bad := range []string{"", "HID_NAME=x\n", "HID_ID=0003:20A0\n", "HID_ID=0003:XYZ:1\n", "HID_ID=0003:0001FFFF:1\n"} {
		if _, err := ParseUevent([]byte(bad)); err == nil {
			t.Errorf("ParseUevent(%q) accepted", bad)
		}
	}
}

func TestModelNames(t *testing.T) {
	// The names Heads' detect_usb_security_dongle_branding exports.
	for m, want := range map[Model]string{NitrokeyPro: "Nitrokey Pro", NitrokeyStorage: "Nitrokey Storage",
		Nitrokey3: "Nitrokey 3", LibremKey: "Librem Key", ModelUnknown: "USB Security dongle"} {
		if m.String() != want {
			t.Errorf("%d prints %q, want %q", int(m), m, want)
		}
	}
	if !strings.Contains(Nitrokey3.PINName(), "Secrets") || !strings.Contains(NitrokeyPro.PINName(), "Admin") {
		t.Error("PIN names")
	}
	if _, err := New(nil, ModelUnknown, Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("New(unknown model): %v", err)
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte(uevent("0003:000020A0:00004108", "Nitrokey Nitrokey Pro")))
	f.Add([]byte("HID_ID=3:20a0:42b2"))
	f.Add([]byte("HID_ID=::\nHID_NAME=\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUevent(b)
		if err != nil {
			return
		}
		if !strings.Contains(string(b), "HID_ID=") {
			t.Fatalf("accepted without HID_ID: %+v", u)
		}
		_ = ModelOf(u.ID)
	})
}

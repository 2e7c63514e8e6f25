package bootsign

import (
	"fmt"
	"strings"
)

// signableByte mirrors Heads' assert_signable (functions.sh), which deletes
// the bytes '\001-\037\134\177-\377' from `find /boot -print0` and refuses to
// sign if anything changed: control characters, backslash and every byte
// >= 0x7f. Heads does so because busybox sha256sum cannot escape such names
// (busybox bug 14226) and whiptail/less would interpret them; goheads keeps
// the rule so both produce byte-identical manifests.
func signableByte(b byte) bool {
	return b >= 0x20 && b < 0x7f && b != '\\'
}

// checkName returns an *UnsignableError if rel contains a refused byte.
func checkName(rel string) error {
	for i := 0; i < len(rel); i++ {
		if !signableByte(rel[i]) {
			return &UnsignableError{Path: rel, Offset: i, Byte: rel[i]}
		}
	}
	return nil
}

// AssertSignable walks all of bootDir, kexec* files included (as Heads'
// `find /boot`), and returns an *UnsignableError for the first name (in
// sorted order) that cannot be signed.
func AssertSignable(bootDir string) error {
	var first error
	err := walk(bootDir, func(n node) error {
		if err := checkName(n.rel); err != nil && first == nil {
			first = err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return first
}

// EscapeName renders a path from /boot safely for a screen, like Heads'
// escape_zero: printable ASCII as is, '#' doubled, \b \t \n \v \r as #b #t
// #n #v #r, everything else (including backslash) as #xHH.
func EscapeName(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '#':
			b.WriteString("##")
		case c == '\b':
			b.WriteString("#b")
		case c == '\t':
			b.WriteString("#t")
		case c == '\n':
			b.WriteString("#n")
		case c == '\v':
			b.WriteString("#v")
		case c == '\r':
			b.WriteString("#r")
		case c >= 0x20 && c < 0x7f && c != '\\':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "#x%02x", c)
		}
	}
	return b.String()
}

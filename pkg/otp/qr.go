package otp

import (
	"fmt"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// QRStyle is how modules become characters.
type QRStyle int

const (
	// QRHalfBlocks packs two module rows into one text row with the
	// characters ' ', '▀', '▄' and '█'. A character cell is about twice as
	// tall as it is wide, so the modules come out square, and an otpauth URI
	// fits an 80x24 console. The three glyphs are in code page 437, so the
	// Linux VGA and framebuffer consoles draw them with their built-in font;
	// a serial terminal needs only UTF-8.
	QRHalfBlocks QRStyle = iota
	// QRASCII draws each module as two characters, "##" or "  ", one text
	// row per module: for terminals without the block glyphs or a UTF-8
	// locale. It needs about 90 columns and 45 rows for an otpauth URI, so
	// it suits a large terminal or a log, not an 80x24 console.
	QRASCII
)

// Standard console size, for QROptions.MaxCols and MaxRows.
const (
	ConsoleCols = 80
	ConsoleRows = 24
)

// QROptions tune TerminalQR. The zero value suits the Linux console and
// serial terminals with their usual light-on-black colours.
type QROptions struct {
	Style QRStyle
	// DarkOnLight is for terminals that draw dark glyphs on a light
	// background. By default glyphs are light on black, so the light
	// modules and the quiet zone are drawn and the dark modules are left
	// blank; drawn the other way round a code is inverted, and many phone
	// scanners do not read inverted codes.
	DarkOnLight bool
	// QuietZone is the light border, in modules. 0 means the standard 4
	// (ISO/IEC 18004), reduced to no less than 2 when that is what it takes
	// to fit MaxCols x MaxRows; phone scanners read a 2-module border
	// reliably. A positive value is used as given.
	QuietZone int
	// MaxCols and MaxRows bound the output, 0 meaning unbounded. Use
	// ConsoleCols and ConsoleRows for an 80x24 console.
	MaxCols, MaxRows int
}

// QRSizeError means the code cannot be drawn within the requested size.
type QRSizeError struct {
	Cols, Rows       int // size needed
	MaxCols, MaxRows int
}

func (e *QRSizeError) Error() string {
	return fmt.Sprintf("QR code needs %dx%d characters, more than the %dx%d available; shorten the label or use a larger terminal",
		e.Cols, e.Rows, e.MaxCols, e.MaxRows)
}

// TerminalQR renders text (an otpauth URI) as a QR code made of plain
// characters, one line per text row, each line ending in '\n'. No escape
// sequences or colours are used, so it works on a serial line as well as on
// the VGA console.
func TerminalQR(text string, opt QROptions) (string, error) {
	// Low error correction gives the smallest symbol; a screen is a clean
	// medium, and an otpauth URI with a board name then fits version 5
	// (37x37 modules), which with its border fits 24 rows in half blocks.
	q, err := qrcode.New(text, qrcode.Low)
	if err != nil {
		return "", fmt.Errorf("QR code for %d bytes: %w", len(text), err)
	}
	q.DisableBorder = true
	sym := q.Bitmap() // true = dark module

	zones := []int{opt.QuietZone}
	if opt.QuietZone <= 0 {
		zones = []int{4, 3, 2}
	}
	var last *QRSizeError
	for _, z := range zones {
		cols, rows := qrTextSize(len(sym)+2*z, opt.Style)
		if (opt.MaxCols > 0 && cols > opt.MaxCols) || (opt.MaxRows > 0 && rows > opt.MaxRows) {
			last = &QRSizeError{Cols: cols, Rows: rows, MaxCols: opt.MaxCols, MaxRows: opt.MaxRows}
			continue
		}
		return drawQR(withQuietZone(sym, z), opt), nil
	}
	return "", last
}

// qrTextSize is the size in characters of an n x n module square.
func qrTextSize(n int, style QRStyle) (cols, rows int) {
	if style == QRASCII {
		return 2 * n, n
	}
	return n, (n + 1) / 2
}

func withQuietZone(sym [][]bool, z int) [][]bool {
	n := len(sym) + 2*z
	out := make([][]bool, n)
	for y := range out {
		out[y] = make([]bool, n) // false = light
		if y >= z && y < z+len(sym) {
			copy(out[y][z:], sym[y-z])
		}
	}
	return out
}

// drawQR turns modules into text. "ink" is whatever the terminal draws with
// glyphs: light modules by default, dark ones with DarkOnLight.
func drawQR(m [][]bool, opt QROptions) string {
	ink := func(y, x int) bool {
		if y >= len(m) {
			// Below the last row (odd height): the terminal background.
			return false
		}
		return m[y][x] == opt.DarkOnLight
	}
	var b strings.Builder
	n := len(m)
	if opt.Style == QRASCII {
		for y := 0; y < n; y++ {
			for x := 0; x < n; x++ {
				if ink(y, x) {
					b.WriteString("##")
				} else {
					b.WriteString("  ")
				}
			}
			b.WriteByte('\n')
		}
		return b.String()
	}
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			top, bottom := ink(y, x), ink(y+1, x)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
